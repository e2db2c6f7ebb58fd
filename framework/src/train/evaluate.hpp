// Evaluation of a model on one split: the mean loss, the metrics and every clip's logits.
//
//   const Evaluation v = evaluate(model, valid, {multi_label, 64, loader_threads}, maker);
//
// Distributed (dist set): rank r evaluates rows r, r + world, ...; the logits are gathered
// and put back in row order, so every rank computes the metrics of the whole split.
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

#include "patchbay/metrics.hpp"
#include "train/batches.hpp"

namespace patchbay {

class Distributed;
class Model;

struct Evaluation {
  double loss;                    // mean over the split (BCE multi-label, cross-entropy otherwise)
  ClassificationMetrics metrics;  // of the whole split
  at::Tensor logits;              // [N, C] in row order (undefined for an empty split)
};

struct EvaluationSettings {
  bool multi_label = false;
  int64_t batch_size = 64;
  int loader_threads = 0;
};

// `maker` must make batches of `data` (unmixed). Puts the model in eval mode.
Evaluation evaluate(Model& model, const SplitData& data, const BatchMaker& maker, const EvaluationSettings& settings,
                    Distributed* dist = nullptr);

}  // namespace patchbay

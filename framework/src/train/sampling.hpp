// Which training examples an epoch visits, and in what order (train.sampler, train.epoch_size).
//
//   "shuffle":  a fresh permutation of the training split each epoch; with an epoch size
//               other than the split's, permutations are concatenated and cut (every clip is
//               seen once before any is seen twice).
//   "balanced": AudioSet-style class-balanced sampling, as AST trains on full AudioSet
//               (YuanGongND/ast egs/audioset/gen_weight_file.py and src/run.py): each clip
//               weighs w_i = sum over its labels c of 1 / (n_c + 0.01), n_c the training
//               clips that carry class c, and an epoch draws epoch_size clips with
//               replacement in proportion to w (torch.utils.data.WeightedRandomSampler).
//               Single-label data then draws every class equally often in expectation;
//               multi-label data draws rare classes far more often than their prevalence.
//
// Every draw comes from the run's generator on the caller's thread, so an epoch's order is
// fixed by train.seed and the epoch (and exact across resumes: the generator is
// checkpointed).
#pragma once
#include <cstdint>
#include <string>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "patchbay/export.hpp"

namespace patchbay {

// multi_hot [N, C] float (0/1; a clip may carry no label) -> w [N] float64 as above. A clip
// without a label weighs 0 and is never drawn by "balanced".
PATCHBAY_API at::Tensor balanced_clip_weights(const at::Tensor& multi_hot);

class PATCHBAY_API EpochSampler {
 public:
  // sampler "shuffle" or "balanced" (else std::invalid_argument); epoch_size > 0, or 0 for
  // the split's size; multi_hot the training split's [N, C], N > 0.
  EpochSampler(const std::string& sampler, int64_t epoch_size, const at::Tensor& multi_hot);
  int64_t epoch_size() const { return epoch_size_; }
  // One epoch's clip indices [epoch_size()] int64.
  at::Tensor draw(at::Generator& generator) const;

 private:
  bool balanced_ = false;
  int64_t clips_ = 0, epoch_size_ = 0;
  at::Tensor weights_;  // [N] float64, "balanced" only
};

}  // namespace patchbay

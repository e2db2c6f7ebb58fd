#include "train/evaluate.hpp"

#include <limits>
#include <numeric>

#include <fmt/format.h>
#include <torch/nn/functional/loss.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "patchbay/distributed.hpp"
#include "patchbay/model.hpp"

namespace F = torch::nn::functional;

namespace patchbay {
namespace {

at::Tensor loss_of(const at::Tensor& logits, const SplitData& data, bool multi_label) {
  return multi_label ? F::binary_cross_entropy_with_logits(logits, data.multi_hot)
                     : F::cross_entropy(logits, data.labels);
}

}  // namespace

Evaluation evaluate(Model& model, const SplitData& data, const BatchMaker& maker, const EvaluationSettings& s,
                    Distributed* dist) {
  Evaluation ev{std::numeric_limits<double>::quiet_NaN(), {}, {}};
  if (data.size() == 0) return ev;
  torch::NoGradGuard no_grad;
  model.train(false);
  const int64_t world = dist ? dist->world_size() : 1;
  const int64_t rank = dist ? dist->rank() : 0;
  std::vector<int64_t> order;
  for (int64_t i = rank; i < data.size(); i += world) order.push_back(i);
  Prefetcher batches(maker, order, {}, s.batch_size, s.loader_threads);
  std::vector<at::Tensor> logits;
  // The metrics are computed on the CPU, whatever device the model is on.
  while (!batches.done()) logits.push_back(model.forward(batches.next().spec.unsqueeze(1)).to(torch::kCPU));
  const int64_t classes = data.multi_hot.size(1);
  at::Tensor local = logits.empty() ? torch::zeros({0, classes}) : torch::cat(logits);
  if (dist) {
    const auto parts = dist->all_gather_rows(local, "gathering the evaluation's logits");
    at::Tensor all = torch::empty({data.size(), classes});
    for (int64_t r = 0; r < world; ++r) {
      const at::Tensor& part = parts[static_cast<size_t>(r)];
      if (part.size(0) == 0) continue;
      all.index_copy_(0, torch::arange(r, data.size(), world, torch::kLong), part);
    }
    local = all;
  }
  // The mean over the split in one reduction: the same number on one rank or many.
  ev.loss = loss_of(local, data, s.multi_label).item<double>();
  ev.metrics = evaluate_classification(local, data.multi_hot);
  ev.logits = local;
  return ev;
}

}  // namespace patchbay

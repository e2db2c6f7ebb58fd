// An epoch's training examples (contract in sampling.hpp).
#include "train/sampling.hpp"

#include <stdexcept>
#include <vector>

#include <torch/types.h>

namespace patchbay {

at::Tensor balanced_clip_weights(const at::Tensor& multi_hot) {
  const auto labels = multi_hot.to(torch::kFloat64);
  // AST's gen_weight_file.py: label_weight = 1000 / (label_count + 0.01); the scale does not
  // change the draws, the 0.01 keeps a class without clips finite.
  const auto class_weight = 1.0 / (labels.sum(0) + 0.01);
  return labels.matmul(class_weight);
}

EpochSampler::EpochSampler(const std::string& sampler, int64_t epoch_size, const at::Tensor& multi_hot)
    : clips_(multi_hot.size(0)) {
  if (sampler != "shuffle" && sampler != "balanced") {
    throw std::invalid_argument("train.sampler must be \"shuffle\" or \"balanced\", got \"" + sampler + "\"");
  }
  if (clips_ <= 0 || epoch_size < 0) throw std::invalid_argument("EpochSampler: no clips or a negative epoch size");
  balanced_ = sampler == "balanced";
  epoch_size_ = epoch_size > 0 ? epoch_size : clips_;
  if (balanced_) weights_ = balanced_clip_weights(multi_hot);
}

at::Tensor EpochSampler::draw(at::Generator& generator) const {
  if (balanced_) return torch::multinomial(weights_, epoch_size_, /*replacement=*/true, generator);
  std::vector<at::Tensor> parts;
  for (int64_t have = 0; have < epoch_size_; have += clips_) {
    parts.push_back(torch::randperm(clips_, generator, torch::kLong));
  }
  return torch::cat(parts).slice(0, 0, epoch_size_).contiguous();
}

}  // namespace patchbay

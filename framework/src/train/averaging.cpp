// EMA and epoch-range averages of a model's weights (contract in averaging.hpp).
#include "train/averaging.hpp"

#include <fmt/format.h>
#include <torch/types.h>

#include "patchbay/model.hpp"

namespace patchbay {

std::string average_epochs_problem(const std::array<int64_t, 2>& range, int64_t epochs) {
  if (range == std::array<int64_t, 2>{0, 0} || (range[0] >= 1 && range[0] <= range[1] && range[1] <= epochs)) {
    return "";
  }
  return fmt::format("train.average_epochs = [{}, {}] must be a range of trained epochs, 1 <= first <= last <= "
                     "train.epochs = {}, or [0, 0] for none",
                     range[0], range[1], epochs);
}

void ema_update(NamedTensors& ema, const Model& model, double decay) {
  if (ema.empty()) {
    ema = copy_state(model);
    return;
  }
  torch::NoGradGuard no_grad;
  const auto current = model.named_state();
  for (size_t i = 0; i < ema.size() && i < current.size(); ++i) {
    at::Tensor& e = ema[i].second;
    const at::Tensor& w = current[i].second;
    if (e.is_floating_point()) {
      e.mul_(decay).add_(w.detach(), 1.0 - decay);
    } else {
      e.copy_(w);
    }
  }
}

void add_to_average(NamedTensors& sum, const Model& model) {
  if (sum.empty()) {
    sum = copy_state(model);
    for (auto& [name, t] : sum) {
      if (t.is_floating_point()) t = t.to(torch::kFloat64);  // many epochs' sum, no rounding drift
    }
    return;
  }
  torch::NoGradGuard no_grad;
  const auto current = model.named_state();
  for (size_t i = 0; i < sum.size() && i < current.size(); ++i) {
    if (sum[i].second.is_floating_point()) {
      sum[i].second.add_(current[i].second.detach().to(torch::kFloat64));
    } else {
      sum[i].second.copy_(current[i].second);
    }
  }
}

NamedTensors average_of(const NamedTensors& sum, int64_t count) {
  NamedTensors out;
  for (const auto& [name, t] : sum) {
    // float64; restore_state copies it into the model's own dtype.
    out.emplace_back(name, t.is_floating_point() ? t / static_cast<double>(count) : t.clone());
  }
  return out;
}

}  // namespace patchbay

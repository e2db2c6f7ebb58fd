#include "train/grad_scaler.hpp"

#include <ATen/ATen.h>

namespace patchbay {

at::Tensor GradScaler::scale(const at::Tensor& loss) const {
  return enabled_ ? loss * state_.scale : loss;
}

bool GradScaler::unscale(const std::vector<at::Tensor>& parameters) const {
  if (!enabled_) return true;
  const double inverse = 1.0 / state_.scale;  // a power of two: the division is exact
  at::Tensor non_finite;
  for (const auto& p : parameters) {
    at::Tensor g = p.grad();
    if (!g.defined()) continue;
    g.mul_(inverse);
    // Summed on the device, read once: one synchronisation per step, not one per tensor.
    const at::Tensor bad = at::logical_not(at::isfinite(g)).any();
    non_finite = non_finite.defined() ? at::logical_or(non_finite, bad) : bad;
  }
  return !non_finite.defined() || !non_finite.item<bool>();
}

void GradScaler::update(bool finite) {
  if (!enabled_) return;
  if (!finite) {
    state_.scale *= kBackoffFactor;
    state_.growth_tracker = 0;
  } else if (++state_.growth_tracker == kGrowthInterval) {
    state_.scale *= kGrowthFactor;
    state_.growth_tracker = 0;
  }
}

}  // namespace patchbay

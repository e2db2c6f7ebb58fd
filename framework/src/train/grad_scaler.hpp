// The dynamic loss scale of fp16 training (train.precision = "fp16"), as PyTorch's
// GradScaler (torch/amp/grad_scaler.py) with its defaults: float16 gradients of small
// losses underflow, so the loss is multiplied by `scale` before backward; before the
// optimiser steps, the gradients are divided by it again, and when any is inf or NaN the
// step is skipped and the scale halved; after `growth_interval` finite steps in a row it
// doubles. Off (scale 1, every step taken) for fp32 and bf16, whose exponent range is float32's.
//
//   GradScaler scaler(precision == Precision::fp16);
//   scaler.scale(loss).backward();
//   const bool finite = scaler.unscale(parameters);   // before clipping, as PyTorch's unscale_
//   if (finite) optimizer.step();
//   scaler.update(finite);
//
// Works on tensors of any device; one host synchronisation per step (the finite check).
#pragma once
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "patchbay/export.hpp"

namespace patchbay {

class PATCHBAY_API GradScaler {
 public:
  struct State {
    double scale = 65536.0;       // PyTorch's init_scale, 2^16
    int64_t growth_tracker = 0;   // finite steps since the scale last changed
  };
  static constexpr double kGrowthFactor = 2.0, kBackoffFactor = 0.5;
  static constexpr int64_t kGrowthInterval = 2000;

  explicit GradScaler(bool enabled) : enabled_(enabled) {}

  bool enabled() const { return enabled_; }
  // loss * scale (the loss itself when off).
  at::Tensor scale(const at::Tensor& loss) const;
  // Divides each defined gradient of `parameters` by the scale; true when all are finite
  // (always true when off: nothing is checked, nothing divided).
  bool unscale(const std::vector<at::Tensor>& parameters) const;
  // After the step: halves the scale if the gradients were not finite, doubles it after
  // kGrowthInterval finite steps in a row.
  void update(bool finite);

  // For checkpoints, so a resumed fp16 run scales as the uninterrupted one.
  const State& state() const { return state_; }
  void set_state(const State& state) { state_ = state; }

 private:
  bool enabled_;
  State state_;
};

}  // namespace patchbay

// The learning rate of every optimiser step, from [train] schedule, lr, warmup_steps and the
// step_* options. Pure arithmetic: no tensors, no state.
//
//   const LrSchedule schedule = LrSchedule::from(config.train);
//   set_lr(optimizer, schedule.at(step, total_steps, epoch));
//
// Kinds:
//   "constant": lr.
//   "cosine":   linear warm-up over warmup_steps steps (step s < W: lr (s + 1) / W), then
//               cosine from lr to 0 over the remaining steps, by step.
//   "step":     AST's MultiStepLR (YuanGongND/ast src/traintest.py): milestones
//               range(step_start_epoch, 1000, step_every), gamma step_decay, and
//               scheduler.step() after each 1-based epoch. During epoch e the scheduler has
//               stepped e - 1 times, so the lr is lr * decay^(milestones <= e - 1): the
//               first decayed epoch is step_start_epoch + 1. A warm-up, when set, overrides
//               the first warmup_steps steps as above (AST ramps its first 1,000 steps).
#pragma once
#include <cstdint>
#include <string>

#include "patchbay/export.hpp"
#include "patchbay/options.hpp"

namespace patchbay {

struct PATCHBAY_API LrSchedule {
  std::string kind = "constant";  // "constant", "cosine", "step"
  double peak = 0.0;
  int64_t warmup_steps = 0;
  int64_t step_start_epoch = 1, step_every = 1;
  double step_decay = 1.0;

  static LrSchedule from(const Options& train);
  // The lr of 0-based optimiser step `step` of `total_steps`, taken in 1-based `epoch`.
  double at(int64_t step, int64_t total_steps, int64_t epoch) const;
};

}  // namespace patchbay

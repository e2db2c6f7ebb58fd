#include "train/lr_schedule.hpp"

#include <algorithm>
#include <cmath>

namespace patchbay {

LrSchedule LrSchedule::from(const Options& t) {
  LrSchedule s;
  s.kind = t.get_string("schedule");
  s.peak = t.get_real("lr");
  s.warmup_steps = t.get_int("warmup_steps");
  s.step_start_epoch = t.get_int("step_start_epoch");
  s.step_every = t.get_int("step_every");
  s.step_decay = t.get_real("step_decay");
  return s;
}

double LrSchedule::at(int64_t step, int64_t total_steps, int64_t epoch) const {
  if (warmup_steps > 0 && step < warmup_steps) {
    return peak * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  }
  if (kind == "cosine") {
    const double span = static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
    const double progress = std::clamp(static_cast<double>(step - warmup_steps) / span, 0.0, 1.0);
    return peak * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  if (kind == "step") {
    // Scheduler steps taken before this epoch, and the milestones among them.
    const int64_t stepped = epoch - 1;
    // AST's milestones stop below epoch 1,000.
    const int64_t last = std::min<int64_t>(stepped, 999);
    const int64_t passed = last < step_start_epoch ? 0 : (last - step_start_epoch) / step_every + 1;
    return peak * std::pow(step_decay, static_cast<double>(passed));
  }
  return peak;
}

}  // namespace patchbay

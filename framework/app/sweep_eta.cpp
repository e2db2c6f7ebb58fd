// The sweep's remaining time from each run's cost (contract in sweep_eta.hpp).
#include "sweep_eta.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <queue>

namespace patchbay::cli {

double EpochTimeModel::predict(const RunCost& cost) const {
  if (!known) return NAN;
  return cost.epochs * (a + b * cost.tokens);
}

EpochTimeModel fit_epoch_time(const std::vector<TimedRun>& timed) {
  EpochTimeModel m;
  if (timed.empty()) return m;
  m.known = true;
  const double n = static_cast<double>(timed.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const auto& t : timed) {
    const double x = t.cost.tokens, y = t.seconds / t.cost.epochs;
    sx += x, sy += y, sxx += x * x, sxy += x * y;
  }
  const double mean_x = sx / n, mean_y = sy / n;
  const double var_x = sxx / n - mean_x * mean_x;
  // One token count says nothing about the slope: assume time proportional to tokens, the
  // better guess for transformers whose cost is dominated by per-token layers.
  if (var_x <= 1e-12 * std::max(1.0, mean_x * mean_x)) {
    m.b = mean_y / mean_x;
    return m;
  }
  m.b = (sxy / n - mean_x * mean_y) / var_x;
  m.a = mean_y - m.b * mean_x;
  if (m.b < 0) {  // more tokens never cost less: the flat mean
    m.a = mean_y, m.b = 0;
  } else if (m.a < 0) {  // no negative overhead: the line through the origin
    m.a = 0, m.b = sxy / sxx;
  }
  return m;
}

double sweep_seconds_left(const std::vector<TimedRun>& timed, const std::vector<double>& running_left,
                          const std::vector<RunCost>& todo, int jobs) {
  std::map<std::string, std::vector<TimedRun>> by_family;
  for (const auto& t : timed) by_family[t.cost.family].push_back(t);
  std::map<std::string, EpochTimeModel> fits;
  for (const auto& [family, runs] : by_family) fits[family] = fit_epoch_time(runs);
  const EpochTimeModel pooled = fit_epoch_time(timed);

  // Each worker as the time it frees up; a free one at 0.
  std::priority_queue<double, std::vector<double>, std::greater<>> free_at;
  for (double left : running_left) {
    if (!std::isfinite(left)) return NAN;
    free_at.push(std::max(0.0, left));
  }
  while (free_at.size() < static_cast<size_t>(std::max(1, jobs))) free_at.push(0.0);
  for (const auto& run : todo) {
    const auto it = fits.find(run.family);
    const double seconds = (it != fits.end() ? it->second : pooled).predict(run);
    if (!std::isfinite(seconds)) return NAN;
    const double start = free_at.top();
    free_at.pop();
    free_at.push(start + seconds);
  }
  double last = 0;
  while (!free_at.empty()) {
    last = std::max(last, free_at.top());
    free_at.pop();
  }
  return last;
}

}  // namespace patchbay::cli

#include "bootstrap.hpp"

#include <algorithm>
#include <map>
#include <numeric>
#include <random>

#include <fmt/format.h>

#include "patchbay/error.hpp"

namespace patchbay::stats {
namespace {

constexpr double kNaN = NAN;

double mean_defined(const std::vector<double>& values) {
  double sum = 0.0;
  size_t n = 0;
  for (double v : values) {
    if (std::isnan(v)) continue;
    sum += v;
    ++n;
  }
  return n == 0 ? kNaN : sum / static_cast<double>(n);
}

void check_settings(const BootstrapSettings& s) {
  if (s.replicates == 0) throw Error("stats.settings", "a bootstrap needs at least one replicate");
  if (!(s.level > 0.0 && s.level < 1.0)) {
    throw Error("stats.settings", fmt::format("a confidence level must lie in (0, 1); got {}", s.level));
  }
}

void check_same_clips(const std::vector<ScoredRun>& runs, size_t clips, const char* what) {
  for (const auto& r : runs) {
    if (r.clips() != clips) {
      throw Error("stats.shape", fmt::format("{}: runs over {} and {} clips; align their predictions first "
                                             "(align_predictions)", what, clips, r.clips()));
    }
  }
}

// A clip multiset drawn with replacement, as weights: how often each clip was drawn.
void draw_clips(std::mt19937_64& rng, std::vector<double>& weights) {
  std::fill(weights.begin(), weights.end(), 0.0);
  std::uniform_int_distribution<size_t> pick(0, weights.size() - 1);
  for (size_t i = 0; i < weights.size(); ++i) weights[pick(rng)] += 1.0;
}

// The mean over `count` runs drawn with replacement of each one's metric on `weights`.
double drawn_runs_mean(std::mt19937_64& rng, const std::vector<ScoredRun>& runs, const std::vector<double>& weights) {
  std::uniform_int_distribution<size_t> pick(0, runs.size() - 1);
  double sum = 0.0;
  for (size_t i = 0; i < runs.size(); ++i) sum += runs[pick(rng)].metric(weights);
  return sum / static_cast<double>(runs.size());
}

double mean_metric(const std::vector<ScoredRun>& runs) {
  double sum = 0.0;
  for (const auto& r : runs) sum += r.metric();
  return sum / static_cast<double>(runs.size());
}

}  // namespace

std::optional<Metric> metric_of_final_key(const std::string& key) {
  if (key == "test_accuracy") return Metric::accuracy;
  if (key == "test_mAP") return Metric::mAP;
  if (key == "test_auc") return Metric::auc;
  return std::nullopt;
}

AlignedPredictions align_predictions(const std::vector<const RunRecord*>& runs) {
  AlignedPredictions out;
  std::map<std::string, size_t> seen;  // clip id -> runs that have it
  size_t with = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunRecord& r = *runs[i];
    if (r.test_clip_ids.empty()) {
      out.without_predictions.push_back(i);
      continue;
    }
    const size_t n = r.test_clip_ids.size();
    if (r.test_logits.size() % n != 0 || r.test_logits.size() != r.test_targets.size()) {
      throw Error("stats.shape", fmt::format("run {}: {} test clips but {} logits and {} targets", r.id, n,
                                             r.test_logits.size(), r.test_targets.size()));
    }
    ++with;
    for (const auto& id : r.test_clip_ids) ++seen[id];
  }
  for (const auto& [id, count] : seen) {
    if (count == with) out.clip_ids.push_back(id);
  }
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunRecord& r = *runs[i];
    if (r.test_clip_ids.empty()) continue;
    std::map<std::string, size_t> row;
    for (size_t k = 0; k < r.test_clip_ids.size(); ++k) row.emplace(r.test_clip_ids[k], k);
    Predictions p;
    p.clips = out.clip_ids.size();
    p.classes = r.test_logits.size() / r.test_clip_ids.size();
    if (!out.runs.empty() && p.classes != out.runs.front().classes) {
      throw Error("stats.shape", fmt::format("run {} has {} classes, run {} {}: they cannot be compared", r.id,
                                             p.classes, runs[out.indices.front()]->id, out.runs.front().classes));
    }
    p.logits.reserve(p.clips * p.classes);
    p.targets.reserve(p.clips * p.classes);
    for (const auto& id : out.clip_ids) {
      const size_t k = row.at(id);
      p.logits.insert(p.logits.end(), r.test_logits.begin() + k * p.classes, r.test_logits.begin() + (k + 1) * p.classes);
      p.targets.insert(p.targets.end(), r.test_targets.begin() + k * p.classes,
                       r.test_targets.begin() + (k + 1) * p.classes);
    }
    out.runs.push_back(std::move(p));
    out.indices.push_back(i);
  }
  return out;
}

ScoredRun::ScoredRun(const Predictions& p, Metric metric, std::vector<uint32_t> strata)
    : metric_(metric), strata_(std::move(strata)), clips_(p.clips), classes_(p.classes) {
  if (p.clips == 0 || p.classes == 0 || p.logits.size() != p.clips * p.classes ||
      p.targets.size() != p.logits.size()) {
    throw Error("stats.shape", fmt::format("predictions of {} clips x {} classes need as many logits and targets; "
                                           "got {} and {}", p.clips, p.classes, p.logits.size(), p.targets.size()));
  }
  if (!strata_.empty()) {
    if (strata_.size() != clips_) {
      throw Error("stats.shape", fmt::format("{} strata for {} clips", strata_.size(), clips_));
    }
    strata_count_ = *std::max_element(strata_.begin(), strata_.end()) + 1;
    std::vector<uint8_t> used(strata_count_, 0);
    for (uint32_t s : strata_) used[s] = 1;
    if (std::find(used.begin(), used.end(), 0) != used.end()) {
      throw Error("stats.shape", fmt::format("strata 0..{} must each hold a clip", strata_count_ - 1));
    }
  }
  if (metric == Metric::accuracy) {
    correct_.resize(clips_);
    for (size_t i = 0; i < clips_; ++i) {
      const float* row = p.logits.data() + i * classes_;
      const size_t top = std::max_element(row, row + classes_) - row;
      correct_[i] = p.targets[i * classes_ + top] != 0;
    }
    return;
  }
  per_class_.resize(classes_);
  for (size_t k = 0; k < classes_; ++k) {
    ClassOrder& c = per_class_[k];
    c.order.resize(clips_);
    std::iota(c.order.begin(), c.order.end(), 0u);
    const auto score = [&](uint32_t i) { return p.logits[i * classes_ + k]; };
    std::stable_sort(c.order.begin(), c.order.end(), [&](uint32_t a, uint32_t b) { return score(a) > score(b); });
    c.label.resize(clips_);
    for (size_t j = 0; j < clips_; ++j) {
      c.label[j] = p.targets[c.order[j] * classes_ + k] != 0;
      if (j + 1 == clips_ || score(c.order[j + 1]) != score(c.order[j])) c.group_end.push_back(j + 1);
    }
  }
}

double ScoredRun::weighted_ap(const ClassOrder& c, const std::vector<double>& w) const {
  double positives = 0.0;
  for (size_t j = 0; j < clips_; ++j) positives += c.label[j] ? w[c.order[j]] : 0.0;
  if (positives <= 0.0) return kNaN;
  double tp = 0.0, fp = 0.0, previous_recall = 0.0, ap = 0.0;
  size_t j = 0;
  for (const uint32_t end : c.group_end) {
    for (; j < end; ++j) (c.label[j] ? tp : fp) += w[c.order[j]];
    if (tp + fp <= 0.0) continue;  // a threshold with no drawn clip is no threshold
    const double recall = tp / positives;
    ap += (recall - previous_recall) * tp / (tp + fp);
    previous_recall = recall;
  }
  return ap;
}

double ScoredRun::weighted_auc(const ClassOrder& c, const std::vector<double>& w) const {
  double positives = 0.0, total = 0.0;
  for (size_t j = 0; j < clips_; ++j) {
    total += w[c.order[j]];
    positives += c.label[j] ? w[c.order[j]] : 0.0;
  }
  const double negatives = total - positives;
  if (positives <= 0.0 || negatives <= 0.0) return kNaN;
  // Mann-Whitney from the top: each positive beats the negatives below its tie group and
  // ties half of those inside it.
  double auc = 0.0, negatives_below = negatives;
  size_t j = 0;
  for (const uint32_t end : c.group_end) {
    double pos = 0.0, neg = 0.0;
    for (; j < end; ++j) (c.label[j] ? pos : neg) += w[c.order[j]];
    negatives_below -= neg;
    auc += pos * (negatives_below + 0.5 * neg);
  }
  return auc / (positives * negatives);
}

double ScoredRun::metric(const std::vector<double>& w) const {
  if (w.size() != clips_) {
    throw Error("stats.shape", fmt::format("{} weights for {} clips", w.size(), clips_));
  }
  if (strata_count_ == 1) return unstratified_metric(w);
  // A clip outside the stratum weighs 0: every metric here is then that of the stratum alone.
  std::vector<double> per_stratum(strata_count_), masked(clips_);
  for (uint32_t s = 0; s < strata_count_; ++s) {
    for (size_t i = 0; i < clips_; ++i) masked[i] = strata_[i] == s ? w[i] : 0.0;
    per_stratum[s] = unstratified_metric(masked);
  }
  return mean_defined(per_stratum);
}

double ScoredRun::unstratified_metric(const std::vector<double>& w) const {
  if (metric_ == Metric::accuracy) {
    double right = 0.0, total = 0.0;
    for (size_t i = 0; i < clips_; ++i) {
      right += correct_[i] ? w[i] : 0.0;
      total += w[i];
    }
    return total > 0.0 ? right / total : kNaN;
  }
  std::vector<double> per_class(classes_);
  for (size_t k = 0; k < classes_; ++k) {
    per_class[k] = metric_ == Metric::mAP ? weighted_ap(per_class_[k], w) : weighted_auc(per_class_[k], w);
  }
  return mean_defined(per_class);
}

double ScoredRun::metric() const { return metric(std::vector<double>(clips_, 1.0)); }

Interval percentile_interval(std::vector<double> values, double level) {
  values.erase(std::remove_if(values.begin(), values.end(), [](double v) { return !std::isfinite(v); }),
               values.end());
  if (values.empty()) return {};
  std::sort(values.begin(), values.end());
  const auto at = [&](double q) {
    const double pos = q * static_cast<double>(values.size() - 1);
    const size_t below = static_cast<size_t>(std::floor(pos));
    const size_t above = std::min(below + 1, values.size() - 1);
    return values[below] + (pos - static_cast<double>(below)) * (values[above] - values[below]);
  };
  return {at((1.0 - level) / 2.0), at((1.0 + level) / 2.0)};
}

namespace {

// A value of one bootstrap replicate over test sets: K sets drawn with replacement (nothing
// is drawn from the generator for one set, so that one set replays the single-set bootstrap
// exactly), then per drawn set its clips and `per_set(set, weights)`; the mean over them.
template <class PerSet>
double over_drawn_sets(std::mt19937_64& rng, std::vector<std::vector<double>>& weights, PerSet per_set) {
  const size_t k = weights.size();
  if (k == 1) {
    draw_clips(rng, weights[0]);
    return per_set(0, weights[0]);
  }
  std::uniform_int_distribution<size_t> pick(0, k - 1);
  double sum = 0.0;
  for (size_t i = 0; i < k; ++i) {
    const size_t s = pick(rng);
    draw_clips(rng, weights[s]);
    sum += per_set(s, weights[s]);
  }
  return sum / static_cast<double>(k);
}

std::vector<std::vector<double>> clip_weights(const TestSets& sets, const char* what) {
  if (sets.empty()) throw Error("stats.shape", fmt::format("{}: no test set", what));
  std::vector<std::vector<double>> weights;
  for (const auto& set : sets) {
    if (set.empty()) throw Error("stats.shape", fmt::format("{}: a test set without runs", what));
    check_same_clips(set, set.front().clips(), what);
    weights.emplace_back(set.front().clips());
  }
  return weights;
}

double mean_over_sets(const TestSets& sets) {
  double sum = 0.0;
  for (const auto& set : sets) sum += mean_metric(set);
  return sum / static_cast<double>(sets.size());
}

}  // namespace

Interval point_interval(const std::vector<ScoredRun>& runs, const BootstrapSettings& settings) {
  check_settings(settings);
  if (runs.empty()) return {};
  return point_interval(TestSets{runs}, settings);
}

Interval point_interval(const TestSets& sets, const BootstrapSettings& settings) {
  check_settings(settings);
  auto weights = clip_weights(sets, "point_interval");
  std::mt19937_64 rng(settings.seed);
  std::vector<double> replicates(settings.replicates);
  for (auto& value : replicates) {
    value = over_drawn_sets(rng, weights, [&](size_t s, const std::vector<double>& w) {
      return drawn_runs_mean(rng, sets[s], w);
    });
  }
  return percentile_interval(std::move(replicates), settings.level);
}

Difference paired_difference(const std::vector<ScoredRun>& a, const std::vector<ScoredRun>& b,
                             const BootstrapSettings& settings) {
  check_settings(settings);
  if (a.empty() || b.empty()) return {};
  return paired_difference(TestSets{a}, TestSets{b}, settings);
}

Difference paired_difference(const TestSets& a, const TestSets& b, const BootstrapSettings& settings) {
  check_settings(settings);
  Difference d;
  if (a.size() != b.size()) {
    throw Error("stats.shape", fmt::format("paired_difference: A has {} test sets, B {}; pair them set by set",
                                           a.size(), b.size()));
  }
  auto weights = clip_weights(a, "paired_difference");
  clip_weights(b, "paired_difference");  // B's sets checked as A's; the draws use A's weights
  for (size_t s = 0; s < a.size(); ++s) {
    check_same_clips(b[s], a[s].front().clips(), "paired_difference");
    d.clips += a[s].front().clips();
  }
  d.sets = a.size();
  d.estimate = mean_over_sets(a) - mean_over_sets(b);
  std::mt19937_64 rng(settings.seed);
  std::vector<double> replicates(settings.replicates);
  size_t higher = 0, counted = 0;
  for (auto& value : replicates) {
    value = over_drawn_sets(rng, weights, [&](size_t s, const std::vector<double>& w) {
      const double ma = drawn_runs_mean(rng, a[s], w);
      return ma - drawn_runs_mean(rng, b[s], w);
    });
    if (std::isfinite(value)) {
      ++counted;
      higher += value > 0.0;
    }
  }
  d.share_a_higher = counted ? static_cast<double>(higher) / static_cast<double>(counted) : kNaN;
  d.interval = percentile_interval(std::move(replicates), settings.level);
  return d;
}

}  // namespace patchbay::stats

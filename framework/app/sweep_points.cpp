#include "sweep_points.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "patchbay/error.hpp"

namespace patchbay::cli {
namespace {

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? NAN : s / static_cast<double>(v.size());
}

// The strata of a joined run over the aligned clips: its folds, renumbered 0..S-1 over the
// folds that hold a common clip. Empty for a run that is not joined.
std::vector<uint32_t> strata_of(const std::map<std::string, uint32_t>& fold_of_clip,
                                const std::vector<std::string>& clip_ids) {
  if (fold_of_clip.empty()) return {};
  std::vector<uint32_t> folds;
  for (const auto& id : clip_ids) folds.push_back(fold_of_clip.at(id));
  std::vector<uint32_t> present = folds;
  std::sort(present.begin(), present.end());
  present.erase(std::unique(present.begin(), present.end()), present.end());
  for (auto& f : folds) f = static_cast<uint32_t>(std::lower_bound(present.begin(), present.end(), f) - present.begin());
  return folds;
}

// The aligned runs that came from positions [first, first + count) of align_predictions'
// argument, as bootstrap inputs for `metric`; `folds[i]` is fold_of_clip of argument i.
std::vector<stats::ScoredRun> scored(const stats::AlignedPredictions& aligned,
                                     const std::vector<std::map<std::string, uint32_t>>& folds, size_t first,
                                     size_t count, stats::Metric metric) {
  std::vector<stats::ScoredRun> out;
  for (size_t i = 0; i < aligned.runs.size(); ++i) {
    const size_t from = aligned.indices[i];
    if (from >= first && from < first + count) {
      out.emplace_back(aligned.runs[i], metric, strata_of(folds.at(from), aligned.clip_ids));
    }
  }
  return out;
}

std::string missing_note(const stats::AlignedPredictions& aligned, size_t runs) {
  if (aligned.without_predictions.empty()) return "";
  return fmt::format("{} of {} runs have no per-clip test predictions (results written before they were recorded; "
                     "rerun those runs to include them)", aligned.without_predictions.size(), runs);
}

}  // namespace

double SweepPoint::mean() const { return mean_of(metric); }

double SweepPoint::std() const {
  if (metric.size() < 2) return NAN;
  const double m = mean();
  double s = 0;
  for (double v : metric) s += (v - m) * (v - m);
  return std::sqrt(s / static_cast<double>(metric.size() - 1));
}

double SweepPoint::latency() const {
  std::vector<double> v = latencies;
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double SweepPoint::masked_mean() const { return mean_of(masked); }

std::string SweepPoint::mean_text(int digits) const {
  if (metric.empty()) return "–";
  if (metric.size() == 1) return fmt::format("{:.{}f} (n = 1)", metric[0], digits);
  return fmt::format("{:.{}f} ± {:.{}f} (n = {})", mean(), digits, std(), digits, metric.size());
}

double final_of(const RunRecord& r, const std::string& key) {
  const auto it = r.final.find(key);
  return it == r.final.end() ? NAN : it->second;
}

namespace {
bool is_fold_axis(const std::string& key) { return key == "dataset.fold"; }
}  // namespace

std::string point_of(const RunRecord& r) {
  std::string out;
  for (const auto& [k, v] : r.axes) {
    if (k == "train.seed" || is_fold_axis(k)) continue;
    out += (out.empty() ? "" : ", ") + k + "=" + axis_value_text(v);
  }
  return out.empty() ? "(base)" : out;
}

std::vector<const RunRecord*> completed_runs(const PublishedResults& results) {
  std::vector<const RunRecord*> out;
  for (const auto& r : results.runs) {
    if (r.status == RunStatus::completed) out.push_back(&r);
  }
  return out;
}

std::string interval_text(const stats::Interval& ci, int digits) {
  if (!ci.defined()) return "–";
  return fmt::format("[{:.{}f}, {:.{}f}]", ci.lo, digits, ci.hi, digits);
}

std::string chosen_metric(const PublishedResults& results, const std::string& requested) {
  if (requested != "auto") return requested;
  for (const auto& r : results.runs) {
    if (final_of(r, "multi_label") == 1.0) return "test_mAP";
  }
  return "test_accuracy";
}

std::vector<SweepPoint> sweep_points(const std::vector<const RunRecord*>& completed, const std::string& metric) {
  std::vector<SweepPoint> points;
  for (const auto* r : completed) {
    const std::string name = point_of(*r);
    auto it = std::find_if(points.begin(), points.end(), [&](const SweepPoint& s) { return s.name == name; });
    if (it == points.end()) {
      points.emplace_back();
      points.back().name = name;
      it = points.end() - 1;
    }
    if (const double v = final_of(*r, metric); std::isfinite(v)) it->metric.push_back(v);
    it->gmacs = final_of(*r, "paper_macs") / 1e9;
    if (const double l = final_of(*r, "latency_ms"); std::isfinite(l)) it->latencies.push_back(l);
    if (const double m = final_of(*r, "masked_cells_per_example"); std::isfinite(m)) it->masked.push_back(m);
    it->runs.push_back(r);
  }
  return points;
}

JoinedRuns join_folds(const std::vector<const RunRecord*>& runs) {
  JoinedRuns out;
  std::vector<int64_t> seeds;                 // of the joined records, in order of first run
  std::vector<std::vector<const RunRecord*>> folds_of;
  for (const auto* r : runs) {
    const bool fold = std::any_of(r->axes.begin(), r->axes.end(), [](const auto& a) { return is_fold_axis(a.first); });
    if (!fold) {
      out.runs.push_back(r);
      out.fold_of_clip.emplace_back();
      continue;
    }
    const auto it = std::find(seeds.begin(), seeds.end(), r->seed);
    if (it == seeds.end()) {
      seeds.push_back(r->seed);
      folds_of.push_back({r});
    } else {
      folds_of[static_cast<size_t>(it - seeds.begin())].push_back(r);
    }
  }
  out.joined.reserve(folds_of.size());
  for (const auto& folds : folds_of) {
    std::map<std::string, uint32_t> fold_of_clip;
    RunRecord j;
    j.id = folds.front()->id;
    for (size_t i = 1; i < folds.size(); ++i) j.id += "+" + folds[i]->id;
    j.seed = folds.front()->seed;
    j.status = RunStatus::completed;
    const bool all = std::all_of(folds.begin(), folds.end(), [](const RunRecord* r) { return !r->test_clip_ids.empty(); });
    for (size_t f = 0; f < folds.size() && all; ++f) {
      const RunRecord* r = folds[f];
      for (const auto& id : r->test_clip_ids) fold_of_clip.emplace(id, static_cast<uint32_t>(f));
      j.test_clip_ids.insert(j.test_clip_ids.end(), r->test_clip_ids.begin(), r->test_clip_ids.end());
      j.test_logits.insert(j.test_logits.end(), r->test_logits.begin(), r->test_logits.end());
      j.test_targets.insert(j.test_targets.end(), r->test_targets.begin(), r->test_targets.end());
    }
    out.joined.push_back(std::move(j));
    out.fold_of_clip.push_back(std::move(fold_of_clip));
  }
  for (const auto& j : out.joined) out.runs.push_back(&j);
  return out;
}

PointInterval point_interval(const SweepPoint& point, const std::string& metric,
                             const stats::BootstrapSettings& settings) {
  PointInterval out;
  const auto m = stats::metric_of_final_key(metric);
  if (!m) {
    out.note = fmt::format("{} cannot be recomputed from test predictions (test_accuracy, test_mAP, test_auc can)",
                           metric);
    return out;
  }
  const JoinedRuns runs = join_folds(point.runs);
  const auto aligned = stats::align_predictions(runs.runs);
  out.note = missing_note(aligned, runs.runs.size());
  if (aligned.runs.empty() || aligned.clip_ids.empty()) {
    if (out.note.empty()) out.note = "its runs share no test clip";
    return out;
  }
  out.clips = aligned.clip_ids.size();
  out.interval = stats::point_interval(scored(aligned, runs.fold_of_clip, 0, runs.runs.size(), *m), settings);
  return out;
}

PointComparison compare_points(const SweepPoint& a, const SweepPoint& b, const std::string& metric,
                               const stats::BootstrapSettings& settings) {
  PointComparison out;
  const auto m = stats::metric_of_final_key(metric);
  if (!m) {
    out.note = fmt::format("{} cannot be recomputed from test predictions", metric);
    return out;
  }
  const JoinedRuns ja = join_folds(a.runs), jb = join_folds(b.runs);
  std::vector<const RunRecord*> both = ja.runs;
  both.insert(both.end(), jb.runs.begin(), jb.runs.end());
  const auto aligned = stats::align_predictions(both);
  out.note = missing_note(aligned, both.size());
  std::vector<std::map<std::string, uint32_t>> folds = ja.fold_of_clip;
  folds.insert(folds.end(), jb.fold_of_clip.begin(), jb.fold_of_clip.end());
  const auto ra = scored(aligned, folds, 0, ja.runs.size(), *m);
  const auto rb = scored(aligned, folds, ja.runs.size(), jb.runs.size(), *m);
  if (ra.empty() || rb.empty() || aligned.clip_ids.empty()) {
    if (out.note.empty()) out.note = "the two points share no test clip (different test sets)";
    return out;
  }
  out.difference = stats::paired_difference(ra, rb, settings);
  return out;
}

std::string PointComparison::verdict(const std::string& a, const std::string& b) const {
  if (!difference.interval.defined()) return "not comparable: " + (note.empty() ? "no interval" : note);
  if (!difference.resolved()) return "no difference this study can resolve";
  return fmt::format("{} is higher", difference.interval.lo > 0 ? a : b);
}

std::optional<size_t> best_point(const std::vector<SweepPoint>& points) {
  std::optional<size_t> best;
  for (size_t i = 0; i < points.size(); ++i) {
    if (!std::isfinite(points[i].mean())) continue;
    if (!best || points[i].mean() > points[*best].mean()) best = i;
  }
  return best;
}

void add_bootstrap_options(boost::program_options::options_description& desc) {
  namespace po = boost::program_options;
  desc.add_options()("bootstrap", po::value<int64_t>()->default_value(2000),
                     "bootstrap replicates for the 95 % intervals (100 to 1000000)")(
      "bootstrap-seed", po::value<uint64_t>()->default_value(0),
      "seed of the bootstrap's resampling (the same seed gives the same intervals)");
}

stats::BootstrapSettings bootstrap_settings(const boost::program_options::variables_map& vm) {
  stats::BootstrapSettings s;
  const int64_t replicates = vm["bootstrap"].as<int64_t>();
  if (replicates < 100 || replicates > 1000000) {
    throw ConfigError("cli.bad_bootstrap", fmt::format("--bootstrap {}: give 100 to 1000000 replicates (the default "
                                                       "2000 is enough for a 95 % interval)", replicates));
  }
  s.replicates = static_cast<size_t>(replicates);
  s.seed = vm["bootstrap-seed"].as<uint64_t>();
  return s;
}

}  // namespace patchbay::cli

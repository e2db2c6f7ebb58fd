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

std::string missing_note(size_t without, size_t runs) {
  if (without == 0) return "";
  return fmt::format("{} of {} runs have no per-clip test predictions (results written before they were recorded; "
                     "rerun those runs to include them)", without, runs);
}

// "; " between notes that are not empty.
void add_note(std::string& note, const std::string& more) {
  if (!more.empty()) note += (note.empty() ? "" : "; ") + more;
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

std::string SweepPoint::mean_text(int digits, size_t planned) const {
  if (metric.empty()) return "–";
  const std::string n = planned > runs.size() ? fmt::format("n = {} of {}", metric.size(), planned)
                                                : fmt::format("n = {}", metric.size());
  if (metric.size() == 1) return fmt::format("{:.{}f} ({})", metric[0], digits, n);
  return fmt::format("{:.{}f} ± {:.{}f} ({})", mean(), digits, std(), digits, n);
}

double final_of(const RunRecord& r, const std::string& key) {
  const auto it = r.final.find(key);
  return it == r.final.end() ? NAN : it->second;
}

// Runs that differ in it were tested on different held-out data (the keywords generator's
// split seed draws other test voices): a point is its runs over every test set.
bool is_test_set_axis(const std::string& key) { return key == "dataset.split_seed"; }

std::string test_set_of(const RunRecord& run) {
  for (const auto& [k, v] : run.axes) {
    if (is_test_set_axis(k)) return axis_value_text(v);
  }
  return "";
}

namespace {
bool is_fold_axis(const std::string& key) { return key == "dataset.fold"; }

// A point's runs by the test set they were tested on (dataset.split_seed's value; one set ""
// when it is not swept), in order of first appearance.
using RunsBySet = std::vector<std::pair<std::string, std::vector<const RunRecord*>>>;
RunsBySet by_test_set(const std::vector<const RunRecord*>& runs) {
  RunsBySet sets;
  for (const auto* r : runs) {
    const std::string set = test_set_of(*r);
    auto it = std::find_if(sets.begin(), sets.end(), [&](const auto& e) { return e.first == set; });
    if (it == sets.end()) {
      sets.push_back({set, {}});
      it = sets.end() - 1;
    }
    it->second.push_back(r);
  }
  return sets;
}
}  // namespace

std::string point_of(const RunRecord& r) {
  std::string out;
  for (const auto& [k, v] : r.axes) {
    if (k == "train.seed" || is_fold_axis(k) || is_test_set_axis(k)) continue;
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
  stats::TestSets sets;
  size_t without = 0, runs_seen = 0;
  std::string dropped;
  for (const auto& [set, set_runs] : by_test_set(point.runs)) {
    const JoinedRuns runs = join_folds(set_runs);
    const auto aligned = stats::align_predictions(runs.runs);
    without += aligned.without_predictions.size();
    runs_seen += runs.runs.size();
    if (aligned.runs.empty() || aligned.clip_ids.empty()) {
      if (!set.empty()) add_note(dropped, fmt::format("its runs on dataset.split_seed={} share no test clip with "
                                                      "predictions: left out", set));
      continue;
    }
    out.clips += aligned.clip_ids.size();
    sets.push_back(scored(aligned, runs.fold_of_clip, 0, runs.runs.size(), *m));
  }
  out.note = missing_note(without, runs_seen);
  add_note(out.note, dropped);
  if (sets.empty()) {
    if (out.note.empty()) out.note = "its runs share no test clip";
    return out;
  }
  out.interval = stats::point_interval(sets, settings);
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
  const auto sets_a = by_test_set(a.runs), sets_b = by_test_set(b.runs);
  stats::TestSets ra, rb;
  size_t without = 0, runs_seen = 0;
  std::string unpaired;
  for (const auto& [set, runs_a] : sets_a) {
    const auto in_b = std::find_if(sets_b.begin(), sets_b.end(), [&](const auto& e) { return e.first == set; });
    if (in_b == sets_b.end()) {
      add_note(unpaired, fmt::format("A's runs on dataset.split_seed={} have no counterpart in B", set));
      continue;
    }
    const JoinedRuns ja = join_folds(runs_a), jb = join_folds(in_b->second);
    std::vector<const RunRecord*> both = ja.runs;
    both.insert(both.end(), jb.runs.begin(), jb.runs.end());
    const auto aligned = stats::align_predictions(both);
    without += aligned.without_predictions.size();
    runs_seen += both.size();
    std::vector<std::map<std::string, uint32_t>> folds = ja.fold_of_clip;
    folds.insert(folds.end(), jb.fold_of_clip.begin(), jb.fold_of_clip.end());
    auto sa = scored(aligned, folds, 0, ja.runs.size(), *m);
    auto sb = scored(aligned, folds, ja.runs.size(), jb.runs.size(), *m);
    if (sa.empty() || sb.empty() || aligned.clip_ids.empty()) {
      if (!set.empty()) add_note(unpaired, fmt::format("the runs on dataset.split_seed={} share no test clip with "
                                                       "predictions", set));
      continue;
    }
    ra.push_back(std::move(sa));
    rb.push_back(std::move(sb));
  }
  for (const auto& [set, runs_b] : sets_b) {
    if (std::none_of(sets_a.begin(), sets_a.end(), [&](const auto& e) { return e.first == set; })) {
      add_note(unpaired, fmt::format("B's runs on dataset.split_seed={} have no counterpart in A", set));
    }
  }
  out.note = missing_note(without, runs_seen);
  if (ra.empty()) {
    if (out.note.empty()) out.note = "the two points share no test clip (different test sets)";
    add_note(out.note, unpaired);
    return out;
  }
  add_note(out.note, unpaired.empty() ? "" : unpaired + ": left out of the comparison");
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

std::optional<size_t> find_point(const std::vector<SweepPoint>& points, const std::string& name) {
  for (size_t i = 0; i < points.size(); ++i) {
    if (std::to_string(i + 1) == name || points[i].name == name) return i;
    for (const auto* r : points[i].runs) {
      if (r->id == name || r->slug == name) return i;
    }
  }
  return std::nullopt;
}

std::string point_list(const std::vector<SweepPoint>& points) {
  std::string known;
  for (size_t i = 0; i < points.size(); ++i) known += fmt::format("\n  {}: {}", i + 1, points[i].name);
  return known.empty() ? "\n  (none: no run has completed)" : known;
}

std::vector<std::string> test_sets_of(const std::vector<const RunRecord*>& runs) {
  std::vector<std::string> out;
  for (const auto& [set, set_runs] : by_test_set(runs)) out.push_back(set);
  return out;
}

std::vector<const RunRecord*> planned_runs_of(const PublishedResults& results, const std::string& point) {
  std::vector<const RunRecord*> out;
  for (const auto& r : results.runs) {
    if (point_of(r) == point) out.push_back(&r);
  }
  return out;
}

std::vector<PlannedPoint> planned_points(const PublishedResults& results) {
  std::vector<PlannedPoint> out;
  for (const auto& r : results.runs) {
    const std::string point = point_of(r);
    auto it = std::find_if(out.begin(), out.end(), [&](const PlannedPoint& p) { return p.name == point; });
    if (it == out.end()) it = out.insert(out.end(), PlannedPoint{point});
    ++it->runs;
    if (r.status == RunStatus::failed) ++it->failed;
  }
  return out;
}

std::optional<PlannedPoint> planned_point(const PublishedResults& results, const std::string& name) {
  for (const auto& r : results.runs) {
    if (r.id == name || r.slug == name || point_of(r) == name) {
      const std::string point = point_of(r);
      for (const auto& p : planned_points(results)) {
        if (p.name == point) return p;
      }
    }
  }
  return std::nullopt;
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

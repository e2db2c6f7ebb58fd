// The sweep points of a results file and how sure their metric is, for `patchbay report`
// and `patchbay compare`.
//
// A sweep point is the set of COMPLETED runs that share every swept value but the seed
// (train.seed), the fold (dataset.fold: a cross-validated point is all its folds) and the
// test set (dataset.split_seed: runs that held out other data, e.g. other voices, are one
// point over all those test sets). Its metric is summarised as mean ± std over those runs,
// with a bootstrap 95 % interval over runs and test clips (and test sets, when its runs have
// several; framework/src/bootstrap.hpp says how), and two points are compared by a paired
// bootstrap over their common test clips, set by set. A point of one run has no seed spread:
// it is shown "n = 1", never "± 0.000".
//
// The interval and comparisons need the runs' per-clip test predictions (runs recorded
// before patchbay kept them have none) and a metric that can be recomputed from them (test_accuracy, test_mAP, test_auc); otherwise they are undefined
// and `note` says why.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/program_options/options_description.hpp>
#include <boost/program_options/variables_map.hpp>

#include "bootstrap.hpp"
#include "patchbay/results.hpp"

namespace patchbay::cli {

struct SweepPoint {
  std::string name;                    // "key=value, ..." without the seed; "(base)"
  std::vector<const RunRecord*> runs;  // its COMPLETED runs, in plan order
  std::vector<double> metric;          // the final metric of each run that has it
  std::vector<double> latencies, masked;
  double gmacs = NAN;
  double mean() const;
  double std() const;                  // sample std; NaN below two runs
  double latency() const;              // median: a busy machine makes outliers, not trends
  double masked_mean() const;
  // "0.812 ± 0.010 (n = 3)" / "0.812 (n = 1)", n the runs that have the metric; "(n = 2 of
  // 3)" when `planned` (the point's planned runs, any status) is more than its completed runs.
  std::string mean_text(int digits = 3, size_t planned = 0) const;
};

// The final metric `key` of a run; NaN when it has none.
double final_of(const RunRecord& run, const std::string& key);
// The sweep point of a run: its axes without the seed and the fold, "key=value, ..."
// ("(base)" if none).
std::string point_of(const RunRecord& run);
// --metric's value: `requested`, or for "auto" test_mAP when any run is multi-label and
// test_accuracy otherwise.
std::string chosen_metric(const PublishedResults& results, const std::string& requested);
// The COMPLETED runs of `results`, in plan order.
std::vector<const RunRecord*> completed_runs(const PublishedResults& results);
// "[0.712, 0.804]", or "–" for an undefined interval.
std::string interval_text(const stats::Interval& interval, int digits = 3);
// The points of `completed` runs (in order of first appearance) with `metric` per run.
std::vector<SweepPoint> sweep_points(const std::vector<const RunRecord*>& completed, const std::string& metric);

// A point's runs with their folds joined, for the bootstrap: the runs of one seed that differ
// in dataset.fold become one record whose test predictions are the union of theirs (each fold
// tests other clips), so a cross-validated point is resampled over every clip of the dataset
// (ESC-50's five folds) and two such points pair clip by clip. Each clip keeps its fold, and
// the joined record is scored as the mean of its folds' metrics (bootstrap.hpp's strata), the
// value the point's mean over its runs reports. A joined record has no predictions if one of
// its folds has none. Runs without a swept fold pass through as they are.
struct JoinedRuns {
  std::vector<RunRecord> joined;       // the joined records (storage)
  std::vector<const RunRecord*> runs;  // the point's runs with folds joined, seeds in order
  // Per entry of `runs`: the fold (0..folds-1, in the order the runs came) of each of its
  // test clips, by clip id; empty for a run that is not joined.
  std::vector<std::map<std::string, uint32_t>> fold_of_clip;
};
JoinedRuns join_folds(const std::vector<const RunRecord*>& runs);

struct PointInterval {
  stats::Interval interval;
  size_t clips = 0;          // the test clips resampled
  std::string note;          // why the interval is undefined or covers fewer runs; else empty
};
PointInterval point_interval(const SweepPoint& point, const std::string& metric,
                             const stats::BootstrapSettings& settings);

struct PointComparison {
  stats::Difference difference;  // a - b
  std::string note;              // why it is undefined; else empty
  // "A is higher", "B is higher" or "no difference this study can resolve" (the interval
  // holds 0); "not comparable: NOTE" when undefined.
  std::string verdict(const std::string& a = "A", const std::string& b = "B") const;
};
PointComparison compare_points(const SweepPoint& a, const SweepPoint& b, const std::string& metric,
                               const stats::BootstrapSettings& settings);

// The index of the point with the highest mean metric; nullopt when none has one.
std::optional<size_t> best_point(const std::vector<SweepPoint>& points);

// The point `name` names: its number (1-based, as in the report), its name, or the id or slug
// of one of its runs; nullopt when none does.
std::optional<size_t> find_point(const std::vector<SweepPoint>& points, const std::string& name);
// "\n  1: name\n  2: name ..." for error messages; "\n  (none: no run has completed)" if empty.
std::string point_list(const std::vector<SweepPoint>& points);
// Whether swept key `key` names the held-out test set (dataset.split_seed).
bool is_test_set_axis(const std::string& key);
// The test set `run` was tested on: its dataset.split_seed value, "" when not swept.
std::string test_set_of(const RunRecord& run);
// The test sets `runs` were tested on: dataset.split_seed's values in order of first
// appearance, or one "" when the runs do not sweep it.
std::vector<std::string> test_sets_of(const std::vector<const RunRecord*>& runs);
// The point (name) of the planned runs of `results`, any status, that `name` names as
// find_point does (numbers aside), how many runs it has and how many of them FAILED; nullopt
// when none.
struct PlannedPoint {
  std::string name;
  size_t runs = 0, failed = 0;
};
std::optional<PlannedPoint> planned_point(const PublishedResults& results, const std::string& name);
// The planned runs (any status) of `results` whose point (point_of) is `point`.
std::vector<const RunRecord*> planned_runs_of(const PublishedResults& results, const std::string& point);
// Every point of `results`' plan (any status), in plan order, with its runs and failures.
std::vector<PlannedPoint> planned_points(const PublishedResults& results);

// --bootstrap N and --bootstrap-seed S (report and compare), and the settings they give;
// throws ConfigError "cli.bad_bootstrap" for N outside 100..1000000.
void add_bootstrap_options(boost::program_options::options_description& desc);
stats::BootstrapSettings bootstrap_settings(const boost::program_options::variables_map& vm);

}  // namespace patchbay::cli

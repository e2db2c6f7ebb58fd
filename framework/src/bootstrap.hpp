// How sure a test metric is: bootstrap confidence intervals over training seeds and test
// clips, and paired comparisons of two sweep points on the same clips (patchbay report and
// patchbay compare).
//
//   auto aligned = align_predictions({&run_a1, &run_a2, &run_b1});   // common clips, one order
//   std::vector<ScoredRun> a{{aligned.runs[0], Metric::accuracy}, {aligned.runs[1], Metric::accuracy}};
//   std::vector<ScoredRun> b{{aligned.runs[2], Metric::accuracy}};
//   Interval ci = point_interval(a, {});                 // 95 % CI of point A's metric
//   Difference d = paired_difference(a, b, {});          // A - B on the same resampled clips
//   if (!d.resolved()) fmt::print("no difference this study can resolve\n");
//
// What is resampled, and why both: a sweep point's metric varies with the training seed
// (the runs) and with the test clips drawn (the fixed test set is one sample of the task).
// One bootstrap replicate draws the point's runs with replacement and one multiset of test
// clips with replacement (weights: how often each clip was drawn), shared by all the runs,
// because every run was tested on those same clips; its value is the mean over the drawn
// runs of each one's metric on the drawn clips. The interval is the percentile interval of
// the replicates (numpy's default linear interpolation between order statistics).
//
// A paired comparison draws one clip multiset per replicate for both points (that is the
// pairing: a clip that is hard for A is hard for B too, which an unpaired comparison would
// count twice as noise) and each point's runs independently. Its interval is that of the
// difference of the two means; an interval that contains 0 is "no difference this study
// can resolve".
//
// Metrics on weighted clips equal the metric on the expanded set (each clip repeated by its
// weight), with metrics.hpp's conventions: accuracy is top-1; AP as scikit-learn's
// average_precision_score (ties one threshold; equal to its sample_weight form); ROC-AUC
// with ties half; classes without positives (or, for AUC, negatives) in a replicate are left
// out of that replicate's mean. Deterministic for BootstrapSettings::seed.
//
// Errors: Error "stats.shape" when predictions are inconsistent (sizes, classes differ
// between runs, no clips), "stats.settings" for replicates = 0 or a level outside (0, 1).
#pragma once
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "patchbay/export.hpp"
#include "patchbay/results.hpp"

namespace patchbay::stats {

enum class Metric { accuracy, mAP, auc };
// "test_accuracy" -> accuracy, "test_mAP" -> mAP, "test_auc" -> auc; nullopt for a key the
// bootstrap cannot recompute from test predictions (valid_*, losses, costs).
PATCHBAY_API std::optional<Metric> metric_of_final_key(const std::string& key);

// One run's test predictions over clips in a fixed order.
struct Predictions {
  size_t clips = 0, classes = 0;
  std::vector<float> logits;     // [clips * classes] row-major
  std::vector<uint8_t> targets;  // [clips * classes] row-major, {0, 1}
};

// The test predictions of `runs`, restricted to the clips (by Clip id) that every one of
// them was tested on, reordered into one shared order (sorted ids). A run without recorded
// predictions is left out and its index listed in `without_predictions`; `runs` then holds
// one entry per run that has them, in the given order, and `indices` their positions.
struct AlignedPredictions {
  std::vector<std::string> clip_ids;
  std::vector<Predictions> runs;
  std::vector<size_t> indices;              // position in the argument of each runs[i]
  std::vector<size_t> without_predictions;  // positions of runs with none recorded
};
PATCHBAY_API AlignedPredictions align_predictions(const std::vector<const RunRecord*>& runs);

// A run's predictions prepared for one metric: orders and tie groups are computed once, so
// each replicate costs O(clips * classes) (times the strata).
//
// `strata` (empty, or one entry per clip, values 0..S-1 each used) splits the clips into
// groups that are scored apart: the metric is then the mean over strata of the metric on
// that stratum's clips (strata undefined in a replicate are left out). A cross-validated run
// is its folds joined, one stratum per fold, so its metric is the mean of its folds' metrics,
// as the folds' own runs report them, not the metric of their pooled scores (which mixes
// thresholds of differently trained models). Error "stats.shape" for a bad strata vector.
class PATCHBAY_API ScoredRun {
 public:
  ScoredRun(const Predictions& predictions, Metric metric, std::vector<uint32_t> strata = {});
  // The metric with clip i counted weights[i] times (weights.size() == clips, >= 0).
  double metric(const std::vector<double>& weights) const;
  double metric() const;  // every clip once
  size_t clips() const { return clips_; }
  size_t classes() const { return classes_; }

 private:
  struct ClassOrder {
    std::vector<uint32_t> order;       // clips by descending score
    std::vector<uint32_t> group_end;   // end (exclusive, in `order`) of each tie group
    std::vector<uint8_t> label;        // label of order[j]
  };
  double weighted_ap(const ClassOrder& c, const std::vector<double>& w) const;
  double weighted_auc(const ClassOrder& c, const std::vector<double>& w) const;
  double unstratified_metric(const std::vector<double>& w) const;
  Metric metric_;
  std::vector<uint32_t> strata_;       // empty: one stratum
  uint32_t strata_count_ = 1;
  size_t clips_ = 0, classes_ = 0;
  std::vector<uint8_t> correct_;       // accuracy: top-1 right, per clip
  std::vector<ClassOrder> per_class_;  // AP, AUC
};

struct BootstrapSettings {
  size_t replicates = 2000;
  uint64_t seed = 0;
  double level = 0.95;  // two-sided: the (1-level)/2 and (1+level)/2 percentiles
};

struct Interval {
  double lo = NAN, hi = NAN;
  bool defined() const { return std::isfinite(lo) && std::isfinite(hi); }
  bool contains(double v) const { return lo <= v && v <= hi; }
};

// The percentile interval of `values` (any order; NaNs left out) at `level`, linear
// interpolation between order statistics as numpy.percentile by default. Undefined (NaN)
// when no value is finite.
PATCHBAY_API Interval percentile_interval(std::vector<double> values, double level);

// The CI of a sweep point's mean metric over its runs (all over the same clips, aligned),
// by bootstrap over runs and clips. One run: clips only.
PATCHBAY_API Interval point_interval(const std::vector<ScoredRun>& runs, const BootstrapSettings& settings);

struct Difference {
  double estimate = NAN;    // mean metric of A's runs minus B's, on every clip once
  Interval interval;        // of the difference, paired over clips
  double share_a_higher = NAN;  // of the replicates, the share with A above B
  size_t clips = 0;         // the common clips compared (over every test set)
  size_t sets = 0;          // the test sets compared (1 unless runs held out other data)
  bool resolved() const { return interval.defined() && !interval.contains(0.0); }
};
// A - B, paired over clips: every run of both points must be over the same aligned clips.
PATCHBAY_API Difference paired_difference(const std::vector<ScoredRun>& a, const std::vector<ScoredRun>& b,
                                          const BootstrapSettings& settings);

// Runs tested on different test sets: when each run held out other data (the keywords
// generator's dataset.split_seed draws other test voices), a point is its test sets, and
// set k's runs share set k's clips (aligned), no clip being shared between sets. The point's
// value is the mean over sets of the mean of each set's runs. One replicate draws K sets with
// replacement from the K; for each drawn set one multiset of its clips and its runs (with
// replacement); the value is the mean over the drawn sets. So the interval covers what varies
// between held-out sets (with the seed that trained on the rest) as well as within them; with
// K = 1 it is exactly the overloads above (the same draws). With few sets the interval is
// approximate both ways: resampling K clusters understates their spread by about (K - 1) / K,
// and redrawing clips inside each drawn set counts the within-set noise a second time; with
// K < 5 read it as a guide, and say how many sets a claim rests on (patchbay claims shows
// "k of K sets"). Error "stats.shape" as above, and for no set or an empty one.
using TestSets = std::vector<std::vector<ScoredRun>>;
PATCHBAY_API Interval point_interval(const TestSets& sets, const BootstrapSettings& settings);
// A - B over the same K test sets: a[k] and b[k] were tested on set k. One draw of sets and,
// per drawn set, one clip multiset serve both points (the pairing); runs are drawn apart.
// `clips` of the result counts every set's clips.
PATCHBAY_API Difference paired_difference(const TestSets& a, const TestSets& b, const BootstrapSettings& settings);

}  // namespace patchbay::stats

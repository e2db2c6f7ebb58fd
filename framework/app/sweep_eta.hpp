// The time a sweep has left, estimated from what each remaining run will cost.
//
// Extrapolating the first run to all of them is wrong whenever a sweep's runs differ in
// cost: the quick start's first run (square patches, 144 tokens) is ~5x as slow as its last
// (FFTP, 29 tokens), and its sweep line said "ETA 40m" for a sweep that took 17.7 min. Here a
// run's cost is its epochs times a per-epoch time that grows linearly with its tokens,
//     seconds = epochs * (a + b * tokens),
// fitted by least squares on the runs whose times are known, separately for each family of
// runs that share the data, front end, backbone and batch size (the things besides the
// tokens that set a step's time); a family with no known run borrows the fit of all runs.
// The remaining runs are then handed, in plan order, to whichever worker frees up first.
//
// Pure arithmetic (no clock, no files): the pool feeds it, the tests check it on recorded
// sweeps.
#pragma once
#include <string>
#include <vector>

namespace patchbay::cli {

// What a run will cost, known before it starts.
struct RunCost {
  std::string family;   // runs of one family share a time model (see above); any text
  double epochs = 1;    // > 0
  double tokens = 1;    // the tokens the backbone sees per example, > 0
};

// A run whose wall time is known: an ended run, or a running one's elapsed + its own ETA.
struct TimedRun {
  RunCost cost;
  double seconds = 0;   // >= 0
};

// seconds = epochs * (a + b * tokens), with a, b >= 0.
struct EpochTimeModel {
  double a = 0, b = 0;
  bool known = false;   // false: nothing to fit from; predict() gives NaN
  double predict(const RunCost& cost) const;
};

// The least-squares fit of per-epoch time against tokens over `timed`; with one distinct
// token count (or a fit that would need a negative coefficient) the line through the origin
// or the flat mean, whichever keeps both coefficients >= 0. Not known when `timed` is empty.
EpochTimeModel fit_epoch_time(const std::vector<TimedRun>& timed);

// The estimated seconds until the last of `todo` ends: `running_left` holds each running
// run's remaining seconds (its own ETA; at most `jobs` entries, any non-finite entry makes
// the answer NaN), `todo` the runs not started, in the order they will start, `jobs` >= 1
// workers. Each todo run's time comes from its family's fit over `timed`, or from the fit of
// all `timed` runs if its family has none. NaN when a todo run cannot be estimated (nothing
// timed yet); 0 when nothing is left.
double sweep_seconds_left(const std::vector<TimedRun>& timed, const std::vector<double>& running_left,
                          const std::vector<RunCost>& todo, int jobs);

}  // namespace patchbay::cli

// The plots of `patchbay report`, drawn with gnuplot. Each writes into `out` its PNG with
// the gnuplot script and data files that made it (kept, so a user can restyle a plot), and
// returns the PNG's file name. Throws Error "report.gnuplot" when gnuplot is missing or fails.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "patchbay/results.hpp"
#include "sweep_points.hpp"

namespace patchbay::cli {

// The metric against paper GMACs per sweep point (mean ± std over seeds), with the Pareto
// front (the best mean for its cost).
std::string plot_metric_vs_cost(const std::filesystem::path& out, const std::vector<SweepPoint>& points,
                                const std::string& experiment, const std::string& metric);

// The metric against each swept key but the seed and the test set, one dot per run and each
// value's mean; runs that differ in another swept key (one the plotted key does not decide)
// are kept apart, a colour and a mean per group, rather than pooled.
std::vector<std::string> plot_metric_vs_keys(const std::filesystem::path& out,
                                             const std::vector<const RunRecord*>& done,
                                             const std::string& metric);

// The metric on each held-out test set (dataset.split_seed), a dot per run and per sweep
// point a line through its mean on each set: the pairs the comparisons resample, set by set,
// and how much the choice of test data moves a point against how much the points differ.
// None unless the runs were tested on two sets or more.
std::optional<std::string> plot_per_test_set(const std::filesystem::path& out, const std::vector<SweepPoint>& points,
                                             const std::string& metric);

// Training curves per sweep point: validation `valid_key` and training loss, the mean over
// its seeds in a band from the lowest to the highest run. None when no run recorded an epoch.
std::optional<std::string> plot_curves(const std::filesystem::path& out, const std::vector<SweepPoint>& points,
                                       const std::vector<const RunRecord*>& done, const std::string& valid_key);

}  // namespace patchbay::cli

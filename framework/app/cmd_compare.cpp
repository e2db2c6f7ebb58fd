// patchbay compare: how sure is the difference between two sweep points of a results file.
//
//   patchbay compare results/study.h5 1 3                    # points numbered as in the report
//   patchbay compare results/study.h5 "patcher.plugin=fftp" "patcher.plugin=square"
//   patchbay compare results/study.h5 r0003 r0007 --metric test_mAP --json
//
// A point is named by its number in `patchbay report`'s sweep-point table, by its name as
// printed there, or by the id or slug of one of its runs. Prints each point's mean ± std and
// bootstrap CI, and the paired bootstrap of A - B over the test clips both were tested on
// (sweep_points.hpp, framework/src/bootstrap.hpp).
#include "cli_common.hpp"
#include "commands.hpp"
#include "sweep_points.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "patchbay/error.hpp"
#include "patchbay/results.hpp"

namespace po = boost::program_options;

namespace patchbay::cli {
namespace {

size_t point_named(const std::vector<SweepPoint>& points, const std::string& name) {
  if (auto i = find_point(points, name)) return *i;
  throw ConfigError("compare.unknown_point",
                    fmt::format("'{}' names no sweep point with completed runs; give a number, a name or a run id "
                                "or slug. The points:{}",
                                name, point_list(points)));
}

nlohmann::json interval_json(const stats::Interval& ci) {
  if (!ci.defined()) return nullptr;
  return nlohmann::json::array({ci.lo, ci.hi});
}

nlohmann::json number_json(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

}  // namespace

int run_compare(const std::vector<std::string>& args) {
  auto desc = common_options("patchbay compare options");
  desc.add_options()("metric", po::value<std::string>()->default_value("auto"),
                     "test_accuracy, test_mAP or test_auc (auto: test_mAP for multi-label results, "
                     "test_accuracy otherwise)");
  add_bootstrap_options(desc);
  const auto p = parse(args, desc);
  if (wants_help(p, "Usage: patchbay compare RESULTS.h5 POINT_A POINT_B [--metric NAME]\n\n"
                    "How sure is the difference between two sweep points? Prints each point's mean ± std "
                    "over its runs (seeds) and its bootstrap 95 % CI over runs and test clips, then the "
                    "paired bootstrap of A - B on the test clips both were tested on: its 95 % interval, "
                    "and 'no difference this study can resolve' when that interval holds 0.\n"
                    "A point is its number in `patchbay report`'s sweep-point table, its name as printed "
                    "there (\"patcher.plugin=fftp, patcher.stride=4\"), or the id or slug of one of its runs.",
                 desc)) {
    return kExitOk;
  }
  if (p.positional.size() != 3) {
    throw ConfigError("cli.missing_points", "which points? usage: patchbay compare RESULTS.h5 POINT_A POINT_B");
  }
  const PublishedResults pub = read_results(p.positional[0]);
  const std::string metric = chosen_metric(pub, p.vm["metric"].as<std::string>());
  if (!stats::metric_of_final_key(metric)) {
    throw ConfigError("compare.metric", fmt::format("--metric {}: compare recomputes the metric from the runs' test "
                                                    "predictions; give test_accuracy, test_mAP or test_auc", metric));
  }
  const auto points = sweep_points(completed_runs(pub), metric);
  const size_t ia = point_named(points, p.positional[1]), ib = point_named(points, p.positional[2]);
  if (ia == ib) {  // two seeds' slugs name one point: its "difference" would be noise read as a finding
    throw ConfigError("compare.same_point",
                      fmt::format("A and B are the same sweep point (#{}: {}): '{}' and '{}' name it both; give "
                                  "two points. The points:{}",
                                  ia + 1, points[ia].name, p.positional[1], p.positional[2], point_list(points)));
  }
  const auto settings = bootstrap_settings(p.vm);
  const auto& a = points[ia];
  const auto& b = points[ib];
  const auto ca = point_interval(a, metric, settings), cb = point_interval(b, metric, settings);
  const auto c = compare_points(a, b, metric, settings);
  const std::string verdict = c.verdict();

  if (p.vm.count("json")) {
    const auto point_json = [&](size_t i, const PointInterval& ci) {
      return nlohmann::json{{"number", i + 1},         {"name", points[i].name}, {"runs", points[i].runs.size()},
                            {"mean", number_json(points[i].mean())}, {"std", number_json(points[i].std())},
                            {"ci95", interval_json(ci.interval)},    {"note", ci.note}};
    };
    const nlohmann::json out{{"metric", metric},
                             {"replicates", settings.replicates},
                             {"a", point_json(ia, ca)},
                             {"b", point_json(ib, cb)},
                             {"difference", number_json(c.difference.estimate)},
                             {"difference_ci95", interval_json(c.difference.interval)},
                             {"share_a_higher", number_json(c.difference.share_a_higher)},
                             {"common_clips", c.difference.clips},
                             {"resolved", c.difference.resolved()},
                             {"verdict", verdict},
                             {"note", c.note}};
    fmt::print("{}\n", out.dump(2));
    return kExitOk;
  }
  fmt::print("{}: {}, {} bootstrap replicates (seed {})\n", pub.experiment.name, metric, settings.replicates,
             settings.seed);
  fmt::print("  A  #{}: {}\n     {}   95 % CI {}\n", ia + 1, a.name, a.mean_text(), interval_text(ca.interval));
  fmt::print("  B  #{}: {}\n     {}   95 % CI {}\n", ib + 1, b.name, b.mean_text(), interval_text(cb.interval));
  if (c.difference.interval.defined()) {
    fmt::print("  A - B = {:+.3f}, 95 % CI {} (paired over {} common test clips; A above B in {:.1f} % of "
               "resamples)\n",
               c.difference.estimate, interval_text(c.difference.interval), c.difference.clips,
               100.0 * c.difference.share_a_higher);
  }
  fmt::print("  {}\n", verdict);
  std::vector<std::string> printed;  // a point's note may come back in the comparison's
  for (const auto* note : {&ca.note, &cb.note, &c.note}) {
    if (note->empty() || std::find(printed.begin(), printed.end(), *note) != printed.end()) continue;
    printed.push_back(*note);
    fmt::print("  note: {}\n", *note);
  }

  return kExitOk;
}

}  // namespace patchbay::cli

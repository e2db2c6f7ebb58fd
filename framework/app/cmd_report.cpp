// patchbay report: a results file -> Markdown tables and gnuplot PNG plots.
//
// Writes into --out (default: R without .h5, plus "-report"): report.md, and PNGs with the
// gnuplot scripts and data files that made them (kept, so a user can restyle a plot).
#include "commands.hpp"
#include "cli_common.hpp"

#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "atomic_file.hpp"
#include "patchbay/error.hpp"
#include "patchbay/results.hpp"
#include "report_plots.hpp"
#include "sweep_points.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace patchbay::cli {
namespace {

std::string fmt_num(double v, int digits = 3) {
  if (!std::isfinite(v)) return "–";
  return fmt::format("{:.{}f}", v, digits);
}

// A --metric no completed run has would give a report of dashes that reads like a result.
void refuse_unknown_metric(const std::vector<const RunRecord*>& done, const std::string& metric) {
  if (done.empty()) return;
  // A metric is a test_* or valid_* final (a cost such as latency_ms would make the slowest
  // point "best").
  const auto is_metric = [](const std::string& key) {
    return key.rfind("test_", 0) == 0 || key.rfind("valid_", 0) == 0;
  };
  std::set<std::string> metrics;
  for (const auto* r : done) {
    for (const auto& [key, value] : r->final) {
      if (is_metric(key)) metrics.insert(key);
    }
  }
  if (metrics.count(metric)) return;
  throw ConfigError("report.metric", fmt::format("--metric {}: no completed run has such a metric; theirs: {}",
                                                 metric, fmt::join(metrics, ", ")));
}

// The sweep-point table: mean ± std over seeds, the bootstrap CI, and each point against
// the best one by a paired bootstrap. Masked cells per example (what the masker removed,
// mixup aside) tell apart maskers configured in different units.
// A point with fewer completed runs than planned is shown "n = 1 of 3": its mean and interval
// are provisional (a sweep still running) or rest on fewer runs than planned (runs that
// failed). Points with no completed run are listed below the table, with their failed runs,
// so a partial report says what it does not show.
std::string points_section(const PublishedResults& pub, const std::vector<SweepPoint>& points,
                           const std::string& metric, const stats::BootstrapSettings& settings) {
  const auto best = best_point(points);
  std::string md = fmt::format(
      "\n## Sweep points\n\n{0}: mean ± std over the point's runs (seeds, and folds where dataset.fold is swept); n = 1 "
      "where a point has one run. 95 % CI: percentile bootstrap over its runs and test clips ({1} replicates; a "
      "cross-validated point's runs are its seeds, each the mean of its folds' metrics over their test clips; "
      "runs that held out other test sets (dataset.split_seed) make one point, resampled over those sets too). Δ vs best: the paired "
      "bootstrap of the difference to the best point (#{2}) on their common test clips; where its interval "
      "holds 0 there is no difference this study can resolve.\n\n"
      "| # | point | paper GMACs | latency ms (median) | masked cells | {0} | 95 % CI | Δ vs best | 95 % CI of Δ | "
      "verdict |\n|---:|---|---:|---:|---:|---:|---|---:|---|---|\n",
      metric, settings.replicates, best ? std::to_string(*best + 1) : "–");
  const auto plan = planned_points(pub);
  const auto planned_runs = [&](const std::string& point) {
    const auto it = std::find_if(plan.begin(), plan.end(), [&](const PlannedPoint& p) { return p.name == point; });
    return it == plan.end() ? size_t{0} : it->runs;
  };
  std::string notes;
  if (!stats::metric_of_final_key(metric)) {
    notes += fmt::format("- {} keeps no per-clip predictions, so its points have a mean and no interval or Δ "
                         "(test_accuracy, test_mAP and test_auc have both)\n", metric);
  }
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& s = points[i];
    const auto ci = point_interval(s, metric, settings);
    std::string delta = "–", delta_ci = "–", verdict = "–";
    if (best && i == *best) {
      verdict = "best";
    } else if (best) {
      const auto c = compare_points(s, points[*best], metric, settings);
      if (std::isfinite(c.difference.estimate)) delta = fmt::format("{:+.3f}", c.difference.estimate);
      delta_ci = interval_text(c.difference.interval);
      verdict = c.verdict("this point", "the best");
      if (!c.note.empty() && c.difference.interval.defined()) notes += fmt::format("- #{} vs best: {}\n", i + 1, c.note);
    }
    if (!ci.note.empty()) notes += fmt::format("- #{}: {}\n", i + 1, ci.note);
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", i + 1, s.name, fmt_num(s.gmacs, 4),
                      fmt_num(s.latency(), 2), fmt_num(s.masked_mean(), 0),
                      s.mean_text(3, planned_runs(s.name)), interval_text(ci.interval), delta, delta_ci, verdict);
  }
  std::string waiting;
  for (const auto& point : plan) {
    const bool shown = std::any_of(points.begin(), points.end(), [&](const SweepPoint& s) { return s.name == point.name; });
    if (shown) continue;
    waiting += fmt::format("- {} (0 of {}{})\n", point.name, point.runs,
                           point.failed ? fmt::format(", {} failed", point.failed) : "");
  }
  if (!waiting.empty()) notes += std::string(notes.empty() ? "" : "\n") + "Points with no completed run:\n\n" + waiting;
  return notes.empty() ? md : md + "\n" + notes;
}

// Per-class test AP, the mean over each point's runs: where a mean AP moves, which classes
// moved it.
std::string per_class_section(const std::vector<SweepPoint>& points) {
  std::vector<std::string> classes;
  for (const auto& s : points) {
    for (const auto* r : s.runs) {
      if (r->class_names.size() > classes.size() && r->test_ap_per_class.size() == r->class_names.size()) {
        classes = r->class_names;
      }
    }
  }
  if (classes.empty()) return "";
  std::string md = "\n## Per-class test AP (mean over each point's runs; columns are the points above)\n\n| class |";
  std::string rule = "|---|";
  for (size_t i = 0; i < points.size(); ++i) {
    md += fmt::format(" #{} |", i + 1);
    rule += "---:|";
  }
  md += "\n" + rule + "\n";
  for (size_t k = 0; k < classes.size(); ++k) {
    md += "| " + classes[k] + " |";
    for (const auto& s : points) {
      std::vector<double> ap;
      for (const auto* r : s.runs) {
        if (k < r->test_ap_per_class.size() && std::isfinite(r->test_ap_per_class[k])) ap.push_back(r->test_ap_per_class[k]);
      }
      double sum = 0;
      for (double v : ap) sum += v;
      md += " " + (ap.empty() ? std::string("–") : fmt_num(sum / static_cast<double>(ap.size()))) + " |";
    }
    md += "\n";
  }
  return md;
}

}  // namespace

int run_report(const std::vector<std::string>& args) {
  auto desc = common_options("patchbay report options");
  desc.add_options()("out,o", po::value<std::string>(), "output folder (default: R-report beside R)")(
      "metric", po::value<std::string>()->default_value("auto"),
      "final metric to plot: test_accuracy, test_mAP, test_auc, valid_accuracy, ... "
      "(auto: test_mAP for multi-label results, test_accuracy otherwise)")(
      "no-plots", "only the Markdown tables");
  add_bootstrap_options(desc);
  const auto p = parse(args, desc);
  if (wants_help(p, "Usage: patchbay report RESULTS.h5 [--out DIR] [--metric NAME]\n\n"
                    "Writes DIR/report.md (a table per run; the sweep points with mean ± std "
                    "over seeds, a bootstrap 95 % CI over seeds and test clips, and a paired "
                    "comparison of each point with the best; per-class AP for multi-label results; "
                    "failed runs and why) and PNG plots made with gnuplot: the metric "
                    "against paper GMACs with the Pareto front, the metric against each swept "
                    "key (one dot per run), and the training curves (per sweep point: the mean over "
                    "its seeds in a band from the lowest to the highest run).",
                 desc)) {
    return kExitOk;
  }
  if (p.positional.size() != 1) {
    throw ConfigError("cli.missing_file", "which results? usage: patchbay report RESULTS.h5 [--out DIR]");
  }
  const fs::path results = p.positional[0];
  const PublishedResults pub = read_results(results);
  fs::path out = p.vm.count("out") ? fs::path(p.vm["out"].as<std::string>())
                                   : results.parent_path() / (results.stem().string() + "-report");
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec || !fs::is_directory(out, ec)) {
    throw Error("report.write", fmt::format("cannot create the report folder '{}' ({}); choose another "
                                            "with --out DIR", out.string(), ec ? ec.message() : "not a folder"));
  }
  {  // a folder that exists but is read-only fails here, before any plot is drawn
    const fs::path probe = temporary_beside(out / "report.md");
    const bool writable = static_cast<bool>(std::ofstream(probe));
    const int why = errno;
    fs::remove(probe, ec);
    if (!writable) {
      throw Error("report.write", fmt::format("cannot write into '{}' ({}); choose another folder with "
                                              "--out DIR", out.string(), std::strerror(why)));
    }
  }

  const std::string metric = chosen_metric(pub, p.vm["metric"].as<std::string>());
  const std::vector<const RunRecord*> done = completed_runs(pub);
  refuse_unknown_metric(done, metric);

  // Markdown.
  const auto count = [&](RunStatus status) {
    return std::count_if(pub.runs.begin(), pub.runs.end(), [&](const RunRecord& r) { return r.status == status; });
  };
  // A run a killed sweep left RUNNING reads the same as one in progress: both are still to finish.
  std::string md = fmt::format("# Report: {}\n\nResults file: `{}`  \nExperiment file: `{}`  \n"
                               "Runs: {} planned: {} completed, {} failed, {} running or interrupted, {} not "
                               "started. Metric: `{}`.\n\n",
                               pub.experiment.name, results.string(), pub.experiment.file,
                               pub.runs.size(), done.size(), count(RunStatus::failed),
                               count(RunStatus::running), count(RunStatus::planned), metric);
  // The last epoch's training loss beside the best epoch tells under- from over-fitting: a
  // best epoch at the end with the loss still high is a run that needed more epochs.
  md += "## Runs\n\n| run | status | tokens | params | paper GMACs | GFLOPs | latency ms | best epoch | "
        "last train loss | valid | " +
        metric + " | wall |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  const std::string valid_key = metric.find("mAP") != std::string::npos ? "valid_mAP" : "valid_accuracy";
  for (const auto& r : pub.runs) {
    md += fmt::format("| `{}` {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0f} s |\n", r.slug, r.id,
                      to_string(r.status), fmt_num(final_of(r, "tokens"), 0),
                      fmt_num(final_of(r, "params"), 0), fmt_num(final_of(r, "paper_macs") / 1e9, 4),
                      fmt_num(final_of(r, "flops") / 1e9, 4), fmt_num(final_of(r, "latency_ms"), 2),
                      fmt_num(final_of(r, "best_epoch"), 0),
                      fmt_num(r.curves.empty() ? NAN : r.curves.back().train_loss),
                      fmt_num(final_of(r, valid_key)),
                      fmt_num(final_of(r, metric)), r.wall_seconds);
  }

  const auto points = sweep_points(done, metric);
  md += points_section(pub, points, metric, bootstrap_settings(p.vm));
  if (metric == "test_mAP") md += per_class_section(points);
  std::string failures;
  for (const auto& r : pub.runs) {
    if (r.status == RunStatus::failed) failures += fmt::format("- `{}` ({}): {}\n", r.slug, r.id, r.reason);
  }
  if (!failures.empty()) md += "\n## Failed runs\n\n" + failures;

  std::vector<std::string> images;
  if (!p.vm.count("no-plots") && !done.empty()) {
    images.push_back(plot_metric_vs_cost(out, points, pub.experiment.name, metric));
    for (const auto& png : plot_metric_vs_keys(out, done, metric)) images.push_back(png);
    if (const auto sets = plot_per_test_set(out, points, metric)) images.push_back(*sets);
    if (const auto curves = plot_curves(out, points, done, valid_key)) images.push_back(*curves);
    md += "\n## Plots\n\n";
    for (const auto& img : images) md += fmt::format("![{}]({})\n\n", img, img);
  }
  replace_file(out / "report.md", "report", [&](const fs::path& temp) {
    std::ofstream f(temp);
    f << md;
    f.close();
    if (!f) throw std::runtime_error(std::strerror(errno));
  });
  if (p.vm.count("json")) {
    fmt::print("{{\"report\": \"{}\", \"images\": {}}}\n", (out / "report.md").string(), images.size());
  } else {
    fmt::print("report: {}\n", (out / "report.md").string());
    for (const auto& img : images) fmt::print("plot:   {}\n", (out / img).string());
  }
  return kExitOk;
}

}  // namespace patchbay::cli

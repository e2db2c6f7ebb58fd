// patchbay report: a results file -> Markdown tables and gnuplot PNG plots.
//
// Writes into --out (default: R without .h5, plus "-report"): report.md, and PNGs with the
// gnuplot scripts and data files that made them (kept, so a user can restyle a plot).
#include "commands.hpp"
#include "cli_common.hpp"

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>

#include "patchbay/error.hpp"
#include "patchbay/results.hpp"
#include "sweep_points.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace patchbay::cli {
namespace {

std::string fmt_num(double v, int digits = 3) {
  if (!std::isfinite(v)) return "–";
  return fmt::format("{:.{}f}", v, digits);
}

// The std for an error bar: a single run has none to draw.
double bar(double std) { return std::isfinite(std) ? std : 0.0; }

std::string gnuplot_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '_') {
      out += "\\\\_";  // gnuplot's enhanced text would subscript otherwise
      continue;
    }
    out += c;
  }
  return out + "\"";
}

// A sweep point's training curves: at each epoch, the mean, minimum and maximum over the
// runs that reached it (runs of one point can differ in length: an interrupted run, or
// epochs swept), and how many runs that was.
struct CurveBand {
  int64_t epoch = 0;
  double valid_mean = 0, valid_lo = INFINITY, valid_hi = -INFINITY;
  double loss_mean = 0, loss_lo = INFINITY, loss_hi = -INFINITY;
  size_t runs = 0;
};

std::vector<CurveBand> curve_bands(const std::vector<const RunRecord*>& runs, bool use_map) {
  std::map<int64_t, CurveBand> by_epoch;
  for (const auto* r : runs) {
    for (const auto& row : r->curves) {
      auto& b = by_epoch[row.epoch];
      b.epoch = row.epoch;
      const double v = use_map ? row.valid_mAP : row.valid_accuracy;
      b.valid_mean += v;
      b.valid_lo = std::min(b.valid_lo, v);
      b.valid_hi = std::max(b.valid_hi, v);
      b.loss_mean += row.train_loss;
      b.loss_lo = std::min(b.loss_lo, row.train_loss);
      b.loss_hi = std::max(b.loss_hi, row.train_loss);
      ++b.runs;
    }
  }
  std::vector<CurveBand> out;
  for (auto& [epoch, b] : by_epoch) {
    b.valid_mean /= static_cast<double>(b.runs);
    b.loss_mean /= static_cast<double>(b.runs);
    out.push_back(b);
  }
  return out;
}

// Point type of sweep point i: gnuplot's 8 colours repeat from the 9th point on, so the
// marker changes with each round of colours.
int point_type(size_t i) {
  constexpr int kTypes[] = {7, 5, 9, 11, 13};
  return kTypes[(i / 8) % 5];
}

// Legend text of sweep point i (numbered from 1, as the labels on the cost plot).
std::string point_title(size_t i, const SweepPoint& s) {
  return gnuplot_quote(fmt::format("{}: {} ({} run{})", i + 1, s.name, s.runs.size(), s.runs.size() == 1 ? "" : "s"));
}

void run_gnuplot(const fs::path& script) {
  const std::string cmd = fmt::format("cd '{}' && gnuplot '{}' 2>&1", script.parent_path().string(),
                                      script.filename().string());
  const int status = std::system(cmd.c_str());
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code == 127) {
    throw Error("report.gnuplot", "gnuplot is not installed; apt-get install gnuplot-nox "
                                  "(./setup.sh installs it), or pass --no-plots");
  }
  if (status != 0) {
    throw Error("report.gnuplot", fmt::format("gnuplot failed on '{}' (exit {}; its message is "
                                              "above); please report it with the script",
                                              script.string(), code));
  }
}

// Every plot's terminal: the size grows with its legend and labels, the font is shared.
std::string terminal(int width, int height) {
  return fmt::format("set terminal pngcairo size {},{} font 'DejaVu Sans,11'\n", width, height);
}

// The sweep-point table: mean ± std over seeds, the bootstrap CI, and each point against
// the best one by a paired bootstrap. Masked cells per example (what the masker removed,
// mixup aside) tell apart maskers configured in different units.
std::string points_section(const std::vector<SweepPoint>& points, const std::string& metric,
                           const stats::BootstrapSettings& settings) {
  const auto best = best_point(points);
  std::string md = fmt::format(
      "\n## Sweep points\n\n{0}: mean ± std over the point's runs (seeds); n = 1 where a point has one run. "
      "95 % CI: percentile bootstrap over its runs and test clips ({1} replicates). Δ vs best: the paired "
      "bootstrap of the difference to the best point (#{2}) on their common test clips; where its interval "
      "holds 0 there is no difference this study can resolve.\n\n"
      "| # | point | paper GMACs | latency ms (median) | masked cells | {0} | 95 % CI | Δ vs best | 95 % CI of Δ | "
      "verdict |\n|---:|---|---:|---:|---:|---:|---|---:|---|---|\n",
      metric, settings.replicates, best ? std::to_string(*best + 1) : "–");
  std::string notes;
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& s = points[i];
    const auto ci = point_interval(s, metric, settings);
    std::string delta = "–", delta_ci = "–", verdict = "–";
    if (best && i == *best) {
      verdict = "best";
    } else if (best) {
      const auto c = compare_points(s, points[*best], metric, settings);
      delta = fmt::format("{:+.3f}", c.difference.estimate);
      delta_ci = interval_text(c.difference.interval);
      verdict = c.verdict("this point", "the best");
      if (!c.note.empty() && c.difference.interval.defined()) notes += fmt::format("- #{} vs best: {}\n", i + 1, c.note);
    }
    if (!ci.note.empty()) notes += fmt::format("- #{}: {}\n", i + 1, ci.note);
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", i + 1, s.name, fmt_num(s.gmacs, 4),
                      fmt_num(s.latency(), 2), fmt_num(s.masked_mean(), 0), s.mean_text(), interval_text(ci.interval),
                      delta, delta_ci, verdict);
  }
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
  fs::create_directories(out);

  const std::string metric = chosen_metric(pub, p.vm["metric"].as<std::string>());
  const std::vector<const RunRecord*> done = completed_runs(pub);

  // Markdown.
  std::string md = fmt::format("# Report: {}\n\nResults file: `{}`  \nExperiment file: `{}`  \n"
                               "Runs: {} planned, {} completed, {} failed. Metric: `{}`.\n\n",
                               pub.experiment.name, results.string(), pub.experiment.file,
                               pub.experiment.run_ids.size(), done.size(),
                               std::count_if(pub.runs.begin(), pub.runs.end(),
                                             [](const RunRecord& r) { return r.status == RunStatus::failed; }),
                               metric);
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
  md += points_section(points, metric, bootstrap_settings(p.vm));
  if (metric == "test_mAP") md += per_class_section(points);
  std::string failures;
  for (const auto& r : pub.runs) {
    if (r.status == RunStatus::failed) failures += fmt::format("- `{}` ({}): {}\n", r.slug, r.id, r.reason);
  }
  if (!failures.empty()) md += "\n## Failed runs\n\n" + failures;

  std::vector<std::string> images;
  if (!p.vm.count("no-plots") && !done.empty()) {
    // 1. Metric vs paper GMACs with the Pareto front (higher metric, lower cost).
    {
      // One block per sweep point (gnuplot's `index`), so each gets its colour and a legend
      // entry; on the plot itself only its number: full names overlap.
      std::ofstream dat(out / "cost.dat");
      std::vector<std::pair<double, double>> xy;
      double lo = INFINITY, hi = 0.0, ylo = INFINITY, yhi = -INFINITY;
      std::string plot_points;
      for (size_t i = 0; i < points.size(); ++i) {
        const auto& s = points[i];
        dat << fmt::format("# {}: {}\n# gmacs mean std number\n{} {} {} {}\n\n\n", i + 1, s.name, s.gmacs,
                           s.mean(), bar(s.std()), i + 1);
        plot_points += fmt::format("'cost.dat' index {} using 1:2:3 with yerrorbars pt {} lc {} title {}, \\\n     ",
                                   i, point_type(i), i + 1, point_title(i, s));
        xy.emplace_back(s.gmacs, s.mean());
        if (std::isfinite(s.mean())) {
          ylo = std::min(ylo, s.mean() - bar(s.std()));
          yhi = std::max(yhi, s.mean() + bar(s.std()));
        }
        if (s.gmacs > 0) {
          lo = std::min(lo, s.gmacs);
          hi = std::max(hi, s.gmacs);
        }
      }
      if (!(hi > 0)) lo = hi = 1.0;
      if (!(yhi >= ylo)) ylo = yhi = 0.5;
      const double pad = std::max(0.05, 0.15 * (yhi - ylo));
      // Cheapest first and, at equal cost, the best first: only it can be on the front.
      std::sort(xy.begin(), xy.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first < b.first : a.second > b.second;
      });
      std::ofstream front(out / "pareto.dat");
      double best = -INFINITY;
      for (const auto& [x, y] : xy) {
        if (y > best) {
          front << x << " " << y << "\n";
          best = y;
        }
      }
      std::ofstream gp(out / "metric_vs_gmacs.gp");
      // Wide enough for the longest legend line (~7 px a character at 9 pt), and x tics at 1,
      // 2 and 5 of each decade: a log axis spanning less than a decade would show one label.
      size_t longest = 60;
      for (size_t i = 0; i < points.size(); ++i) longest = std::max(longest, point_title(i, points[i]).size());
      std::string xtics;
      for (double decade = std::pow(10.0, std::floor(std::log10(lo / 1.5))); decade <= hi * 1.5; decade *= 10) {
        for (const double m : {1.0, 2.0, 5.0}) {
          if (m * decade >= lo / 1.5 && m * decade <= hi * 1.5) {
            xtics += fmt::format("{}\"{:g}\" {:g}", xtics.empty() ? "" : ", ", m * decade, m * decade);
          }
        }
      }
      // Taller by one legend line per entry, so a long legend below does not squash the plot.
      gp << terminal(std::max(900, 120 + 7 * static_cast<int>(longest)),
                     520 + 18 * static_cast<int>(points.size() + 1))
         << "set output 'metric_vs_gmacs.png'\n"
         << (xtics.empty() ? "" : "set xtics (" + xtics + ")\n")
         << "set title " << gnuplot_quote(pub.experiment.name + ": " + metric + " vs cost") << "\n"
         << "set xlabel 'paper GMACs per example (log scale)' offset 0,0.3\nset ylabel " << gnuplot_quote(metric) << "\n"
         << "set logscale x\nset format x \"%g\"\nset mxtics 10\nset grid xtics mxtics ytics\n"
         << "set key below left Left reverse maxcols 1 font ',9'\n"
         << fmt::format("set xrange [{}:{}]\n", lo / 1.5, hi * 1.5)
         << fmt::format("set yrange [{}:{}]\n", ylo - pad, yhi + pad)
         << "plot " << plot_points
         << "'cost.dat' using 1:2:(sprintf('%d', $4)) with labels offset 1.2,0.8 font ',10' notitle, \\\n"
         << "     'pareto.dat' using 1:2 with lines dt 2 lw 2 lc 'gray40' title 'Pareto front (best mean for its cost); points: mean ± std over seeds'\n";
      gp.close();
      dat.close();
      front.close();  // gnuplot reads the files: flush them first
      run_gnuplot(out / "metric_vs_gmacs.gp");
      images.push_back("metric_vs_gmacs.png");
    }
    // 2. Metric vs each swept key (one point per run, so seeds show their spread).
    std::set<std::string> keys;
    for (const auto* r : done) {
      for (const auto& [k, v] : r->axes) {
        if (k != "train.seed") keys.insert(k);
      }
    }
    // The key's values go on the vertical axis, written out horizontally: as x tics, long
    // values ("specaugment-freq_masks1-max_freq48-...") overlapped into an unreadable line.
    for (const auto& key : keys) {
      std::vector<std::string> names;  // in the order of the plan
      std::vector<std::vector<double>> values;
      std::ofstream dat(out / ("axis_" + key + ".dat"));
      dat << "# runs: level metric\n";
      for (const auto* r : done) {
        for (const auto& [k, v] : r->axes) {
          if (k != key) continue;
          const std::string name = axis_value_text(v);
          const size_t y = std::find(names.begin(), names.end(), name) - names.begin();
          if (y == names.size()) {
            names.push_back(name);
            values.emplace_back();
          }
          const double m = final_of(*r, metric);
          dat << fmt::format("{} {}\n", y, m);
          if (std::isfinite(m)) values[y].push_back(m);
        }
      }
      dat << "\n\n# means: level metric\n";
      std::string tics;
      size_t longest = 10;
      for (size_t y = 0; y < names.size(); ++y) {
        double sum = 0;
        for (double v : values[y]) sum += v;
        if (!values[y].empty()) dat << fmt::format("{} {}\n", y, sum / static_cast<double>(values[y].size()));
        tics += (tics.empty() ? "" : ", ") + gnuplot_quote(names[y]) + " " + std::to_string(y);
        longest = std::max(longest, names[y].size());
      }
      const std::string png = "metric_vs_" + key + ".png";
      std::ofstream gp(out / ("metric_vs_" + key + ".gp"));
      gp << terminal(700 + 7 * static_cast<int>(longest), 200 + 45 * static_cast<int>(names.size()))
         << "set output '" << png << "'\n"
         << "set title " << gnuplot_quote(metric + " vs " + key) << "\nset ylabel " << gnuplot_quote(key)
         << "\nset xlabel " << gnuplot_quote(metric) << "\nset grid\nset ytics (" << tics << ")\n"
         << "set yrange [" << names.size() - 0.5 << ":-0.5]\nset offsets graph 0.05, graph 0.05, 0, 0\n"
         << "set key below\n"
         << "plot 'axis_" << key << ".dat' index 0 using 2:1 with points pt 7 ps 1.5 title 'run (one per seed)', \\\n"
         << "     'axis_" << key << ".dat' index 1 using 2:1 with points pt 3 ps 3 lw 2 lc 'black' title 'mean'\n";
      gp.close();
      dat.close();
      run_gnuplot(out / ("metric_vs_" + key + ".gp"));
      images.push_back(png);
    }
    // 3. Training curves per sweep point: the mean over its seeds as a line, their range as
    // a band (one line per run was unreadable beyond a handful of runs). None when no run
    // recorded an epoch: gnuplot refuses a plot without points.
    if (std::any_of(done.begin(), done.end(), [](const RunRecord* r) { return !r->curves.empty(); })) {
      std::ofstream dat(out / "curves.dat");
      std::string plot_valid, plot_loss, legend;
      for (size_t i = 0; i < points.size(); ++i) {
        dat << fmt::format("# {}: {}\n# epoch {}_mean min max train_loss_mean min max runs\n", i + 1,
                           points[i].name, valid_key);
        for (const auto& b : curve_bands(points[i].runs, valid_key == "valid_mAP")) {
          dat << fmt::format("{} {} {} {} {} {} {} {}\n", b.epoch, b.valid_mean, b.valid_lo, b.valid_hi,
                             b.loss_mean, b.loss_lo, b.loss_hi, b.runs);
        }
        dat << "\n\n";
        const std::string sep = i ? ", \\\n     " : "";
        const auto series = [&](int mean, int low, int high) {
          return fmt::format("'curves.dat' index {0} using 1:{2}:{3} with filledcurves lc {1} notitle, "
                             "'curves.dat' index {0} using 1:{4} with linespoints pt {5} ps 0.5 lc {1} notitle",
                             i, i + 1, low, high, mean, point_type(i));
        };
        plot_valid += sep + series(2, 3, 4);
        plot_loss += sep + series(5, 6, 7);
        legend += sep + fmt::format("NaN with linespoints pt {} ps 0.5 lc {} title {}", point_type(i), i + 1,
                                    point_title(i, points[i]));
      }
      // Two panels side by side and one legend under both, in a strip sized to its lines.
      // ~17 px a legend line at 9 pt plus padding; too short a strip wraps it into columns.
      const int legend_px = 17 * static_cast<int>(points.size()) + 30, height = 520 + legend_px;
      const double strip = static_cast<double>(legend_px) / height;
      std::ofstream gp(out / "curves.gp");
      gp << terminal(1300, height)
         << "set output 'curves.png'\n"
         << "set multiplot title 'training curves per sweep point: mean over seeds, band from min to max'\n"
         << "set grid\nset xlabel 'epoch'\nunset key\nset style fill transparent solid 0.18 noborder\n"
         << fmt::format("set size 0.5,{0}\nset origin 0,{1}\n", 0.95 - strip, strip)
         << "set ylabel " << gnuplot_quote(valid_key) << "\nset title 'validation'\nplot " << plot_valid << "\n"
         << fmt::format("set origin 0.5,{}\n", strip)
         << "set ylabel 'training loss'\nset title 'training loss'\nplot " << plot_loss << "\n"
         << fmt::format("set size 1,{}\nset origin 0,0\n", strip)
         << "unset title\nunset xlabel\nunset ylabel\nunset border\nunset tics\nunset grid\n"
         << "set key inside top left Left reverse maxcols 1 font ',9'\nset yrange [0:1]\n"
         << "plot " << legend << "\nunset multiplot\n";
      gp.close();
      dat.close();
      run_gnuplot(out / "curves.gp");
      images.push_back("curves.png");
    }
    md += "\n## Plots\n\n";
    for (const auto& img : images) md += fmt::format("![{}]({})\n\n", img, img);
  }
  std::ofstream(out / "report.md") << md;
  if (p.vm.count("json")) {
    fmt::print("{{\"report\": \"{}\", \"images\": {}}}\n", (out / "report.md").string(), images.size());
  } else {
    fmt::print("report: {}\n", (out / "report.md").string());
    for (const auto& img : images) fmt::print("plot:   {}\n", (out / img).string());
  }
  return kExitOk;
}

}  // namespace patchbay::cli

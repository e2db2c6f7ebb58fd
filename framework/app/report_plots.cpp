// The plots of `patchbay report` (contract in report_plots.hpp).
#include "report_plots.hpp"

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>

#include "patchbay/error.hpp"

namespace fs = std::filesystem;

namespace patchbay::cli {
namespace {

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

}  // namespace

std::string plot_metric_vs_cost(const fs::path& out, const std::vector<SweepPoint>& points,
                                const std::string& experiment, const std::string& metric) {
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
     << "set title " << gnuplot_quote(experiment + ": " + metric + " vs cost") << "\n"
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
  
  return "metric_vs_gmacs.png";
}

namespace {

// The swept keys a marginal plot over `key` keeps apart: every other axis but the seed and
// the test set, unless `key` decides it (a key zipped with it, such as train.lr with the
// patcher in a sweep that gives each patcher its own rate): pooling over those would average
// runs of different configurations into one "mean" (study 3d's masker plot pooled FFTP with
// square).
std::vector<std::string> group_keys(const std::vector<const RunRecord*>& done, const std::string& key) {
  std::vector<std::string> others;
  for (const auto* r : done) {
    for (const auto& [k, v] : r->axes) {
      if (k != key && k != "train.seed" && !is_test_set_axis(k) &&
          std::find(others.begin(), others.end(), k) == others.end()) {
        others.push_back(k);
      }
    }
  }
  std::vector<std::string> kept;
  for (const auto& other : others) {
    std::map<std::string, std::set<std::string>> seen;  // key's value -> other's values
    for (const auto* r : done) {
      std::string level, value;
      for (const auto& [k, v] : r->axes) {
        if (k == key) level = axis_value_text(v);
        if (k == other) value = axis_value_text(v);
      }
      seen[level].insert(value);
    }
    if (std::any_of(seen.begin(), seen.end(), [](const auto& s) { return s.second.size() > 1; })) kept.push_back(other);
  }
  return kept;
}

// One marginal plot's runs: the key's values (levels) and the groups, in the plan's order.
struct Marginal {
  std::vector<std::string> levels, groups;
  std::vector<std::vector<std::pair<size_t, double>>> runs;  // per group: (level, metric)
};

Marginal marginal_of(const std::vector<const RunRecord*>& done, const std::string& key, const std::string& metric) {
  const std::vector<std::string> by = group_keys(done, key);
  Marginal m;
  for (const auto* r : done) {
    std::string level, group;
    bool has_key = false;
    for (const auto& [k, v] : r->axes) {
      if (k == key) {
        level = axis_value_text(v);
        has_key = true;
      }
      if (std::find(by.begin(), by.end(), k) != by.end()) group += (group.empty() ? "" : ", ") + k + "=" + axis_value_text(v);
    }
    if (!has_key) continue;
    const size_t y = std::find(m.levels.begin(), m.levels.end(), level) - m.levels.begin();
    if (y == m.levels.size()) m.levels.push_back(level);
    const size_t g = std::find(m.groups.begin(), m.groups.end(), group) - m.groups.begin();
    if (g == m.groups.size()) {
      m.groups.push_back(group);
      m.runs.emplace_back();
    }
    m.runs[g].emplace_back(y, final_of(*r, metric));
  }
  return m;
}

// Writes axis_<key>.dat (gnuplot index 2g: group g's runs, 2g + 1: its mean per level, each
// group shifted a little vertically) and returns the plot command's series.
std::string write_marginal(const fs::path& out, const std::string& key, const Marginal& m) {
  const size_t count = m.groups.size();
  const double step = std::min(0.2, 0.6 / static_cast<double>(count));
  std::ofstream dat(out / ("axis_" + key + ".dat"));
  const std::string file = "'axis_" + key + ".dat' index ";
  std::string plot;
  for (size_t g = 0; g < count; ++g) {
    const double shift = step * (static_cast<double>(g) - static_cast<double>(count - 1) / 2.0);
    if (count > 1) dat << fmt::format("# group {}: {}\n", g + 1, m.groups[g]);
    dat << "# runs: level metric\n";
    std::vector<std::vector<double>> values(m.levels.size());
    for (const auto& [y, v] : m.runs[g]) {
      dat << fmt::format("{} {}\n", static_cast<double>(y) + shift, v);
      if (std::isfinite(v)) values[y].push_back(v);
    }
    dat << "\n\n# means: level metric\n";
    bool any = false;
    for (size_t y = 0; y < values.size(); ++y) {
      if (values[y].empty()) continue;
      double sum = 0;
      for (double v : values[y]) sum += v;
      dat << fmt::format("{} {}\n", static_cast<double>(y) + shift, sum / static_cast<double>(values[y].size()));
      any = true;
    }
    if (!any) dat << "0 NaN\n";  // an empty block would not count as a gnuplot index
    dat << "\n\n";
    if (count == 1) {
      plot += file + "0 using 2:1 with points pt 7 ps 1.5 title 'run (one per seed)', \\\n     " + file +
              "1 using 2:1 with points pt 3 ps 3 lw 2 lc 'black' title 'mean'";
    } else {
      plot += fmt::format("{}{} using 2:1 with points pt 7 ps 1.2 lc {} title {}, \\\n     ", file, 2 * g, g + 1,
                          gnuplot_quote(m.groups[g]));
      plot += fmt::format("{}{} using 2:1 with points pt 3 ps 3 lw 2 lc {} notitle, \\\n     ", file, 2 * g + 1, g + 1);
    }
  }
  if (count > 1) plot += "NaN with points pt 3 ps 3 lw 2 lc 'black' title 'mean of a group''s runs (dots: one per seed)'";
  return plot;
}

}  // namespace

std::vector<std::string> plot_metric_vs_keys(const fs::path& out, const std::vector<const RunRecord*>& done,
                                             const std::string& metric) {
  std::vector<std::string> pngs;
  // 2. Metric vs each swept key (one point per run, so seeds show their spread).
  std::set<std::string> keys;
  for (const auto* r : done) {
    for (const auto& [k, v] : r->axes) {
      // A test set's marginal would pool every point's runs on it; plot_per_test_set keeps
      // them apart.
      if (k != "train.seed" && !is_test_set_axis(k)) keys.insert(k);
    }
  }
  // The key's values go on the vertical axis, written out horizontally: as x tics, long
  // values ("specaugment-freq_masks1-max_freq48-...") overlapped into an unreadable line.
  // Runs that differ in another swept key are one group each: a colour and a mean.
  for (const auto& key : keys) {
    const Marginal m = marginal_of(done, key, metric);
    const std::string plot = write_marginal(out, key, m);
    const int groups = static_cast<int>(m.groups.size());
    std::string tics;
    size_t longest = 10;
    for (size_t y = 0; y < m.levels.size(); ++y) {
      tics += (tics.empty() ? "" : ", ") + gnuplot_quote(m.levels[y]) + " " + std::to_string(y);
      longest = std::max(longest, m.levels[y].size());
    }
    for (const auto& g : m.groups) longest = std::max(longest, groups > 1 ? g.size() : 0);
    const std::string png = "metric_vs_" + key + ".png";
    std::ofstream gp(out / ("metric_vs_" + key + ".gp"));
    gp << terminal(700 + 7 * static_cast<int>(longest),
                   200 + 45 * static_cast<int>(m.levels.size()) + (groups > 1 ? 20 * (groups + 1) : 0))
       << "set output '" << png << "'\n"
       << "set title " << gnuplot_quote(metric + " vs " + key) << "\nset ylabel " << gnuplot_quote(key)
       << "\nset xlabel " << gnuplot_quote(metric) << "\nset grid\nset ytics (" << tics << ")\n"
       << "set yrange [" << m.levels.size() - 0.5 << ":-0.5]\nset offsets graph 0.05, graph 0.05, 0, 0\n"
       << (groups > 1 ? "set key below left Left reverse maxcols 1 font ',9'\n" : "set key below\n")
       << "plot " << plot << "\n";
    gp.close();
    run_gnuplot(out / ("metric_vs_" + key + ".gp"));
    pngs.push_back(png);
  }
  return pngs;
}

std::optional<std::string> plot_per_test_set(const fs::path& out, const std::vector<SweepPoint>& points,
                                             const std::string& metric) {
  std::vector<const RunRecord*> all;
  for (const auto& p : points) all.insert(all.end(), p.runs.begin(), p.runs.end());
  const std::vector<std::string> sets = test_sets_of(all);
  if (sets.size() < 2) return std::nullopt;
  // Index 2i: point i's runs (set, metric); index 2i + 1: its mean per set. Each point's
  // dots are shifted a little sideways so that points with close scores stay apart.
  std::ofstream dat(out / "per_test_set.dat");
  std::string plot;
  // A set without a value gets a NaN row among the runs (a block of comments alone would not
  // count as an index, and every later point would take the one before it) and a blank line
  // among the means (the line breaks there rather than bridge a set nothing was measured on).
  const double step = std::min(0.08, 0.8 / static_cast<double>(points.size()));
  for (size_t i = 0; i < points.size(); ++i) {
    const double shift = step * (static_cast<double>(i) - static_cast<double>(points.size() - 1) / 2.0);
    std::string means;
    bool gap = false;  // a set without a value since the last mean written
    dat << fmt::format("# {}: {}\n# runs: set {}\n", i + 1, points[i].name, metric);
    for (size_t s = 0; s < sets.size(); ++s) {
      const double x = static_cast<double>(s) + shift;
      double sum = 0;
      size_t n = 0;
      for (const auto* r : points[i].runs) {
        const double m = final_of(*r, metric);
        if (test_set_of(*r) != sets[s] || !std::isfinite(m)) continue;
        dat << fmt::format("{} {}\n", x, m);
        sum += m;
        ++n;
      }
      if (n == 0) {
        dat << fmt::format("{} NaN\n", x);
        gap = !means.empty();
        continue;
      }
      if (gap) means += "\n";  // one blank line breaks the line; two would start a new index
      gap = false;
      means += fmt::format("{} {}\n", x, sum / static_cast<double>(n));
    }
    if (means.empty()) means = "0 NaN\n";  // keeps the index of a point with no value
    dat << "\n\n# means: set " << metric << "\n" << means << "\n\n";
    const std::string colour = fmt::format("lc {}", i + 1);
    plot += fmt::format("{}'per_test_set.dat' index {} using 1:2 with points pt {} ps 1.2 {} notitle, \\\n"
                        "     'per_test_set.dat' index {} using 1:2 with linespoints pt {} ps 2 lw 2 {} title {}",
                        i ? ", \\\n     " : "", 2 * i, point_type(i), colour, 2 * i + 1, point_type(i), colour,
                        point_title(i, points[i]));
  }
  std::string tics;
  for (size_t s = 0; s < sets.size(); ++s) {
    tics += (s ? ", " : "") + gnuplot_quote("dataset.split_seed=" + sets[s]) + " " + std::to_string(s);
  }
  std::ofstream gp(out / "per_test_set.gp");
  gp << terminal(900, 420 + 22 * static_cast<int>(points.size())) << "set output 'per_test_set.png'\n"
     << "set title " << gnuplot_quote(metric + " per held-out test set: dots are runs, lines each point's mean")
     << "\nset ylabel " << gnuplot_quote(metric) << "\nset grid\nset xtics (" << tics << ")\n"
     << "set xrange [-0.5:" << sets.size() - 0.5 << "]\nset key below\nplot " << plot << "\n";
  gp.close();
  dat.close();  // gnuplot reads the file: flush it first
  run_gnuplot(out / "per_test_set.gp");
  return "per_test_set.png";
}

std::optional<std::string> plot_curves(const fs::path& out, const std::vector<SweepPoint>& points,
                                       const std::vector<const RunRecord*>& done, const std::string& valid_key) {
  // 3. Training curves per sweep point: the mean over its seeds as a line, their range as
  // a band (one line per run was unreadable beyond a handful of runs). None when no run
  // recorded an epoch: gnuplot refuses a plot without points.
  if (std::none_of(done.begin(), done.end(), [](const RunRecord* r) { return !r->curves.empty(); })) {
    return std::nullopt;
  }
  {
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
    return std::string("curves.png");
  }
}

}  // namespace patchbay::cli

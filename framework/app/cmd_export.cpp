// patchbay export: a results file -> CSV files that pandas, R or a spreadsheet open as they
// are.
//
//   --csv RUNS.csv       one row per planned run: id, slug, point, status, reason, every key
//                        of the run's resolved configuration ("train.lr", "patcher.stride",
//                        ...; the swept keys among them), how the run went (wall_seconds,
//                        attempts, epochs_done, host, started, finished, blas, reused_from)
//                        and every final metric (test_accuracy, paper_macs, ...).
//   --curves CURVES.csv  one row per recorded epoch of every run: id, slug, point, then the
//                        curve columns of results/README.md.
//
// CSV as RFC 4180 writes it: comma-separated, a field quoted when it holds a comma, a quote,
// a line break or surrounding spaces, quotes doubled. A value a run does not have (a
// metric of a FAILED run, an option of another plugin) is an empty field, which pandas
// reads as NaN. Numbers are written in the shortest form that reads back to the same double.
// Each file is replaced whole (a temporary, then a rename); "-" writes to standard output.
#include "commands.hpp"
#include "cli_common.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "atomic_file.hpp"
#include "patchbay/error.hpp"
#include "patchbay/results.hpp"
#include "sweep_points.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace patchbay::cli {
namespace {

std::string csv_field(const std::string& text) {
  const bool plain = text.find_first_of(",\"\r\n") == std::string::npos &&
                     (text.empty() || (text.front() != ' ' && text.back() != ' '));
  if (plain) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string csv_number(double v) { return std::isfinite(v) ? fmt::format("{}", v) : std::string(); }

using Row = std::map<std::string, std::string>;

// Rows of named fields and the column order they are written in (a column added twice keeps
// its first place).
struct Table {
  std::vector<std::string> columns;
  std::vector<Row> rows;

  void add_columns(const std::vector<std::string>& names) {
    for (const auto& n : names) {
      if (std::find(columns.begin(), columns.end(), n) == columns.end()) columns.push_back(n);
    }
  }
  std::string text() const {
    std::string out;
    for (size_t i = 0; i < columns.size(); ++i) out += (i ? "," : "") + csv_field(columns[i]);
    out += "\n";
    for (const auto& row : rows) {
      for (size_t i = 0; i < columns.size(); ++i) {
        const auto it = row.find(columns[i]);
        out += (i ? "," : "") + (it == row.end() ? std::string() : csv_field(it->second));
      }
      out += "\n";
    }
    return out;
  }
};

// The leaves of a resolved configuration as dotted keys -> TOML text of the value, strings
// unquoted ("patcher.plugin" -> fftp, "masker.rect_size" -> [8, 8]).
std::map<std::string, std::string> config_columns(const std::string& config_toml) {
  std::map<std::string, std::string> out;
  toml::table table;
  try {
    table = toml::parse(config_toml);
  } catch (const toml::parse_error&) {
    return out;  // a record without a readable configuration: its other columns still count
  }
  std::function<void(const toml::table&, const std::string&)> walk = [&](const toml::table& t,
                                                                          const std::string& prefix) {
    for (const auto& [key, node] : t) {
      const std::string name = prefix + std::string(key.str());
      if (const auto* sub = node.as_table()) {
        walk(*sub, name + ".");
      } else if (const auto* s = node.as_string()) {
        out[name] = s->get();
      } else {
        std::ostringstream text;
        text << toml::toml_formatter(node, toml::format_flags::none);
        out[name] = text.str();
      }
    }
  };
  walk(table, "");
  return out;
}

Row identity_of(const RunRecord& r) {
  return {{"id", r.id}, {"slug", r.slug}, {"point", point_of(r)}};
}

Table runs_table(const PublishedResults& pub) {
  Table t;
  t.add_columns({"id", "slug", "point", "status", "reason"});
  std::set<std::string> config_keys, final_keys;
  for (const auto& r : pub.runs) {
    Row row = identity_of(r);
    row["status"] = to_string(r.status);
    row["reason"] = r.reason;
    for (auto& [k, v] : config_columns(without_plugin_versions(r.config_toml))) {
      config_keys.insert(k);
      row[k] = v;
    }
    row["wall_seconds"] = csv_number(r.wall_seconds);
    row["attempts"] = std::to_string(r.attempts);
    row["epochs_done"] = std::to_string(r.curves.size());
    row["host"] = r.host;
    row["started"] = r.started;
    row["finished"] = r.finished;
    row["blas"] = r.blas;
    row["reused_from"] = r.reused_from;
    for (const auto& [k, v] : r.final) {
      final_keys.insert(k);
      row[k] = csv_number(v);
    }
    t.rows.push_back(std::move(row));
  }
  t.add_columns({config_keys.begin(), config_keys.end()});
  t.add_columns({"wall_seconds", "attempts", "epochs_done", "host", "started", "finished", "blas", "reused_from"});
  t.add_columns({final_keys.begin(), final_keys.end()});
  return t;
}

Table curves_table(const PublishedResults& pub) {
  Table t;
  t.add_columns({"id", "slug", "point", "epoch", "step", "lr", "train_loss", "valid_loss", "valid_accuracy",
                 "valid_mAP", "valid_auc", "epoch_seconds", "train_seconds", "data_seconds", "masked_cells"});
  for (const auto& r : pub.runs) {
    for (const auto& e : r.curves) {
      Row row = identity_of(r);
      row["epoch"] = std::to_string(e.epoch);
      row["step"] = std::to_string(e.step);
      const std::pair<const char*, double> values[] = {
          {"lr", e.lr}, {"train_loss", e.train_loss}, {"valid_loss", e.valid_loss},
          {"valid_accuracy", e.valid_accuracy}, {"valid_mAP", e.valid_mAP}, {"valid_auc", e.valid_auc},
          {"epoch_seconds", e.epoch_seconds}, {"train_seconds", e.train_seconds},
          {"data_seconds", e.data_seconds}, {"masked_cells", e.masked_cells}};
      for (const auto& [k, v] : values) row[k] = csv_number(v);
      t.rows.push_back(std::move(row));
    }
  }
  return t;
}

// Writes `text` to `target` whole, or to standard output for "-".
void write_csv(const std::string& target, const std::string& what, const std::string& text) {
  if (target == "-") {
    std::cout << text << std::flush;
    return;
  }
  const fs::path file(target);
  std::error_code ec;
  if (!file.parent_path().empty() && !fs::is_directory(file.parent_path(), ec)) {
    throw Error("export.write", fmt::format("cannot write '{}': the folder '{}' does not exist; create it or "
                                            "choose another path", target, file.parent_path().string()));
  }
  replace_file(file, what, [&](const fs::path& temp) {
    std::ofstream f(temp, std::ios::binary);
    f << text;
    f.close();
    if (!f) throw std::runtime_error(std::strerror(errno));
  });
}

}  // namespace

int run_results_export(const std::vector<std::string>& args) {
  // No --plugin-dir: exporting reads records, it builds nothing.
  po::options_description desc("patchbay export options");
  desc.add_options()("help,h", "show this help")(
      "json", "print what was written as JSON on stdout (and nothing else)")(
      "csv", po::value<std::string>(), "write the runs as CSV to this file (- for stdout)")(
      "curves", po::value<std::string>(), "write the per-epoch curves of every run as CSV to this file");
  const auto p = parse(args, desc);
  if (wants_help(p, "Usage: patchbay export RESULTS.h5 [--csv RUNS.csv] [--curves CURVES.csv] [--json]\n\n"
                    "Flat CSV files of a results file, for pandas (pd.read_csv), R or a spreadsheet. "
                    "RUNS.csv: one row per planned run with its id, slug, sweep point, status and "
                    "reason, every key of its resolved configuration (train.lr, patcher.stride, ...), "
                    "wall time, attempts and epochs done, and every final metric. CURVES.csv: one row "
                    "per recorded epoch of every run (epoch, step, lr, losses, validation metrics, "
                    "timings). A value a run does not have is an empty field (NaN in pandas).",
                 desc)) {
    return kExitOk;
  }
  if (p.positional.size() != 1) {
    throw ConfigError("cli.missing_file", "which results? usage: patchbay export RESULTS.h5 --csv RUNS.csv "
                                          "[--curves CURVES.csv]");
  }
  if (!p.vm.count("csv") && !p.vm.count("curves")) {
    throw ConfigError("cli.missing_output", "nothing to export: give --csv RUNS.csv and/or --curves CURVES.csv");
  }
  if (p.vm.count("csv") && p.vm.count("curves") && p.vm["csv"].as<std::string>() == p.vm["curves"].as<std::string>()) {
    throw ConfigError("cli.same_output", "--csv and --curves name the same file; give each its own (at most "
                                         "one of them \"-\" for standard output)");
  }
  const PublishedResults pub = read_results(p.positional[0]);
  std::vector<std::string> written;
  nlohmann::json summary = nlohmann::json::object();
  for (const char* kind : {"csv", "curves"}) {
    if (!p.vm.count(kind)) continue;
    const std::string target = p.vm[kind].as<std::string>();
    const bool runs = std::string(kind) == "csv";
    const Table t = runs ? runs_table(pub) : curves_table(pub);
    write_csv(target, runs ? "run table" : "curves table", t.text());
    written.push_back(fmt::format("{} {} ({} rows, {} columns)", runs ? "runs:  " : "curves:", target, t.rows.size(),
                                  t.columns.size()));
    summary[runs ? "runs" : "curves"] = {{"file", target}, {"rows", t.rows.size()}, {"columns", t.columns.size()}};
  }
  // A table written to stdout is the output; a summary would corrupt it.
  const bool to_stdout = (p.vm.count("csv") && p.vm["csv"].as<std::string>() == "-") ||
                         (p.vm.count("curves") && p.vm["curves"].as<std::string>() == "-");
  if (to_stdout) return kExitOk;
  if (p.vm.count("json")) {
    fmt::print("{}\n", summary.dump());
  } else {
    for (const auto& line : written) fmt::print("{}\n", line);
  }
  return kExitOk;
}

}  // namespace patchbay::cli

// patchbay plan: validate an experiment file and print the runs it expands to.
#include "cli_common.hpp"
#include "commands.hpp"
#include "option_json.hpp"

#include <algorithm>
#include <iostream>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "patchbay/config.hpp"
#include "patchbay/error.hpp"
#include "patchbay/shard.hpp"

namespace po = boost::program_options;
using nlohmann::json;

namespace patchbay::cli {
namespace {

json config_json(const ResolvedConfig& c) {
  json out;
  const auto table = [](const Options& o) {
    json t = json::object();
    for (const auto& [k, v] : o.values()) t[k] = to_json(v);
    return t;
  };
  const auto slot = [&](const SlotConfig& s) {
    json t = table(s.options);
    t["plugin"] = s.plugin;
    t["plugin_version"] = s.plugin_version;
    return t;
  };
  out["experiment"] = table(c.experiment);
  out["dataset"] = slot(c.dataset);
  out["frontend"] = table(c.frontend);
  out["patcher"] = slot(c.patcher);
  out["masker"] = slot(c.masker);
  out["token_dropper"] = slot(c.token_dropper);
  out["backbone"] = slot(c.backbone);
  out["train"] = table(c.train);
  return out;
}

// A geometry that leaves most of the input unseen is valid (an ablation may want it) but is
// more often a typo (stride=100 for 10): said once per distinct grid, on stderr.
void warn_unseen_input(const Experiment& exp, const std::vector<PatchGrid>& grids) {
  std::vector<PatchGrid> said;
  for (size_t i = 0; i < grids.size(); ++i) {
    const PatchGrid& g = grids[i];
    const bool frames = 4 * g.unseen_frames() > g.frames, bins = 4 * g.unseen_bins() > g.freq_bins;
    if ((!frames && !bins) || std::find(said.begin(), said.end(), g) != said.end()) continue;
    said.push_back(g);
    fmt::print(stderr, "patchbay plan: warning: run {}: its patches leave {} unseen ({}); check the patcher's "
                       "size and stride\n",
               exp.runs[i].slug,
               frames && bins ? fmt::format("{} of {} frames and {} of {} bins", g.unseen_frames(), g.frames,
                                            g.unseen_bins(), g.freq_bins)
               : frames       ? fmt::format("{} of {} frames", g.unseen_frames(), g.frames)
                              : fmt::format("{} of {} bins", g.unseen_bins(), g.freq_bins),
               g.describe());
  }
}

}  // namespace

int run_plan(const std::vector<std::string>& args) {
  auto desc = common_options("patchbay plan options");
  desc.add_options()("config", "also print each run's resolved configuration as TOML")(
      "shard", po::value<std::string>(), "K/N: only the runs of shard K (0..N-1) of N, as `run --shard` splits them");
  const auto p = parse(args, desc);
  if (wants_help(p, "Usage: patchbay plan FILE [key=value...] [--json] [--config] [--shard K/N]\n\nValidates the "
                    "experiment file (with overrides applied) against every plugin's options, "
                    "expands its [sweep] and prints the runs it expands to, without running "
                    "anything: one row per run, its id and one column per swept key. --json "
                    "gives the axes and, per run, its id, slug, axis values and resolved "
                    "configuration (config, and config_toml as text).",
                 desc)) {
    return kExitOk;
  }
  Registry registry;
  load_plugins(registry, p);
  auto exp = plan_from(p, registry, "plan");
  const size_t planned = exp.runs.size();
  std::string shard_text;
  if (p.vm.count("shard")) {
    const Shard shard = parse_shard(p.vm["shard"].as<std::string>());
    shard_text = shard.text();
    std::vector<std::string> ids;
    for (const auto& r : exp.runs) ids.push_back(r.id);
    std::vector<PlannedRun> kept;
    for (size_t i : shard_positions(ids, shard)) kept.push_back(exp.runs[i]);
    exp.runs = std::move(kept);
  }
  const bool swept = !exp.axes.empty();
  // Each run's grid was checked when the file loaded (load_experiment): here it is only read.
  std::vector<PatchGrid> grids;
  for (const auto& r : exp.runs) grids.push_back(grid_of(r.config, registry));
  warn_unseen_input(exp, grids);
  if (p.vm.count("json")) {
    json out = {{"experiment", exp.name}, {"file", exp.file.string()},
                {"overrides", exp.overrides}, {"axes", json::array()}, {"runs", json::array()}};
    if (!shard_text.empty()) {
      out["shard"] = shard_text;
      out["plan_runs"] = planned;  // the whole plan's size; "runs" lists this shard's
    }
    for (const auto& a : exp.axes) {
      json values = json::array();
      for (const auto& v : a.values) values.push_back(to_json(v));
      out["axes"].push_back({{"key", a.key}, {"values", values}});
    }
    for (const auto& r : exp.runs) {
      json axes = json::object();
      for (const auto& [k, v] : r.axes) axes[k] = to_json(v);
      const auto& g = grids[out["runs"].size()];
      out["runs"].push_back({{"id", r.id}, {"slug", r.slug}, {"axes", axes},
                             {"tokens", g.tokens()}, {"grid", {g.rows, g.cols}},
                             {"config", config_json(r.config)},
                             {"config_toml", r.config.to_toml()}});
    }
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  if (!shard_text.empty()) {
    fmt::print("shard {}: {} of the plan's {} run{}\n", shard_text, exp.runs.size(), planned,
               planned == 1 ? "" : "s");
  }
  if (!swept) {
    fmt::print("experiment '{}' ({}): {} run{}\n\n", exp.name, exp.file.string(), exp.runs.size(),
               exp.runs.size() == 1 ? "" : "s");
    fmt::print("{:<20} {:<12} {:<16} {:<10} {:>7} {:<12} {}\n", "run id", "slug", "dataset",
               "patcher", "tokens", "masker", "backbone");
    for (size_t i = 0; i < exp.runs.size(); ++i) {
      const auto& r = exp.runs[i];
      const auto& c = r.config;
      fmt::print("{:<20} {:<12} {:<16} {:<10} {:>7} {:<12} {}\n", r.id, r.slug, c.dataset.plugin,
                 c.patcher.plugin, grids[i].tokens(), c.masker.plugin, c.backbone.plugin);
    }
  } else {
    // One column per swept key, then the tokens each run's patcher makes.
    std::vector<std::string> keys;
    for (const auto& a : exp.axes) keys.push_back(a.key);
    fmt::print("experiment '{}' ({}): {} run{} ({} ax{}: {})\n\n", exp.name, exp.file.string(),
               exp.runs.size(), exp.runs.size() == 1 ? "" : "s", keys.size(),
               keys.size() == 1 ? "is" : "es", fmt::join(keys, ", "));
    const auto cell = [](const OptionValue& v) {
      if (const auto* s = std::get_if<std::string>(&v)) return *s;
      return to_toml(v);
    };
    std::vector<std::vector<std::string>> table;
    table.push_back({"run id"});
    for (const auto& k : keys) table.back().push_back(k);
    table.back().push_back("tokens");
    for (size_t i = 0; i < exp.runs.size(); ++i) {
      const auto& r = exp.runs[i];
      std::vector<std::string> row{r.id};
      for (const auto& k : keys) {
        std::string value = "-";  // a row that does not set this key
        for (const auto& [rk, rv] : r.axes) {
          if (rk == k) value = cell(rv);
        }
        row.push_back(value);
      }
      row.push_back(std::to_string(grids[i].tokens()));
      table.push_back(std::move(row));
    }
    std::vector<size_t> width(table[0].size(), 0);
    for (const auto& row : table) {
      for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
    }
    for (const auto& row : table) {
      std::string line;
      for (size_t c = 0; c < row.size(); ++c) {
        const bool last = c + 1 == row.size();
        line += last ? fmt::format("{:>{}}", row[c], width[c]) : fmt::format("{:<{}}  ", row[c], width[c]);
      }
      fmt::print("{}\n", line);
    }
  }
  if (p.vm.count("config")) {
    for (const auto& r : exp.runs) fmt::print("\n# run {}\n{}", r.id, r.config.to_toml());
  }
  return kExitOk;
}

}  // namespace patchbay::cli

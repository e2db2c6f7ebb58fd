#include "commands.hpp"
#include "cli_common.hpp"

#include <chrono>
#include <iostream>
#include <thread>

#include <ATen/Parallel.h>
#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>

#include "patchbay/config.hpp"
#include "patchbay/error.hpp"
#include "patchbay/loader.hpp"
#include "patchbay/model.hpp"
#include "patchbay/shard.hpp"
#include "patchbay/version.hpp"

namespace po = boost::program_options;
using nlohmann::json;

namespace patchbay::cli {
namespace {

json to_json(const OptionValue& v) {
  return std::visit([](const auto& x) { return json(x); }, v);
}

const char* type_name(OptionType t) {
  switch (t) {
    case OptionType::boolean: return "bool";
    case OptionType::integer: return "int";
    case OptionType::real: return "float";
    case OptionType::string: return "string";
    case OptionType::integer_list: return "int list";
    case OptionType::real_list: return "float list";
    case OptionType::string_list: return "string list";
    case OptionType::integer_pair: return "int pair";
  }
  return "?";
}

std::string describe_constraint(const OptionSpec& s) {
  if (!s.choices.empty()) {
    std::string out = "one of:";
    for (const auto& c : s.choices) out += " " + c;
    return out;
  }
  if (s.range.min && s.range.max) return fmt::format("{} .. {}", *s.range.min, *s.range.max);
  if (s.range.min) return fmt::format(">= {}", *s.range.min);
  if (s.range.max) return fmt::format("<= {}", *s.range.max);
  return "";
}

json schema_json(const OptionSchema& schema) {
  json options = json::array();
  for (const auto& s : schema.specs()) {
    json o = {{"name", s.name}, {"type", type_name(s.type)}, {"help", s.help}};
    o["default"] = s.default_value ? to_json(*s.default_value) : json(nullptr);
    o["required"] = !s.default_value.has_value();
    if (s.range.min) o["min"] = *s.range.min;
    if (s.range.max) o["max"] = *s.range.max;
    if (!s.choices.empty()) o["choices"] = s.choices;
    options.push_back(o);
  }
  return options;
}

void print_schema(const OptionSchema& schema, const std::string& indent) {
  size_t width = 4;
  for (const auto& s : schema.specs()) width = std::max(width, s.name.size());
  for (const auto& s : schema.specs()) {
    const std::string def = s.default_value ? to_toml(*s.default_value) : "(required)";
    const std::string constraint = describe_constraint(s);
    fmt::print("{}{:<{}}  {:<11} {:<14} {}{}\n", indent, s.name, width, type_name(s.type), def,
               s.help, constraint.empty() ? "" : " [" + constraint + "]");
  }
}

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
  out["backbone"] = slot(c.backbone);
  out["train"] = table(c.train);
  return out;
}

}  // namespace

int run_plugins(const std::vector<std::string>& args) {
  auto desc = common_options("patchbay plugins options");
  const auto p = parse(args, desc);
  if (wants_help(p, "Usage: patchbay plugins [--json] [--plugin-dir DIR]\n\nLists every plugin "
                    "found: kind, name, version, file, and its options (type, default, help).",
                 desc)) {
    return kExitOk;
  }
  if (!p.positional.empty()) {
    throw ConfigError("cli.unexpected", fmt::format("'plugins' takes no arguments, got '{}'",
                                                    p.positional[0]));
  }
  Registry registry;
  load_plugins(registry, p);
  if (p.vm.count("json")) {
    json out = {{"patchbay_version", version()}, {"plugins", json::array()}};
    for (auto kind : kAllPluginKinds) {
      for (const auto* e : registry.entries(kind)) {
        out["plugins"].push_back({{"kind", to_string(kind)},
                                  {"name", e->name()},
                                  {"library", e->origin.library},
                                  {"version", e->origin.version},
                                  {"file", e->origin.file},
                                  {"help", e->description.help},
                                  {"options", schema_json(e->description.options)}});
      }
    }
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  for (auto kind : kAllPluginKinds) {
    const auto entries = registry.entries(kind);
    fmt::print("{} ({})\n", plural(kind), entries.size());
    for (const auto* e : entries) {
      fmt::print("  {} {}  {}\n    from {}\n", e->name(), e->origin.version, e->description.help,
                 e->origin.file);
      print_schema(e->description.options, "      ");
    }
    fmt::print("\n");
  }
  return kExitOk;
}

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
  std::vector<PatchGrid> grids;
  for (const auto& r : exp.runs) {
    try {
      grids.push_back(grid_of(r.config, registry));
    } catch (const ShapeError& e) {
      if (!swept) throw;
      throw ShapeError(e.id(), fmt::format("run {}: {}", r.id, e.what()));
    }
  }
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

int run_cost(const std::vector<std::string>& args) {
  auto desc = common_options("patchbay cost options");
  desc.add_options()("classes", po::value<int64_t>()->default_value(35),
                     "number of output classes C")(
      "repeats", po::value<int>()->default_value(20), "timed forward passes (median reported)")(
      "batch", po::value<int64_t>()->default_value(32), "batch size of the throughput measurement (0: skip it)");
  const auto p = parse(args, desc);
  if (wants_help(p, "Usage: patchbay cost FILE [key=value...] [--json] [--classes C] "
                    "[--repeats N] [--batch B]\n\nBuilds each planned run's patcher and backbone (no data, "
                    "no training) and reports tokens, parameters, paper MACs (Linear + Conv "
                    "multiply-accumulates, the FFTP paper's \"GFLOPs\"), full FLOPs, the median "
                    "CPU latency of a batch-1 forward pass on random input and the inference "
                    "throughput at --batch. Threads: the run's train.threads (0: all cores).",
                 desc)) {
    return kExitOk;
  }
  const int64_t classes = p.vm["classes"].as<int64_t>();
  const int repeats = p.vm["repeats"].as<int>();
  if (repeats < 1) throw po::error(fmt::format("--repeats must be at least 1, got {}", repeats));
  const int64_t batch = std::max<int64_t>(0, p.vm["batch"].as<int64_t>());
  Registry registry;
  load_plugins(registry, p);
  const auto exp = plan_from(p, registry, "cost");
  json rows = json::array();
  for (const auto& run : exp.runs) {
    const auto& c = run.config;
    const int64_t threads = c.train.get_int("threads");
    at::set_num_threads(threads > 0 ? static_cast<int>(threads)
                                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    torch::manual_seed(c.train.get_int("seed"));
    Model model = build_model(c, registry, classes);
    const Latency latency = measure_latency(model, batch, repeats);
    const Cost cost = model.cost();
    rows.push_back({{"id", run.id},
                    {"patcher", c.patcher.plugin},
                    {"backbone", c.backbone.plugin},
                    {"grid", model.grid().describe()},
                    {"tokens", model.grid().tokens()},
                    {"params", cost.params},
                    {"paper_macs", cost.paper_macs},
                    {"flops", cost.flops},
                    {"latency_ms_median", latency.batch1_ms},
                    {"throughput_batch", batch},
                    {"throughput_per_s", latency.throughput},
                    {"threads", latency.threads}});
    if (!model.matched_option.empty()) rows.back()["matched_" + model.matched_option] = model.matched_value;
  }
  if (p.vm.count("json")) {
    std::cout << json{{"experiment", exp.name}, {"runs", rows}}.dump(2) << "\n";
    return kExitOk;
  }
  size_t id_width = 20;
  for (const auto& r : rows) id_width = std::max(id_width, r["id"].get<std::string>().size());
  fmt::print("{:<{}} {:<9} {:<13} {:>7} {:>11} {:>13} {:>12} {:>12} {:>10}\n", "run id", id_width, "patcher",
             "backbone", "tokens", "params", "paper GMACs", "GFLOPs", "latency ms", "clips/s");
  for (const auto& r : rows) {
    fmt::print("{:<{}} {:<9} {:<13} {:>7} {:>11} {:>13.4f} {:>12.4f} {:>12.3f} {:>10.1f}\n",
               r["id"].get<std::string>(), id_width, r["patcher"].get<std::string>(),
               r["backbone"].get<std::string>(), r["tokens"].get<int64_t>(),
               r["params"].get<int64_t>(), r["paper_macs"].get<int64_t>() / 1e9,
               r["flops"].get<int64_t>() / 1e9, r["latency_ms_median"].get<double>(),
               r["throughput_per_s"].get<double>());
    for (const char* key : {"matched_embed_dim", "matched_depth"}) {
      if (r.contains(key)) fmt::print("  (match_paper_macs: {} = {})\n", key + 8, r[key].get<int64_t>());
    }
  }
  fmt::print("(latency: batch 1, median of {} forward passes; clips/s: batch {}; {} intra-op threads)\n",
             repeats, batch, rows.empty() ? 0 : rows[0]["threads"].get<int>());
  return kExitOk;
}

}  // namespace patchbay::cli

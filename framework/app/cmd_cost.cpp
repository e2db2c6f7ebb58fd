// patchbay cost: build each planned model and report tokens, parameters, MACs, latency.
#include "cli_common.hpp"
#include "commands.hpp"

#include <chrono>
#include <thread>

#include <ATen/Parallel.h>
#include <iostream>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>

#include "patchbay/config.hpp"
#include "patchbay/device.hpp"
#include "patchbay/error.hpp"
#include "patchbay/model.hpp"

namespace po = boost::program_options;
using nlohmann::json;

namespace patchbay::cli {

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
                    "latency of a batch-1 forward pass (on the run's train.device, in its "
                    "train.precision) on random input and the inference "
                    "throughput at --batch. Threads: the run's train.threads (0: all cores).",
                 desc)) {
    return kExitOk;
  }
  const int64_t classes = p.vm["classes"].as<int64_t>();
  const int repeats = p.vm["repeats"].as<int>();
  if (classes < 1) throw po::error(fmt::format("--classes must be at least 1, got {}", classes));
  if (repeats < 1) throw po::error(fmt::format("--repeats must be at least 1, got {}", repeats));
  const int64_t batch = p.vm["batch"].as<int64_t>();
  if (batch < 0) throw po::error(fmt::format("--batch must be 0 (skip the throughput) or more, got {}", batch));
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
    // On the run's train.device (synchronised there) and in its train.precision.
    const c10::Device device = device_of(c.train.get_string("device"));
    require_device(device);
    model.to(device);
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
                    {"threads", latency.threads},
                    {"device", device.str()},
                    {"precision", to_string(model.precision)}});
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

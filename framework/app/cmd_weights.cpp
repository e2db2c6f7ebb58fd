// patchbay weights: a trained run's model as an HDF5 file of tensors named as the original
// PyTorch code names them (export), and what such a file holds (list). Importing is a run
// option, train.init_weights. Format and name tables: docs/weights.md.
#include <iostream>
#include <sstream>

#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <torch/serialize.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "cli_common.hpp"
#include "commands.hpp"
#include "patchbay/error.hpp"
#include "patchbay/model.hpp"
#include "patchbay/results.hpp"
#include "patchbay/weights.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using nlohmann::json;

namespace patchbay::cli {
namespace {

constexpr const char* kUsage = R"(Usage:
  patchbay weights export RUN_DIR|CHECKPOINT.pt --out W.h5 [--best|--last] [--json]
  patchbay weights list W.h5 [--json]

export  rebuilds a run's model from the configuration its run.h5 records, loads the best
        epoch's weights (--best, the default) or the last epoch's (--last) from its
        checkpoint.pt, and writes them as one float32 dataset per tensor, named as the
        original PyTorch implementation names it (AST: v.blocks.0.attn.qkv.weight, ...;
        AuM: layers.0.mixer.in_proj.weight, ...). RUN_DIR is R.h5.runs/<run id>; a
        CHECKPOINT.pt must sit in its run folder, beside run.h5.
list    prints the tensors of a weights file: name, shape, dtype, patchbay's name.

Load a file in Python with tools/load_weights.py; start a run from one with
train.init_weights = "W.h5". Names and format: docs/weights.md.)";

// Where the run's record lives: R.h5.runs/<id>/run.h5 -> (store R.h5, id).
std::pair<ResultsStore, std::string> store_of(const fs::path& run_dir) {
  const fs::path dir = fs::absolute(run_dir).lexically_normal();
  const fs::path folder = dir.filename().empty() ? dir.parent_path() : dir;
  const std::string runs = folder.parent_path().string();
  const std::string suffix = ".runs";
  if (!fs::exists(folder / "run.h5") || runs.size() <= suffix.size() ||
      runs.compare(runs.size() - suffix.size(), suffix.size(), suffix) != 0) {
    throw Error("weights.no_run",
                fmt::format("'{}' is not a run folder (R.h5.runs/<run id>/ with run.h5): export "
                            "reads the run's configuration from its run.h5, beside checkpoint.pt",
                            folder.string()));
  }
  return {ResultsStore(runs.substr(0, runs.size() - suffix.size())), folder.filename().string()};
}

int run_export(const std::vector<std::string>& args) {
  auto desc = common_options("patchbay weights export options");
  desc.add_options()("out,o", po::value<std::string>(), "write the weights file here (required)")(
      "best", "the best epoch on validation (default)")("last", "the last epoch trained");
  const auto p = parse(args, desc);
  if (wants_help(p, kUsage, desc)) return kExitOk;
  if (p.positional.size() != 1) throw po::error("name one run folder or checkpoint.pt");
  if (!p.vm.count("out")) throw po::error("--out W.h5 is required");
  if (p.vm.count("best") && p.vm.count("last")) throw po::error("--best and --last exclude each other");
  const bool last = p.vm.count("last") > 0;

  const fs::path given = p.positional[0];
  if (!fs::exists(given)) {
    throw Error("weights.no_run", fmt::format("'{}' does not exist; name a run folder "
                                              "(R.h5.runs/<run id>) or its checkpoint.pt", given.string()));
  }
  const bool is_dir = fs::is_directory(given);
  const fs::path run_dir = is_dir ? given : fs::absolute(given).parent_path();
  const fs::path checkpoint = is_dir ? given / "checkpoint.pt" : given;
  const auto [store, id] = store_of(run_dir);
  const auto rec = store.read_run(id);
  if (!rec || rec->config_toml.empty()) {
    throw Error("weights.no_run", fmt::format("run '{}' records no configuration in its run.h5", id));
  }
  if (!fs::exists(checkpoint)) {
    throw Error("weights.no_checkpoint",
                fmt::format("run '{}' has no checkpoint '{}' (status {}): the trainer writes it after "
                            "each epoch; run the experiment first", id, checkpoint.string(),
                            to_string(rec->status)));
  }

  Registry registry;
  load_plugins(registry, p);
  const auto exp = load_experiment_text(without_plugin_versions(rec->config_toml),
                                        (run_dir / "run.h5").string(), {}, registry);
  const ResolvedConfig& config = exp.runs.front().config;
  int64_t num_classes = static_cast<int64_t>(rec->class_names.size());
  if (num_classes == 0 && rec->final.count("num_classes")) {
    num_classes = static_cast<int64_t>(rec->final.at("num_classes"));
  }
  Model model = build_model(config, registry, num_classes);

  torch::serialize::InputArchive archive;
  try {
    archive.load_from(checkpoint.string());
  } catch (const c10::Error& e) {  // LibTorch's message, without its stack trace
    throw Error("weights.checkpoint",
                fmt::format("cannot read checkpoint '{}': it is truncated or not a checkpoint ({}); "
                            "export another run's, or run the experiment again to rewrite it",
                            checkpoint.string(), e.what_without_backtrace()));
  }
  const std::string prefix = last ? "model/" : "best/";
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : model.named_state()) {
      at::Tensor v;
      try {
        archive.read(prefix + name, v, /*is_buffer=*/true);
      } catch (const c10::Error&) {
        throw Error("weights.checkpoint",
                    fmt::format("checkpoint '{}' has no tensor '{}{}': it was not written for the "
                                "model run.h5 describes", checkpoint.string(), prefix, name));
      }
      if (v.sizes() != t.sizes()) {
        throw Error("weights.checkpoint",
                    fmt::format("checkpoint '{}' holds '{}{}' as [{}] but the model built from run.h5 "
                                "has [{}]", checkpoint.string(), prefix, name, fmt::join(v.sizes(), ", "),
                                fmt::join(t.sizes(), ", ")));
      }
      t.copy_(v);
    }
  }
  at::Tensor epoch;
  archive.read(last ? "epoch" : "best_epoch", epoch, true);
  const std::string source = fmt::format("{} ({} epoch {}) of run {}", checkpoint.string(),
                                         last ? "last" : "best", epoch.item<int64_t>(), id);
  const fs::path out = p.vm["out"].as<std::string>();
  export_weights(model, out, source, rec->config_toml);

  const auto names = weight_names(model);
  int64_t values = 0;
  for (const auto& w : names) values += w.tensor.numel();
  if (p.vm.count("json")) {
    json tensors = json::array();
    for (const auto& w : names) tensors.push_back({{"name", w.file}, {"patchbay_name", w.patchbay},
                                                   {"shape", w.tensor.sizes().vec()}});
    std::cout << json{{"out", out.string()}, {"source", source}, {"architecture", model.backbone_name},
                      {"tensors", tensors}, {"values", values}}.dump(2) << "\n";
  } else {
    fmt::print("{}: {} tensors ({} values) of patcher '{}' + backbone '{}', from {}\n", out.string(),
               names.size(), values, model.patcher_name, model.backbone_name, source);
  }
  return kExitOk;
}

int run_list(const std::vector<std::string>& args) {
  po::options_description desc("patchbay weights list options");
  desc.add_options()("help,h", "show this help")("json", "print JSON on stdout (and nothing else)");
  const auto p = parse(args, desc);
  if (wants_help(p, kUsage, desc)) return kExitOk;
  if (p.positional.size() != 1) throw po::error("name one weights file");
  const auto index = read_weights_index(p.positional[0]);
  if (p.vm.count("json")) {
    json tensors = json::array();
    for (const auto& t : index.tensors) {
      tensors.push_back({{"name", t.name}, {"shape", t.shape}, {"dtype", t.dtype},
                         {"patchbay_name", t.patchbay_name}});
    }
    json attrs = json::object();
    for (const auto& [k, v] : index.attrs) attrs[k] = v;
    std::cout << json{{"file", p.positional[0]}, {"attrs", attrs}, {"tensors", tensors}}.dump(2) << "\n";
    return kExitOk;
  }
  for (const char* key : {"architecture", "patcher", "names", "source"}) {
    const auto it = index.attrs.find(key);
    if (it != index.attrs.end()) fmt::print("# {}: {}\n", key, it->second);
  }
  size_t width = 4;
  for (const auto& t : index.tensors) width = std::max(width, t.name.size());
  int64_t values = 0;
  for (const auto& t : index.tensors) {
    int64_t n = 1;
    for (auto d : t.shape) n *= d;
    values += n;
    fmt::print("{:<{}}  {:<18}  {:<8}  {}\n", t.name, width, fmt::format("[{}]", fmt::join(t.shape, ", ")),
               t.dtype, t.patchbay_name);
  }
  fmt::print("# {} tensors, {} values\n", index.tensors.size(), values);
  return kExitOk;
}

}  // namespace

int run_weights(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "-h" || args[0] == "--help") {
    fmt::print(args.empty() ? stderr : stdout, "{}\n", kUsage);
    return args.empty() ? kExitUsage : kExitOk;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "export") return run_export(rest);
  if (args[0] == "list") return run_list(rest);
  throw po::error(fmt::format("unknown subcommand '{}' (export, list)", args[0]));
}

}  // namespace patchbay::cli

// patchbay weights: a trained run's model as an HDF5 file of tensors named as the original
// PyTorch code names them (export), a checkpoint of the original code brought in, adapted to
// an experiment's model when asked (import), and what a file holds (list). Starting a run
// from weights is a run option, train.init_weights. Format and name tables: docs/weights.md.
#include <iostream>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "commands.hpp"
#include "patchbay/error.hpp"
#include "patchbay/model.hpp"
#include "patchbay/results.hpp"
#include "patchbay/weights.hpp"
#include "patchbay/weights_load.hpp"
#include "trained_model.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using nlohmann::json;

namespace patchbay::cli {
namespace {

constexpr const char* kUsage = R"(Usage:
  patchbay weights export RUN_DIR|CHECKPOINT.pt --out W.h5 [--best|--last] [--json]
  patchbay weights import CKPT --out W.h5 [--grid RxC] [--for EXPERIMENT.toml --classes N
                          [--strict] [--exclude GLOBS] [KEY=VALUE...]] [--json]
  patchbay weights list W.h5 [--json]

export  rebuilds a run's model from the configuration its run.h5 records, loads the best
        epoch's weights (--best, the default) or the last epoch's (--last) from its
        checkpoint.pt, and writes them as one float32 dataset per tensor, named as the
        original PyTorch implementation names it (AST: v.blocks.0.attn.qkv.weight, ...;
        AuM: layers.0.mixer.in_proj.weight, ...). RUN_DIR is R.h5.runs/<run id>; a
        CHECKPOINT.pt must sit in its run folder, beside run.h5.
import  reads a checkpoint as the original code publishes it -- a torch.save file (.pth,
        .pt: a state dict, also nested under "model" / "state_dict", DataParallel's
        "module." prefix removed) or an HDF5 state dict -- and writes it as a weights
        file. --grid RxC records the token grid its positional embedding was trained on
        (rows along frequency x columns along time; AST on AudioSet: 12x101), which
        adapting it to another geometry needs. With --for, the tensors are loaded into the
        model of the experiment's first run (--classes: its dataset's class count) as
        train.init_weights would -- adapting the positional and patch embeddings, a fresh
        head for another class count, --exclude's globs left out; --strict: exact fit
        only --, every tensor's fate is printed, and W.h5 holds that model's weights.
list    prints the tensors of a weights file: name, shape, dtype, patchbay's name.

Load a file in Python with tools/load_weights.py; start a run from one with
train.init_weights = "W.h5" (or a .pth directly). Names, format and the adaptation
methods: docs/weights.md.)";

// "12x101" -> (12, 101).
std::pair<int64_t, int64_t> parse_grid(const std::string& text) {
  const size_t x = text.find('x');
  try {
    size_t used = 0;
    const int64_t rows = std::stoll(text.substr(0, x), &used);
    const int64_t cols = x == std::string::npos ? 0 : std::stoll(text.substr(x + 1));
    if (x != std::string::npos && used == x && rows > 0 && cols > 0) return {rows, cols};
  } catch (const std::exception&) {
  }
  throw po::error(fmt::format("--grid '{}': give ROWSxCOLS, e.g. 12x101 (AST on AudioSet's 128 x 1024 input at "
                              "stride 10)", text));
}

void print_report(const InitReport& report) {
  for (const auto& a : report.actions) {
    fmt::print("  {:<8} {}{}\n", to_string(a.kind), a.name, a.detail.empty() ? "" : ": " + a.detail);
  }
  fmt::print("# {}\n", report.summary());
}

int run_import(const std::vector<std::string>& args) {
  auto desc = common_options("patchbay weights import options");
  desc.add_options()("out,o", po::value<std::string>(), "write the weights file here (required)")(
      "grid", po::value<std::string>(), "the checkpoint's positional token grid, ROWSxCOLS")(
      "for", po::value<std::string>(), "adapt to the model of this experiment's first run")(
      "classes", po::value<int64_t>(), "with --for: the dataset's class count")(
      "strict", "with --for: every tensor must fit exactly")(
      "exclude", po::value<std::string>()->default_value(""), "with --for: comma-separated globs of tensor "
      "names to leave out");
  const auto p = parse(args, desc);
  if (wants_help(p, kUsage, desc)) return kExitOk;
  if (p.positional.empty()) throw po::error("name a checkpoint (.pth, .pt or .h5) to import");
  if (!p.vm.count("out")) throw po::error("--out W.h5 is required");
  if (!p.vm.count("for") && p.positional.size() > 1) throw po::error("KEY=VALUE overrides need --for");
  if (!p.vm.count("for") && (p.vm.count("classes") || p.vm.count("strict"))) {
    throw po::error("--classes and --strict go with --for EXPERIMENT.toml");
  }
  std::optional<std::pair<int64_t, int64_t>> grid;
  if (p.vm.count("grid")) grid = parse_grid(p.vm["grid"].as<std::string>());
  WeightsSource src = read_weights_source(p.positional[0]);
  if (grid) src.grid = grid;
  const fs::path out = p.vm["out"].as<std::string>();
  if (!p.vm.count("for")) {
    write_weights_source(src, out);
    fmt::print("{}: {} tensors from {}: {}{}\n", out.string(), src.tensors.size(), src.file.string(), src.format,
               src.grid ? fmt::format(", grid {}x{}", src.grid->first, src.grid->second) : "");
    return kExitOk;
  }
  if (!p.vm.count("classes") || p.vm["classes"].as<int64_t>() < 1) {
    throw po::error("--for needs --classes N (1 or more): the class count of the experiment's dataset");
  }
  Registry registry;
  load_plugins(registry, p);
  const auto exp = load_experiment(p.vm["for"].as<std::string>(),
                                   std::vector<std::string>(p.positional.begin() + 1, p.positional.end()), registry);
  const ResolvedConfig& config = exp.runs.front().config;
  torch::manual_seed(static_cast<uint64_t>(config.train.get_int("seed")));  // fresh tensors as the run's
  Model model = build_model(config, registry, p.vm["classes"].as<int64_t>());
  const InitReport report = load_weights(model, src, {p.vm.count("strict") > 0,
                                                      split_patterns(p.vm["exclude"].as<std::string>())});
  const std::string source = fmt::format("{} ({}), imported for {}: {}", src.file.string(), src.format,
                                         p.vm["for"].as<std::string>(), report.summary());
  export_weights(model, out, source, config.to_toml());
  if (p.vm.count("json")) {
    json actions = json::array();
    for (const auto& a : report.actions) {
      actions.push_back({{"name", a.name}, {"patchbay_name", a.patchbay}, {"action", to_string(a.kind)},
                         {"detail", a.detail}});
    }
    std::cout << json{{"out", out.string()}, {"source", src.file.string()}, {"format", src.format},
                      {"summary", report.summary()}, {"tensors", actions}}.dump(2) << "\n";
    return kExitOk;
  }
  fmt::print("{}: patcher '{}' + backbone '{}' from {} ({})\n", out.string(), model.patcher_name, model.backbone_name,
             src.file.string(), src.format);
  print_report(report);
  return kExitOk;
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

  Registry registry;
  load_plugins(registry, p);
  const fs::path given = p.positional[0];
  if (fs::is_regular_file(given) && given.extension() == ".h5") {
    throw po::error(fmt::format("'{}' is a weights file already; export reads a run folder (R.h5.runs/<run id>) "
                                "or its checkpoint.pt", given.string()));
  }
  const TrainedModel trained = load_trained_model(given, registry, last ? Epoch::last : Epoch::best);
  const Model& model = trained.model;
  const std::string& source = trained.source;
  const fs::path out = p.vm["out"].as<std::string>();
  export_weights(model, out, source, trained.config_toml, trained.has_inference ? &trained.inference : nullptr);

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
  if (args[0] == "import") return run_import(rest);
  if (args[0] == "list") return run_list(rest);
  throw po::error(fmt::format("unknown subcommand '{}' (export, import, list)", args[0]));
}

}  // namespace patchbay::cli

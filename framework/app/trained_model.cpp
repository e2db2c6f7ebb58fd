#include "trained_model.hpp"

#include <cmath>
#include <optional>

#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/serialize.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "cli_common.hpp"
#include "patchbay/error.hpp"
#include "patchbay/results.hpp"
#include "patchbay/weights_load.hpp"

namespace fs = std::filesystem;

namespace patchbay::cli {
namespace {

// Where the run's record lives: R.h5.runs/<id>/run.h5 -> (store R.h5, id).
std::pair<ResultsStore, std::string> store_of(const fs::path& run_dir) {
  const fs::path dir = fs::absolute(run_dir).lexically_normal();
  const fs::path folder = dir.filename().empty() ? dir.parent_path() : dir;
  const std::string runs = folder.parent_path().string();
  const std::string suffix = ".runs";
  if (!fs::exists(folder / "run.h5") || runs.size() <= suffix.size() ||
      runs.compare(runs.size() - suffix.size(), suffix.size(), suffix) != 0) {
    throw Error("weights.no_run",
                fmt::format("'{}' is not a run folder (R.h5.runs/<run id>/ with run.h5): the run's "
                            "configuration is read from its run.h5, beside checkpoint.pt",
                            folder.string()));
  }
  return {ResultsStore(runs.substr(0, runs.size() - suffix.size())), folder.filename().string()};
}

// The model and front end a resolved configuration (a run's or a weights file's) describes.
struct Built {
  Model model;
  FbankOptions frontend;
};
Built build_from_toml(const std::string& config_toml, const std::string& where, const Registry& registry,
                      int64_t num_classes) {
  const auto exp = load_experiment_text(without_plugin_versions(config_toml), where, {}, registry);
  const ResolvedConfig& config = exp.runs.front().config;
  return {build_model(config, registry, num_classes), FbankOptions::from(config.frontend)};
}

// Loads `prefix` + each state name of the model from checkpoint.pt; returns the epoch.
int64_t load_checkpoint(Model& model, const fs::path& checkpoint, Epoch epoch) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(checkpoint.string(), torch::kCPU);  // a GPU run's checkpoint too
  } catch (const c10::Error& e) {  // LibTorch's message, without its stack trace
    throw Error("weights.checkpoint",
                fmt::format("cannot read checkpoint '{}': it is truncated or not a checkpoint ({}); "
                            "use another run's, or run the experiment again to rewrite it",
                            checkpoint.string(), e.what_without_backtrace()));
  }
  const std::string prefix = epoch == Epoch::last ? "model/" : "best/";
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : model.named_state()) {
    at::Tensor v;
    try {
      archive.read(prefix + name, v, /*is_buffer=*/true);
    } catch (const c10::Error&) {
      throw Error("weights.checkpoint", fmt::format("checkpoint '{}' has no tensor '{}{}': it was not written for "
                                                    "the model run.h5 describes", checkpoint.string(), prefix, name));
    }
    if (v.sizes() != t.sizes()) {
      throw Error("weights.checkpoint",
                  fmt::format("checkpoint '{}' holds '{}{}' as [{}] but the model built from run.h5 has [{}]",
                              checkpoint.string(), prefix, name, fmt::join(v.sizes(), ", "),
                              fmt::join(t.sizes(), ", ")));
    }
    t.copy_(v);
  }
  at::Tensor e;
  archive.read(epoch == Epoch::last ? "epoch" : "best_epoch", e, true);
  return e.item<int64_t>();
}

TrainedModel from_weights_file(const fs::path& file, const Registry& registry) {
  const WeightsSource source = read_weights_source(file);
  std::vector<std::string> missing;
  for (const char* key : {"config", "class_names", "multi_label", "norm_mean", "norm_std"}) {
    const auto it = source.attrs.find(key);
    if (it == source.attrs.end() || (std::string(key) == "config" && it->second.empty())) missing.push_back(key);
  }
  const auto info = inference_info(source.attrs);
  if (!missing.empty() || !info) {
    const std::string what = missing.empty()
                                 ? "readable inference attributes (multi_label, norm_mean, norm_std hold no numbers)"
                                 : fmt::format("the attribute{} {}", missing.size() == 1 ? "" : "s", fmt::join(missing, ", "));
    throw Error("predict.incomplete_weights",
                fmt::format("weights file '{}' lacks {}, which inference needs (the model's configuration, class "
                            "names and normalisation); export it again from its run (`patchbay weights export "
                            "RUN_DIR --out W.h5` records them), or predict from the run folder itself",
                            file.string(), what));
  }
  const std::string& config = source.attrs.at("config");
  Built built = build_from_toml(config, file.string(), registry, static_cast<int64_t>(info->class_names.size()));
  load_weights(built.model, source, InitOptions{/*strict=*/true, {}});
  return {std::move(built.model), config, built.frontend, *info, true, file.string()};
}

// A run folder's (or its checkpoint.pt's) folder, checkpoint and run record.
struct RunFolder {
  fs::path dir, checkpoint;
  RunRecord record;
};

RunFolder open_run_folder(const fs::path& given) {
  if (!fs::exists(given)) {
    throw Error("weights.no_run", fmt::format("'{}' does not exist; name a run folder (R.h5.runs/<run id>) or its "
                                              "checkpoint.pt", given.string()));
  }
  const bool is_dir = fs::is_directory(given);
  RunFolder out;
  out.dir = is_dir ? given : fs::absolute(given).parent_path();
  out.checkpoint = is_dir ? given / "checkpoint.pt" : given;
  const auto [store, id] = store_of(out.dir);
  auto rec = store.read_run(id);
  if (!rec || rec->config_toml.empty()) {
    throw Error("weights.no_run", fmt::format("run '{}' records no configuration in its run.h5", id));
  }
  if (!fs::exists(out.checkpoint)) {
    throw Error("weights.no_checkpoint",
                fmt::format("run '{}' has no checkpoint '{}' (status {}): the trainer writes it after each epoch; "
                            "run the experiment first", id, out.checkpoint.string(), to_string(rec->status)));
  }
  out.record = std::move(*rec);
  return out;
}

// The run's class names, multi_label and normalisation statistics; nothing when the record
// lacks them (a run that never loaded its data).
std::optional<InferenceInfo> inference_of(const RunRecord& rec) {
  InferenceInfo info;
  info.class_names = rec.class_names;
  const auto final = [&](const char* key) {
    const auto it = rec.final.find(key);
    return it == rec.final.end() ? NAN : it->second;
  };
  info.multi_label = final("multi_label") == 1.0;
  info.norm_mean = final("norm_mean");
  info.norm_std = final("norm_std");
  if (info.class_names.empty() || !std::isfinite(info.norm_mean) || !std::isfinite(info.norm_std)) return std::nullopt;
  return info;
}

}  // namespace

TrainedModel load_trained_model(const fs::path& model, const Registry& registry, Epoch epoch) {
  if (fs::is_regular_file(model) && model.extension() == ".h5") return from_weights_file(model, registry);
  const RunFolder run = open_run_folder(model);
  const std::string where = (run.dir / "run.h5").string();
  const auto info = inference_of(run.record);
  int64_t num_classes = static_cast<int64_t>(run.record.class_names.size());
  if (num_classes == 0 && run.record.final.count("num_classes")) {
    num_classes = static_cast<int64_t>(run.record.final.at("num_classes"));
  }
  Built built = build_from_toml(run.record.config_toml, where, registry, num_classes);
  TrainedModel out{std::move(built.model), run.record.config_toml, built.frontend, info.value_or(InferenceInfo{}),
                   info.has_value(), ""};
  const int64_t e = load_checkpoint(out.model, run.checkpoint, epoch);
  out.source = fmt::format("{} ({} epoch {}) of run {}", run.checkpoint.string(),
                           epoch == Epoch::last ? "last" : "best", e, run.record.id);
  return out;
}

}  // namespace patchbay::cli

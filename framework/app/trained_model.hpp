// A trained model with everything inference needs, loaded from a run folder or from an
// exported weights file (`patchbay predict`, `patchbay weights export`).
//
//   Registry registry;  load_plugins(registry, parsed);
//   TrainedModel m = load_trained_model("results/study.h5.runs/abc123", registry, Epoch::best);
//   m.model.train(false);
//   at::Tensor x = normalize(pad_or_crop(Fbank(m.frontend).compute(wave), m.frontend.target_frames),
//                            m.inference.norm_mean, m.inference.norm_std);
//
// From a run folder (R.h5.runs/<id>, or its checkpoint.pt): the model is rebuilt from the
// configuration its run.h5 records and loaded from checkpoint.pt (`best/...` or `model/...`);
// class names, multi-label and the normalisation statistics come from run.h5. A path
// ending in .h5 that is a file is a weights file; anything else a run folder.
// From a weights file (weights.hpp's format): the model is rebuilt from its `config`
// attribute and loaded strictly (read once: weights_load.hpp); the rest from its inference attributes
// (class_names, multi_label, norm_mean, norm_std), which `weights export` writes from a run.
//
// Errors: Error "weights.no_run" (not a run folder, no configuration recorded),
// "weights.no_checkpoint", "weights.checkpoint" (unreadable, or tensors that do not fit),
// "predict.incomplete_weights" (a weights file without its config or inference attributes:
// the message says which and what to do), plus those of weights.hpp and build_model.
#pragma once
#include <filesystem>
#include <string>

#include "patchbay/fbank.hpp"
#include "patchbay/model.hpp"
#include "patchbay/registry.hpp"
#include "patchbay/weights.hpp"

namespace patchbay::cli {

enum class Epoch { best, last };

struct TrainedModel {
  Model model;
  std::string config_toml;   // the resolved configuration it was built from
  FbankOptions frontend;     // the front end it was trained with
  InferenceInfo inference;   // class names, multi-label, normalisation statistics
  bool has_inference = false;  // false: a run that recorded no class names or statistics
  std::string source;        // "checkpoint.pt (best epoch 7) of run abc", or the weights file
};

TrainedModel load_trained_model(const std::filesystem::path& model, const Registry& registry, Epoch epoch);

}  // namespace patchbay::cli

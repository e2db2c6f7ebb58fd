// Weights in and out: a model's tensors as one flat HDF5 file, named as the original PyTorch
// implementations name them, so the original code (or tools/load_weights.py) loads a
// patchbay model with load_state_dict(strict=True), and patchbay starts from weights trained
// elsewhere. The name tables are in docs/weights.md.
//
//   export_weights(model, "ast.h5", "runs/abc/checkpoint.pt (best epoch 7)", config.to_toml());
//   import_weights(other, "ast.h5");                 // every tensor, by name and shape
//   for (const auto& t : read_weights_index("ast.h5").tensors) fmt::print("{}\n", t.name);
//
// Names: the plugins declare them (Patcher / Backbone ::original_names). A backbone that
// declares none keeps patchbay's names for the whole model ("patcher.proj.weight",
// "backbone.head.weight"); otherwise the backbone's tensors take its names and the
// patcher's take the backbone's original_patcher_prefix() + the patcher's names (or
// "patcher.<name>" when the patcher declares none).
//
// File (format "patchbay.weights", version 1): one dataset per tensor at the root, named
// with the name above, float32 (int64 for integer buffers), C order, the tensor's shape,
// with attribute "patchbay_name" (Model::named_state's name). Root attributes: format,
// format_version, names ("original" or "patchbay"), architecture (the backbone plugin),
// patcher (the patcher plugin), source, config (the resolved TOML; may be empty),
// patchbay_version, and the geometry as int64: freq_bins, frames, patch_freq, patch_time,
// stride_freq, stride_time, tokens, num_classes; and, from a run, InferenceInfo's below. In Python,
// {k: torch.from_numpy(v[()]) for k, v in h5py.File(path).items()} is a state_dict.
//
// import_weights reads any flat HDF5 file of numeric datasets (h5py-written state dicts
// included; the attributes are not needed).
//
// Errors: Error "weights.mismatch" (a tensor missing from the file, one the model does not
// have, or a shape that differs: the message names the first and counts the rest),
// "weights.not_found" (no such file), "weights.unreadable" (not HDF5, or a dataset that is
// not numeric), PluginError "weights.bad_mapping" (a plugin's name list misses, repeats or
// invents a tensor); HDF5 write failures as Error "results.hdf5".
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "patchbay/export.hpp"
#include "patchbay/model.hpp"

namespace patchbay {

inline constexpr int64_t kWeightsFormatVersion = 1;

// One tensor of a model and its name in a weights file.
struct WeightName {
  std::string patchbay;  // as Model::named_state: "backbone.blocks.0.norm1.weight"
  std::string file;      // in the file: "v.blocks.0.norm1.weight"
  at::Tensor tensor;     // the model's tensor (shares storage)
};

// The model's state (Model::named_state order) with the names a weights file uses.
// Throws PluginError "weights.bad_mapping".
PATCHBAY_API std::vector<WeightName> weight_names(const Model& model);

// What inference needs beyond the tensors and the configuration (patchbay predict): written
// as root attributes class_names (the names joined by newlines, in label order),
// multi_label (int64 0/1), norm_mean and norm_std (float64: the front end's normalisation,
// (x - norm_mean) / (2 norm_std), with the statistics the run trained with).
struct InferenceInfo {
  std::vector<std::string> class_names;
  bool multi_label = false;
  double norm_mean = 0.0, norm_std = 0.5;
};

// Writes every tensor of the model's state (see the header comment). `source` says where the
// weights come from; `config_toml` is the model's resolved configuration ("" when unknown);
// `inference`, when given, adds its attributes (Error "weights.class_name" for a class name
// holding a newline). The file is written beside its target and renamed into place.
PATCHBAY_API void export_weights(const Model& model, const std::filesystem::path& file,
                                 const std::string& source, const std::string& config_toml = "",
                                 const InferenceInfo* inference = nullptr);


// Copies every tensor of the model's state from `file` (a weights file, any flat HDF5 state
// dict, or a torch.save checkpoint), matched by name, after checking them all: nothing is
// changed when anything is missing, unexpected or of another shape. load_weights
// (weights_load.hpp) is the same with geometry adaptation and a report.
PATCHBAY_API void import_weights(Model& model, const std::filesystem::path& file);

struct StoredTensor {
  std::string name;           // dataset name
  std::string patchbay_name;  // its "patchbay_name" attribute ("" when absent)
  std::vector<int64_t> shape;
  std::string dtype;          // "float32", "float64", "int64", ... as stored
};

struct WeightsIndex {
  std::map<std::string, std::string> attrs;  // the root's attributes, as text
  std::vector<StoredTensor> tensors;         // in name order
};

// What a weights file holds, without reading the data.
PATCHBAY_API WeightsIndex read_weights_index(const std::filesystem::path& file);

// The inference attributes among a weights file's root attributes (WeightsIndex::attrs,
// WeightsSource::attrs), or nothing when any of them is missing or unreadable (a file
// exported before they existed, or written elsewhere).
PATCHBAY_API std::optional<InferenceInfo> inference_info(const std::map<std::string, std::string>& attrs);

}  // namespace patchbay

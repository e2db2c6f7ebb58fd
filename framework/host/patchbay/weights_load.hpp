// Loading weights into a model: from patchbay's HDF5 weights files, any flat HDF5 state dict,
// or a torch.save checkpoint as the peers publish them, exactly or adapted to this model's
// geometry, with a report of what happened to every tensor (train.init_weights,
// `patchbay weights import`). Methods and their properties: docs/weights.md.
//
//   WeightsSource src = read_weights_source("audioset_10_10_0.4593.pth");  // or W.h5
//   InitReport r = load_weights(model, src, {/*strict=*/false, {"mlp_head.*"}});
//   log_info("{}", r.summary());   // "41 loaded, 2 adapted, 2 fresh, 4 ignored"
//
// What `strict = false` may do, tensor by tensor (InitAction::Kind), by the file's names:
// - loaded: same name and shape (any float / integer dtype, converted to the model's);
// - adapted: the backbone's positional embedding (WeightLayout::pos_embed) to another token
//   grid: the class / distillation rows kept, the grid's rows resized (bilinear over
//   frequency x time; a square grid going to one row -- FFTP -- is first averaged over its
//   rows); the patch embedding's Conv2d kernel [D, 1, kf, kt] to the patcher's [D, 1, pf, pt]:
//   along frequency tiled pf / kf times and divided by pf / kf when pf is a multiple of kf (an
//   FFTP token is then the mean of the square model's tokens over that time slice), else
//   resampled by cell overlap; along time resampled by cell overlap. Both preserve the
//   response to a constant input exactly;
// - fresh: kept as the model initialised it: a classification head whose class count
//   differs (first dimension = the model's classes, the rest equal), or a name matching an
//   `exclude` pattern (fnmatch globs on the file's names, "mlp_head.*");
// - ignored: a file tensor the model has no use for: matching `exclude`, or declared unused
//   by the backbone (WeightLayout::unused_originals: AST's v.head, v.head_dist).
// Anything else -- a tensor missing from the file, one the model does not have, a shape
// that no rule adapts -- is a mismatch. `strict = true` allows "loaded" only, and what
// `exclude` names (an explicit choice, honoured in both modes).
//
// Errors: Error "weights.mismatch" (every mismatch counted, the first named, nothing
// changed), "weights.grid_unknown" (the positional embedding must be resized but the file
// does not record its grid: convert it with `patchbay weights import --grid RxC`),
// "weights.not_found", "weights.unreadable" (neither HDF5 nor a torch.save zip, or as
// read_torch_checkpoint says), PluginError "weights.bad_mapping" (weight_names).
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

struct WeightsSource {
  std::filesystem::path file;
  std::string format;                          // "patchbay weights file", "torch.save checkpoint (...)", ...
  std::map<std::string, at::Tensor> tensors;   // by the file's names, CPU
  std::map<std::string, std::string> attrs;    // an HDF5 file's root attributes, as text
  // The positional grid (rows along frequency, cols along time) the file's weights were
  // trained on, when it says: attributes grid_rows / grid_cols, or a patchbay export's
  // geometry (freq_bins, frames, patch_*, stride_*).
  std::optional<std::pair<int64_t, int64_t>> grid;
};

PATCHBAY_API WeightsSource read_weights_source(const std::filesystem::path& file);

// Writes the source's tensors as they are named (float32 / int64 datasets), with root
// attributes names = "original", source, patchbay_version and, when known, grid_rows /
// grid_cols: `patchbay weights import` without --for. Replaced whole, as export_weights.
PATCHBAY_API void write_weights_source(const WeightsSource& source, const std::filesystem::path& file);

struct InitOptions {
  bool strict = true;
  std::vector<std::string> exclude;  // fnmatch patterns on the file's tensor names
};

struct InitAction {
  enum class Kind { loaded, adapted, fresh, ignored };
  Kind kind = Kind::loaded;
  std::string name;      // in the file ("v.pos_embed")
  std::string patchbay;  // Model::named_state's name ("" for an ignored file tensor)
  std::string detail;    // for adapted / fresh / ignored: how and why
};

struct PATCHBAY_API InitReport {
  std::vector<InitAction> actions;  // the model's tensors in state order, then ignored ones
  int64_t count(InitAction::Kind kind) const;
  std::string summary() const;  // "37 loaded, 2 adapted, 2 fresh, 4 ignored"
  std::string details() const;  // one line per action other than "loaded"
};

PATCHBAY_API const char* to_string(InitAction::Kind kind);

// Checks everything first; changes the model only when nothing is a mismatch.
PATCHBAY_API InitReport load_weights(Model& model, const WeightsSource& source, const InitOptions& options);

// "mlp_head.*, head.*" -> {"mlp_head.*", "head.*"} (train.init_exclude's text).
PATCHBAY_API std::vector<std::string> split_patterns(const std::string& text);

}  // namespace patchbay

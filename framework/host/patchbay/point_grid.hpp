// The patch grid one resolved run makes of its input, checked as training will use it, so
// that `plan` and `run` refuse bad geometry at load time, at the file's line, before anything
// trains (config.cpp calls it for every sweep point).
//
//   GridStage stage;
//   const PatchGrid grid = point_grid(run.config, registry, &stage);  // 29 tokens for FFTP st 4
//
// What it does, in order (`stage` says which one threw):
//   patcher        builds the patcher for the front end's input shape (num_mel_bins x
//                  target_frames) and the backbone's embed_dim; ShapeError "shape.patch_geometry"
//                  for a patch larger than the input, or the plugin's own ConfigError;
//   masker         Masker::check against that grid (ConfigError, e.g. a budget above the
//                  grid's tokens);
//   token_dropper  TokenDropper::check against it (skipped for "none").
// Points that share these options share one build (thread-safe cache): a patcher's grid
// depends only on its options and the input shape (the Patcher contract), so a 10,000-point
// sweep over the seed builds one patcher, not 10,000 (each build initialises its weights).
// The default CPU generator's state is the same after the call as before it.
#pragma once

#include "patchbay/export.hpp"
#include "patchbay/patch_grid.hpp"

namespace patchbay {

struct ResolvedConfig;
class Registry;

enum class GridStage { patcher, masker, token_dropper };

// The section of the experiment file a stage's options live in: "patcher", "masker",
// "token_dropper".
PATCHBAY_API const char* section_of(GridStage stage);

// Throws what the plugin of the failing stage threw; `stage` (if given) is set before each
// stage runs, so after a throw it names the stage that threw.
PATCHBAY_API PatchGrid point_grid(const ResolvedConfig& config, const Registry& registry,
                                  GridStage* stage = nullptr);

}  // namespace patchbay

// The five plugin interfaces: Dataset, Patcher, Masker, TokenDropper, Backbone.
//
// One run wires them as: dataset clips -> front end (framework) -> log-mel [B, F, T]
// -> masker (training only) -> patcher [B, 1, F, T] -> tokens [B, N, D] + PatchGrid
// -> token dropper (training only: which K of the N tokens) -> backbone -> logits [B, C]. All tensors are LibTorch tensors, batch first, float32 on
// the run's device unless stated. A plugin never sees another plugin, only tensors and the
// PatchGrid.
//
// Ownership: factories return std::shared_ptr; the host owns the objects and keeps the
// plugin library loaded for as long as any of them lives (libraries are never unloaded).
// Errors: a factory or method throws patchbay::ConfigError for bad options,
// patchbay::ShapeError for shapes it cannot accept and patchbay::DataError for bad data;
// anything else is wrapped by the host as a PluginError naming the plugin.
//
// Only the Tensor declaration is included here (cheap to compile); implementations include
// <torch/nn.h>.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "patchbay/export.hpp"
#include "patchbay/patch_grid.hpp"

namespace torch::nn {
class Module;
}

namespace patchbay {

// ---------------------------------------------------------------------------------------
// Dataset: lists clips and their labels. It does not decode audio (the front end does).

enum class Split { train, valid, test };
PATCHBAY_API const char* to_string(Split split);

struct Clip {
  std::string id;                // unique within the dataset, stable across runs
  std::filesystem::path path;    // absolute path of the audio file
  std::vector<int64_t> labels;   // class indices; exactly one unless multi_label()
};

class PATCHBAY_API Dataset {
 public:
  virtual ~Dataset();
  // Class names, index = label. Non-empty.
  virtual const std::vector<std::string>& class_names() const = 0;
  // True when a clip can carry several labels (train with BCE, report mAP).
  virtual bool multi_label() const = 0;
  // The clips of one split in a deterministic order (same options and files, same list).
  // Throws DataError naming the file when the layout is broken.
  virtual std::vector<Clip> clips(Split split) const = 0;
  // Clips the dataset left out because their files were missing or bad (on_bad_clip =
  // "skip"), as paths; the run records them. Empty by default.
  virtual std::vector<std::string> skipped_clips() const { return {}; }
  // What the front end does with a clip it cannot decode (unreadable, empty, too short,
  // NaN/Inf): false (the default, on_bad_clip = "error") stops the run with the clip's
  // DataError; true (on_bad_clip = "skip") leaves the clip out and the run records it.
  virtual bool skip_bad_clips() const { return false; }
};

struct DatasetContext {
  // Relative paths in options are resolved against this folder (the experiment file's).
  std::filesystem::path base_dir;
};

// ---------------------------------------------------------------------------------------
// Patcher: spectrogram -> tokens. Owns the patch embedding's parameters.

struct PatcherContext {
  int64_t freq_bins = 128;   // F, the front end's num_mel_bins
  int64_t frames = 128;      // T, the front end's target_frames
  int64_t embed_dim = 192;   // D, decided by the backbone
};

class PATCHBAY_API Patcher {
 public:
  virtual ~Patcher();
  // The geometry for the context the patcher was made for (fixed at construction; the
  // factory throws ShapeError naming the option and the input shape if it does not fit).
  virtual const PatchGrid& grid() const = 0;
  // spec [B, 1, F, T] -> tokens [B, grid().tokens(), D], token order frequency-major.
  // Throws ShapeError if F or T differ from the context.
  virtual at::Tensor forward(const at::Tensor& spec) = 0;
  // The learnable parameters (the trainer optimises, moves and checkpoints this module).
  virtual torch::nn::Module& module() = 0;
  // Parameters and MACs of one example's forward pass.
  virtual Cost cost() const = 0;
  // The names the original PyTorch implementation gives module()'s state (parameters and
  // buffers), as (module() name, original name) pairs, e.g. ("proj.weight",
  // "patch_embed.proj.weight"); the backbone decides where the original nests them
  // (Backbone::original_patcher_prefix). `patchbay weights` exports under these names.
  // Empty (the default): patchbay's own names ("patcher.<name>"). A non-empty list names
  // every tensor of module() exactly once.
  virtual std::vector<std::pair<std::string, std::string>> original_names() const { return {}; }
};

// ---------------------------------------------------------------------------------------
// Masker: training-time augmentation of the spectrogram. Stateless apart from options;
// all randomness comes from the generator so the same seed gives the same masks.

struct MaskResult {
  at::Tensor spec;          // [B, F, T], same dtype and device as the input
  at::Tensor masked_cells;  // [B] int64: cells actually masked per example (overlaps once)
  // [B, F, T] bool: the masked cells (masked_cells[b] == mask[b].sum()). Optional: a masker
  // that leaves it undefined has its full-frequency cells recorded as 0.
  at::Tensor mask;
};

// What a masker knows of the run besides the spectrogram.
struct PATCHBAY_API MaskContext {
  MaskContext(const PatchGrid& g) : grid(g) {}  // NOLINT: implicit, a grid is enough
  PatchGrid grid;  // the configured patcher's geometry (for alignment)
  // The front end's normalisation, normalised = (raw log-mel - norm_mean) / norm_scale, so a
  // masker can fill in raw units (AST's SpecAugment fills raw 0). Identity by default.
  double norm_mean = 0.0, norm_scale = 1.0;
  double normalised(double raw) const { return (raw - norm_mean) / norm_scale; }
};

class PATCHBAY_API Masker {
 public:
  virtual ~Masker();
  // spec [B, F, T] (normalised); generator = the run's CPU generator. Never modifies
  // `spec` in place.
  virtual MaskResult apply(const at::Tensor& spec, const MaskContext& context,
                           at::Generator& generator) const = 0;
  // Checks the options against the run's geometry before anything trains (`patchbay plan`
  // and every run call it once); throws ConfigError naming the option and the spectrogram
  // when they cannot work there (a budget larger than the spectrogram). Accepts all by default.
  virtual void check(const MaskContext& /*context*/) const {}
};

// Cells of full-frequency frames (every bin masked) per example: mask [B, F, T] bool -> [B]
// int64 (F x the number of such frames).
PATCHBAY_API at::Tensor full_frequency_cells(const at::Tensor& mask);

// ---------------------------------------------------------------------------------------
// TokenDropper: training-time augmentation of the token sequence (PaSST's patchout): which
// of the patcher's tokens the backbone sees in one training step. The backbone adds its
// position information to all N tokens first and then keeps these (Backbone::forward_kept),
// so a kept token keeps its place. Evaluation always sees every token. Stateless apart from
// options; all randomness comes from the generator.

class PATCHBAY_API TokenDropper {
 public:
  virtual ~TokenDropper();
  // How many tokens keep() returns on this grid, K with 1 <= K <= grid.tokens(): fixed for a
  // run, so every training step has the same shape and the run can record what it costs.
  virtual int64_t kept(const PatchGrid& grid) const = 0;
  // One training step's tokens: int64 [kept(grid)], strictly increasing indices into
  // 0 .. grid.tokens() - 1 (frequency-major, token = row * cols + col), the same for every
  // example of the batch (as PaSST). generator = the run's CPU generator. The host checks
  // the contract and refuses a plugin that breaks it (PluginError).
  virtual at::Tensor keep(const PatchGrid& grid, at::Generator& generator) const = 0;
  // Checks the options against the run's grid before anything trains (as Masker::check):
  // throws ConfigError naming the option and the grid when they cannot work there (more
  // time columns dropped than the grid has). Accepts all by default.
  virtual void check(const PatchGrid& /*grid*/) const {}
};

// ---------------------------------------------------------------------------------------
// Backbone: tokens -> logits.

struct BackboneContext {
  PatchGrid grid;            // the patcher's geometry (N = grid.tokens())
  int64_t embed_dim = 192;   // D, as the backbone's embed_dim function reported it
  int64_t num_classes = 2;   // C
};

// Backbone::weight_layout(): where the geometry enters a backbone's state.
struct WeightLayout {
  // module() name of the positional embedding, [1, S + N, D]: N rows for the grid's tokens
  // (frequency-major, as PatchGrid orders them) and S for class / distillation tokens; ""
  // when the backbone has none.
  std::string pos_embed;
  int64_t special_tokens = 0;     // S
  bool specials_in_middle = false;  // false: rows 0 .. S-1 (AST, DeiT); true: at N / 2 (AuM, Vim)
  // Original names that published checkpoints of this architecture hold but the model never
  // uses (AST's timm encoder keeps two ImageNet heads): skipped, and reported as ignored.
  std::vector<std::string> unused_originals;
};

class PATCHBAY_API Backbone {
 public:
  virtual ~Backbone();
  // tokens [B, N, D] -> logits [B, C] (no sigmoid / softmax: the loss works on logits).
  // Throws ShapeError if N or D differ from the context.
  virtual at::Tensor forward(const at::Tensor& tokens) = 0;
  // Token dropping (training with a TokenDropper other than "none"): tokens [B, N, D] as the
  // patcher made them, keep int64 [K] as TokenDropper::keep returns it. The backbone adds its
  // position information to all N tokens, then runs on the K kept ones (and its own class
  // tokens), as PaSST's forward_features. Equals forward(tokens) when keep is 0 .. N-1.
  // A backbone that overrides it returns true from drops_tokens(); the host refuses a token
  // dropper with one that does not (ConfigError "config.token_drop_unsupported"), and the
  // default forward_kept throws that error.
  virtual bool drops_tokens() const { return false; }
  virtual at::Tensor forward_kept(const at::Tensor& tokens, const at::Tensor& keep);
  virtual torch::nn::Module& module() = 0;
  // Parameters and MACs of one example's forward pass over grid.tokens() tokens.
  virtual Cost cost() const = 0;
  // As Patcher::original_names, for module()'s state: (module() name, original name), e.g.
  // ("blocks.0.norm1.weight", "v.blocks.0.norm1.weight"). Empty (the default): the backbone
  // has no original to match, and every tensor of the model, the patcher's included, keeps
  // patchbay's name ("patcher.<name>", "backbone.<name>").
  virtual std::vector<std::pair<std::string, std::string>> original_names() const { return {}; }
  // Where the original model keeps the patch embedding: prefixed to the patcher's original
  // names ("v." for AST, whose timm encoder `v` holds patch_embed; "" for AuM).
  virtual std::string original_patcher_prefix() const { return ""; }
  // The backbone's recipe for the patch embedding it is paired with: the host calls it once,
  // right after building both and before any weights are loaded, under no_grad, with the
  // run's seeded generator state. AuM re-initialises the patcher's weights as its reference
  // does (lecun_normal_, zero bias); the default keeps the patcher's own initialisation
  // (AST: PyTorch's Conv2d default, as AST's from-scratch patch embedding).
  virtual void init_patcher(Patcher& /*patcher*/) const {}
  // How the backbone's weights depend on the geometry, for loading weights trained on another
  // one (train.init_weights, `patchbay weights import --for`; docs/weights.md). The default
  // declares nothing: such tensors then load only at their exact shape.
  virtual WeightLayout weight_layout() const { return {}; }
};

}  // namespace patchbay

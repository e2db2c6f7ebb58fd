// A patcher whose patch embedding is one Conv2d with kernel = stride geometry taken from a
// PatchGrid (AST's square patches and FFTP's full-frequency patches are both this).
// Header-only so each patcher plugin compiles its own copy: plugins share nothing but the
// core library.
#pragma once
#include <fmt/format.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>

#include "patchbay/error.hpp"
#include "patchbay/plugin_kinds.hpp"

namespace patchbay::plugins {

class ConvPatcher final : public Patcher {
 public:
  ConvPatcher(std::string name, PatchGrid grid, int64_t embed_dim)
      : name_(std::move(name)), grid_(grid), embed_dim_(embed_dim),
        holder_(std::make_shared<torch::nn::Module>("ConvPatcher")) {
    proj_ = holder_->register_module(
        "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, embed_dim, {grid.patch_freq, grid.patch_time})
                                      .stride({grid.stride_freq, grid.stride_time})));
  }

  const PatchGrid& grid() const override { return grid_; }

  at::Tensor forward(const at::Tensor& spec) override {
    if (spec.dim() != 4 || spec.size(1) != 1 || spec.size(2) != grid_.freq_bins ||
        spec.size(3) != grid_.frames) {
      throw ShapeError("shape.patcher_input",
                       fmt::format("patcher '{}' expects a spectrogram batch [B, 1, {}, {}], got [{}]",
                                   name_, grid_.freq_bins, grid_.frames,
                                   fmt::join(spec.sizes(), ", ")));
    }
    // [B, D, rows, cols] -> [B, rows * cols, D]: flatten(2) is frequency-major, as AST.
    return proj_->forward(spec).flatten(2).transpose(1, 2);
  }

  torch::nn::Module& module() override { return *holder_; }

  // timm's PatchEmbed, which AST (inside `v`) and AuM both use: patch_embed.proj.
  std::vector<std::pair<std::string, std::string>> original_names() const override {
    return {{"proj.weight", "patch_embed.proj.weight"}, {"proj.bias", "patch_embed.proj.bias"}};
  }

  Cost cost() const override {
    const int64_t kernel = grid_.patch_freq * grid_.patch_time;
    Cost c;
    c.params = embed_dim_ * kernel + embed_dim_;
    c.paper_macs = grid_.tokens() * embed_dim_ * kernel;
    c.flops = 2 * c.paper_macs;
    return c;
  }

 private:
  std::string name_;
  PatchGrid grid_;
  int64_t embed_dim_;
  std::shared_ptr<torch::nn::Module> holder_;
  torch::nn::Conv2d proj_{nullptr};
};

// Builds the grid, restating a geometry error with the plugin's own option names.
inline PatchGrid make_grid_or_explain(const std::string& what, const PatcherContext& c,
                                      int64_t pf, int64_t pt, int64_t sf, int64_t st) {
  try {
    return PatchGrid::make(c.freq_bins, c.frames, pf, pt, sf, st);
  } catch (const ShapeError& e) {
    throw ShapeError(e.id(), fmt::format("{}: {}", what, e.what()));
  }
}

}  // namespace patchbay::plugins

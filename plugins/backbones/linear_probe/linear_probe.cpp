// `linear_probe`: tokens -> LayerNorm -> mean over tokens -> Linear. The weakest sensible
// backbone: it sees only what the patch embedding learns, so it is a floor for comparisons
// and the cheapest real model for smoke runs.
#include <fmt/format.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "patchbay/error.hpp"
#include "patchbay/plugin.hpp"

namespace {

class LinearProbe final : public patchbay::Backbone {
 public:
  explicit LinearProbe(const patchbay::BackboneContext& ctx)
      : ctx_(ctx), holder_(std::make_shared<torch::nn::Module>("LinearProbe")) {
    norm_ = holder_->register_module(
        "norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({ctx.embed_dim}).eps(1e-6)));
    head_ = holder_->register_module("head", torch::nn::Linear(ctx.embed_dim, ctx.num_classes));
  }

  at::Tensor forward(const at::Tensor& tokens) override {
    check(tokens);
    return head_->forward(norm_->forward(tokens).mean(1));
  }

  // No positions: the mean over the kept tokens.
  bool drops_tokens() const override { return true; }
  at::Tensor forward_kept(const at::Tensor& tokens, const at::Tensor& keep) override {
    check(tokens);
    return head_->forward(norm_->forward(tokens.index_select(1, keep.to(tokens.device()))).mean(1));
  }

  void check(const at::Tensor& tokens) const {
    if (tokens.dim() != 3 || tokens.size(1) != ctx_.grid.tokens() || tokens.size(2) != ctx_.embed_dim) {
      throw patchbay::ShapeError(
          "shape.backbone_input",
          fmt::format("backbone 'linear_probe' expects tokens [B, {}, {}], got [{}]",
                      ctx_.grid.tokens(), ctx_.embed_dim, fmt::join(tokens.sizes(), ", ")));
    }
  }

  torch::nn::Module& module() override { return *holder_; }

  patchbay::Cost cost() const override {
    const int64_t d = ctx_.embed_dim, c = ctx_.num_classes;
    patchbay::Cost cost;
    cost.params = 2 * d + d * c + c;
    cost.paper_macs = d * c;
    cost.flops = 2 * d * c;
    return cost;
  }

 private:
  patchbay::BackboneContext ctx_;
  std::shared_ptr<torch::nn::Module> holder_;
  torch::nn::LayerNorm norm_{nullptr};
  torch::nn::Linear head_{nullptr};
};

}  // namespace

void register_linear_probe(patchbay::Registrar& registrar) {
  using namespace patchbay;
  OptionSchema s;
  s.add_int("embed_dim", 192, "token width D the patcher produces", Range::between(1, 65536));
  registrar.add_backbone(
      {"linear_probe", "LayerNorm, mean over tokens, Linear: a floor for comparisons", s},
      [](const Options& o) { return o.get_int("embed_dim"); },
      [](const Options&, const BackboneContext& c) { return std::make_shared<LinearProbe>(c); });
}

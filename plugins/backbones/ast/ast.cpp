// `ast`: the Audio Spectrogram Transformer's encoder (docs/reference.md §2), fed by any patcher.
//
// tokens [B, N, D] -> prepend class and distillation tokens -> + positional embedding
// (N + 2, sized from the patch grid) -> depth x pre-norm blocks (multi-head self-attention,
// MLP with exact GELU) -> LayerNorm -> mean of the two extra tokens -> LayerNorm + Linear.
// Parameter names and shapes follow the original (timm DeiT inside AST): cls_token,
// dist_token, pos_embed, blocks.<i>.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}, norm,
// mlp_head.{0,1}; the patch embedding lives in the patcher.
#include <cmath>

#include <fmt/format.h>
#include <torch/nn.h>

#include "patchbay/error.hpp"
#include "patchbay/plugin.hpp"

namespace {

struct Preset {
  const char* name;
  int64_t dim, heads;
};
constexpr Preset kPresets[] = {{"tiny", 192, 3}, {"small", 384, 6}, {"base", 768, 12}};

struct Shape {
  int64_t dim, heads, depth, hidden;
  double dropout, attn_dropout, drop_path;
};

Shape shape_from(const patchbay::Options& o) {
  Shape s{};
  for (const auto& p : kPresets) {
    if (o.get_string("preset") == p.name) {
      s.dim = p.dim;
      s.heads = p.heads;
    }
  }
  if (o.get_int("embed_dim") > 0) s.dim = o.get_int("embed_dim");
  if (o.get_int("heads") > 0) s.heads = o.get_int("heads");
  s.depth = o.get_int("depth");
  s.hidden = static_cast<int64_t>(std::llround(static_cast<double>(s.dim) * o.get_real("mlp_ratio")));
  s.dropout = o.get_real("dropout");
  s.attn_dropout = o.get_real("attn_dropout");
  s.drop_path = o.get_real("drop_path");
  if (s.dim % s.heads != 0) {
    throw patchbay::ConfigError(
        "config.ast_heads", fmt::format("backbone 'ast': embed_dim {} is not divisible by heads {}; "
                                        "choose heads that divide the width", s.dim, s.heads));
  }
  return s;
}

// Stochastic depth: drops a residual branch per example while training.
at::Tensor drop_path(const at::Tensor& x, double p, bool training) {
  if (!training || p <= 0.0) return x;
  const auto keep = torch::empty({x.size(0), 1, 1}, x.options()).bernoulli_(1.0 - p);
  return x * keep / (1.0 - p);
}

struct AttentionImpl : torch::nn::Module {
  AttentionImpl(int64_t dim, int64_t heads, double attn_drop, double proj_drop)
      : heads_(heads), scale_(1.0 / std::sqrt(static_cast<double>(dim / heads))) {
    qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(dim, 3 * dim).bias(true)));
    proj = register_module("proj", torch::nn::Linear(dim, dim));
    attn_drop_ = register_module("attn_drop", torch::nn::Dropout(attn_drop));
    proj_drop_ = register_module("proj_drop", torch::nn::Dropout(proj_drop));
  }
  at::Tensor forward(const at::Tensor& x) {
    const int64_t b = x.size(0), n = x.size(1), c = x.size(2);
    const auto qkv_out = qkv->forward(x).reshape({b, n, 3, heads_, c / heads_}).permute({2, 0, 3, 1, 4});
    const auto q = qkv_out[0], k = qkv_out[1], v = qkv_out[2];
    auto attn = torch::matmul(q * scale_, k.transpose(-2, -1)).softmax(-1);
    attn = attn_drop_->forward(attn);
    const auto y = torch::matmul(attn, v).transpose(1, 2).reshape({b, n, c});
    return proj_drop_->forward(proj->forward(y));
  }
  int64_t heads_;
  double scale_;
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
  torch::nn::Dropout attn_drop_{nullptr}, proj_drop_{nullptr};
};
TORCH_MODULE(Attention);

struct MlpImpl : torch::nn::Module {
  MlpImpl(int64_t dim, int64_t hidden, double drop) {
    fc1 = register_module("fc1", torch::nn::Linear(dim, hidden));
    fc2 = register_module("fc2", torch::nn::Linear(hidden, dim));
    drop_ = register_module("drop", torch::nn::Dropout(drop));
  }
  at::Tensor forward(const at::Tensor& x) {
    return drop_->forward(fc2->forward(drop_->forward(torch::gelu(fc1->forward(x)))));
  }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::nn::Dropout drop_{nullptr};
};
TORCH_MODULE(Mlp);

struct BlockImpl : torch::nn::Module {
  BlockImpl(const Shape& s, double drop_path_rate) : drop_path_(drop_path_rate) {
    const auto ln = torch::nn::LayerNormOptions({s.dim}).eps(1e-6);
    norm1 = register_module("norm1", torch::nn::LayerNorm(ln));
    attn = register_module("attn", Attention(s.dim, s.heads, s.attn_dropout, s.dropout));
    norm2 = register_module("norm2", torch::nn::LayerNorm(ln));
    mlp = register_module("mlp", Mlp(s.dim, s.hidden, s.dropout));
  }
  at::Tensor forward(at::Tensor x) {
    x = x + drop_path(attn->forward(norm1->forward(x)), drop_path_, is_training());
    return x + drop_path(mlp->forward(norm2->forward(x)), drop_path_, is_training());
  }
  double drop_path_;
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  Attention attn{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(Block);

// timm's trunc_normal_(t, std=.02) truncates at -2 and 2 in absolute units, i.e. at 100 std:
// in effect a plain normal. We do the same, so from-scratch statistics match the original.
void trunc_normal_(at::Tensor t, double std) {
  torch::NoGradGuard no_grad;
  t.normal_(0.0, std).clamp_(-2.0, 2.0);
}

class Ast final : public patchbay::Backbone {
 public:
  Ast(const Shape& s, const patchbay::BackboneContext& ctx)
      : shape_(s), ctx_(ctx), root_(std::make_shared<torch::nn::Module>("AST")) {
    if (ctx.embed_dim != s.dim) {
      throw patchbay::ShapeError("shape.backbone_width",
                                 fmt::format("backbone 'ast' is {} wide but the patcher makes "
                                             "{}-wide tokens", s.dim, ctx.embed_dim));
    }
    const int64_t n = ctx.grid.tokens();
    cls_token_ = root_->register_parameter("cls_token", torch::zeros({1, 1, s.dim}));
    dist_token_ = root_->register_parameter("dist_token", torch::zeros({1, 1, s.dim}));
    pos_embed_ = root_->register_parameter("pos_embed", torch::zeros({1, n + 2, s.dim}));
    pos_drop_ = root_->register_module("pos_drop", torch::nn::Dropout(s.dropout));
    blocks_ = root_->register_module("blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < s.depth; ++i) {
      // Drop-path rate grows linearly with depth, as timm.
      const double rate = s.depth > 1 ? s.drop_path * static_cast<double>(i) / static_cast<double>(s.depth - 1) : s.drop_path;
      blocks_->push_back(Block(s, rate));
    }
    norm_ = root_->register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({s.dim}).eps(1e-6)));
    head_norm_ = torch::nn::LayerNorm(torch::nn::LayerNormOptions({s.dim}).eps(1e-5));
    head_ = torch::nn::Linear(s.dim, ctx.num_classes);
    // AST (YuanGongND/ast src/models/ast_models.py) builds mlp_head after the timm encoder, as
    // plain nn.LayerNorm + nn.Linear: PyTorch's default init, untouched by timm's
    // _init_weights. So the encoder is initialised before the head joins the module.
    initialise();
    mlp_head_ = root_->register_module("mlp_head", torch::nn::Sequential(head_norm_, head_));
  }

  at::Tensor forward(const at::Tensor& tokens) override { return encode(embed(tokens)); }

  // Patchout as PaSST's forward_features: position embeddings on every token, then only the
  // kept ones (with the class and distillation tokens in front) enter the blocks.
  bool drops_tokens() const override { return true; }
  at::Tensor forward_kept(const at::Tensor& tokens, const at::Tensor& keep) override {
    const at::Tensor x = embed(tokens);
    return encode(torch::cat({x.slice(1, 0, 2), x.index_select(1, keep.to(x.device()) + 2)}, 1));
  }

  torch::nn::Module& module() override { return *root_; }

  // The original ASTModel keeps the timm encoder as `v` (v.cls_token, v.blocks.0.norm1.weight,
  // v.patch_embed.proj.weight, ...) and its head beside it as mlp_head.{0,1}. Its timm model
  // also carries two ImageNet heads (v.head, v.head_dist) that its forward never uses; we
  // have no such tensors (docs/weights.md).
  std::vector<std::pair<std::string, std::string>> original_names() const override {
    std::vector<std::pair<std::string, std::string>> out;
    const auto add = [&](const std::string& name) {
      out.emplace_back(name, name.rfind("mlp_head.", 0) == 0 ? name : "v." + name);
    };
    for (const auto& p : root_->named_parameters()) add(p.key());
    for (const auto& b : root_->named_buffers()) add(b.key());
    return out;
  }
  std::string original_patcher_prefix() const override { return "v."; }
  // ASTModel's pos_embed holds the class and distillation tokens' rows first (timm's DeiT),
  // then the 12 x 101 grid's; its v.head / v.head_dist are DeiT's unused ImageNet heads.
  patchbay::WeightLayout weight_layout() const override {
    return {"pos_embed", 2, false, {"v.head.weight", "v.head.bias", "v.head_dist.weight", "v.head_dist.bias"}};
  }

  patchbay::Cost cost() const override {
    const int64_t t = ctx_.grid.tokens() + 2, d = shape_.dim, h = shape_.hidden;
    const int64_t linear_per_token = 3 * d * d + d * d + 2 * d * h;  // qkv, proj, fc1, fc2
    patchbay::Cost c;
    for (const auto& p : root_->parameters()) c.params += p.numel();
    c.paper_macs = shape_.depth * t * linear_per_token + d * ctx_.num_classes;
    const int64_t attention_macs = shape_.depth * 2 * t * t * d;  // q k^T and attn v
    c.flops = 2 * (c.paper_macs + attention_macs);
    return c;
  }

 private:
  // tokens [B, N, D] -> class, distillation and patch tokens with positions [B, N + 2, D].
  at::Tensor embed(const at::Tensor& tokens) {
    if (tokens.dim() != 3 || tokens.size(1) != ctx_.grid.tokens() || tokens.size(2) != shape_.dim) {
      throw patchbay::ShapeError("shape.backbone_input",
                                 fmt::format("backbone 'ast' expects tokens [B, {}, {}], got [{}]",
                                             ctx_.grid.tokens(), shape_.dim,
                                             fmt::join(tokens.sizes(), ", ")));
    }
    const int64_t b = tokens.size(0);
    const auto x = torch::cat({cls_token_.expand({b, -1, -1}), dist_token_.expand({b, -1, -1}), tokens}, 1);
    return x + pos_embed_;
  }

  // [B, 2 + K, D] (class and distillation tokens first) -> logits [B, C].
  at::Tensor encode(at::Tensor x) {
    x = pos_drop_->forward(x);
    for (const auto& block : *blocks_) x = block->as<Block>()->forward(x);
    x = norm_->forward(x);
    const auto pooled = (x.select(1, 0) + x.select(1, 1)) / 2;
    return mlp_head_->forward(pooled);
  }


  void initialise() {
    trunc_normal_(cls_token_, 0.02);
    trunc_normal_(dist_token_, 0.02);
    trunc_normal_(pos_embed_, 0.02);
    torch::NoGradGuard no_grad;
    for (auto& m : root_->modules(/*include_self=*/false)) {
      if (auto* linear = m->as<torch::nn::Linear>()) {
        trunc_normal_(linear->weight, 0.02);
        if (linear->bias.defined()) linear->bias.zero_();
      } else if (auto* ln = m->as<torch::nn::LayerNorm>()) {
        ln->weight.fill_(1.0);
        ln->bias.zero_();
      }
    }
  }

  Shape shape_;
  patchbay::BackboneContext ctx_;
  std::shared_ptr<torch::nn::Module> root_;
  at::Tensor cls_token_, dist_token_, pos_embed_;
  torch::nn::Dropout pos_drop_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm norm_{nullptr}, head_norm_{nullptr};
  torch::nn::Linear head_{nullptr};
  torch::nn::Sequential mlp_head_{nullptr};
};

}  // namespace

void register_ast(patchbay::Registrar& registrar) {
  using namespace patchbay;
  OptionSchema s;
  s.add_choice("preset", "tiny", {"tiny", "small", "base"},
               "width and heads: tiny 192/3, small 384/6, base 768/12 (AST-base)");
  s.add_int("depth", 12, "transformer blocks", Range::at_least(1));
  s.add_int("embed_dim", 0, "token width D (0: the preset's)", Range::at_least(0));
  s.add_int("heads", 0, "attention heads (0: the preset's)", Range::at_least(0));
  s.add_real("mlp_ratio", 4.0, "MLP hidden width / D", Range::at_least(0.01));
  s.add_real("dropout", 0.0, "dropout after the positional embedding, attention output and MLP",
             Range::between(0, 1));
  s.add_real("attn_dropout", 0.0, "dropout on attention weights", Range::between(0, 1));
  s.add_real("drop_path", 0.0, "stochastic depth rate of the last block (linear from 0)",
             Range::between(0, 0.99));
  registrar.add_backbone(
      {"ast", "Audio Spectrogram Transformer encoder (DeiT blocks, class + distillation tokens)", s},
      [](const Options& o) { return shape_from(o).dim; },
      [](const Options& o, const BackboneContext& c) { return std::make_shared<Ast>(shape_from(o), c); });
}

// `aum`: Audio Mamba (docs/reference.md §3), fed by any patcher.
//
// tokens [B, N, D] -> insert a class token at position N // 2 -> + positional embedding
// (N + 1) -> depth x pre-norm residual blocks x + mixer(RMSNorm(x)) -> RMSNorm -> the
// class position -> Linear head.
// Mixer (Mamba): in_proj (no bias) to x | z (2 x d_inner); x -> causal depthwise conv1d
// (k = d_conv, bias) -> SiLU; x_proj (no bias) to dt (dt_rank) | B | C (d_state each);
// delta = dt_proj(dt) with dt_proj's bias applied inside the scan (softplus); selective
// scan with A = -exp(A_log), D, gate z; out_proj (no bias).
// Bidirectional variants (option `bimamba`):
//   fo_bi (default, AuM's): in_proj, conv1d, x_proj, dt_proj and D are shared; only A has a
//     backward copy (A_b_log). The backward scan runs on the flipped conv output, delta, B,
//     C and z; out_proj(y_fwd + flip(y_bwd)), not halved.
//   bi_bi: the backward direction also has its own conv1d_b, x_proj_b, dt_proj_b and D_b
//     (Vim's naming); in_proj (hence z) and out_proj stay shared. Its conv runs over the
//     flipped in_proj output, so it is causal in reversed time. The two directions' sum is
//     halved before out_proj, as Vim's mamba_simple.py that AuM bundles does for bimamba_type
//     "v2" with if_devide_out=True (AuM's setting): out_proj((y_fwd + flip(y_bwd)) / 2).
//   none: forward scan only (plain Mamba).
// Parameter names follow AuM: cls_token, pos_embed, layers.<i>.norm.weight,
// layers.<i>.mixer.{in_proj,conv1d,x_proj,dt_proj,out_proj}.*, .A_log, .A_b_log, .D,
// norm_f.weight, head.{weight,bias}; the patch embedding lives in the patcher.
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/nn.h>

#include "patchbay/error.hpp"
#include "patchbay/plugin.hpp"
#include "selective_scan.hpp"

namespace {

struct Preset {
  const char* name;
  int64_t dim;
};
constexpr Preset kPresets[] = {{"tiny", 192}, {"small", 384}, {"base", 768}};

enum class Bimamba { none, fo_bi, bi_bi };

struct Shape {
  int64_t dim, depth, d_state, d_conv, expand, d_inner, dt_rank;
  Bimamba bimamba;
  double drop_path;
  bool lecun_patch_embed;
};

Shape shape_from(const patchbay::Options& o) {
  Shape s{};
  for (const auto& p : kPresets) {
    if (o.get_string("preset") == p.name) s.dim = p.dim;
  }
  if (o.get_int("embed_dim") > 0) s.dim = o.get_int("embed_dim");
  s.depth = o.get_int("depth");
  s.d_state = o.get_int("d_state");
  s.d_conv = o.get_int("d_conv");
  s.expand = o.get_int("expand");
  s.d_inner = s.expand * s.dim;
  s.dt_rank = (s.dim + 15) / 16;  // ceil(D / 16), as Mamba's "auto"
  const auto& bi = o.get_string("bimamba");
  s.bimamba = bi == "none" ? Bimamba::none : bi == "bi_bi" ? Bimamba::bi_bi : Bimamba::fo_bi;
  s.drop_path = o.get_real("drop_path");
  s.lecun_patch_embed = o.get_string("patch_init") == "lecun_normal";
  return s;
}

at::Tensor drop_path(const at::Tensor& x, double p, bool training) {
  if (!training || p <= 0.0) return x;
  const auto keep = torch::empty({x.size(0), 1, 1}, x.options()).bernoulli_(1.0 - p);
  return x * keep / (1.0 - p);
}

// timm's trunc_normal_(std=.02) cuts at +-2 absolute, i.e. 100 std: in effect a normal.
void trunc_normal_(at::Tensor t, double std) {
  torch::NoGradGuard no_grad;
  t.normal_(0.0, std).clamp_(-2.0, 2.0);
}

// timm's lecun_normal_ (variance_scaling_, mode fan_in, "truncated_normal"): std =
// sqrt(1 / fan_in) / 0.8796... (the std of a unit normal cut at +-2), cut at +-2 absolute,
// which at these stds is in effect a normal of that std.
void lecun_normal_(at::Tensor t) {
  const int64_t fan_in = t.dim() < 2 ? t.numel() : t[0].numel();
  trunc_normal_(t, std::sqrt(1.0 / static_cast<double>(fan_in)) / 0.87962566103423978);
}

struct RmsNormImpl : torch::nn::Module {
  explicit RmsNormImpl(int64_t dim, double eps = 1e-5) : eps_(eps) {
    weight = register_parameter("weight", torch::ones({dim}));
  }
  at::Tensor forward(const at::Tensor& x) {
    return x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps_) * weight;
  }
  double eps_;
  at::Tensor weight;
};
TORCH_MODULE(RmsNorm);

// What one scan direction consumes, all [B, channels or states, L].
struct ScanInputs {
  at::Tensor x, delta, b, c, z;
  ScanInputs flipped() const { return {x.flip(2), delta.flip(2), b.flip(2), c.flip(2), z.flip(2)}; }
};

struct MixerImpl : torch::nn::Module {
  MixerImpl(const Shape& s) : s_(s) {
    const int64_t di = s.d_inner;
    in_proj = register_module("in_proj", torch::nn::Linear(torch::nn::LinearOptions(s.dim, 2 * di).bias(false)));
    conv1d = register_module("conv1d", make_conv());
    x_proj = register_module("x_proj", make_x_proj());
    dt_proj = register_module("dt_proj", make_dt_proj());
    A_log = register_parameter("A_log", a_log_init());
    if (s.bimamba != Bimamba::none) A_b_log = register_parameter("A_b_log", a_log_init());
    D = register_parameter("D", torch::ones({di}));
    if (s.bimamba == Bimamba::bi_bi) {
      conv1d_b = register_module("conv1d_b", make_conv());
      x_proj_b = register_module("x_proj_b", make_x_proj());
      dt_proj_b = register_module("dt_proj_b", make_dt_proj());
      D_b = register_parameter("D_b", torch::ones({di}));
    }
    out_proj = register_module("out_proj", torch::nn::Linear(torch::nn::LinearOptions(di, s.dim).bias(false)));
    // Mamba's rescale_prenorm_residual: kaiming-uniform(a = sqrt 5), then / sqrt(n_layer),
    // so the residual stream's variance does not grow with depth.
    torch::NoGradGuard no_grad;
    torch::nn::init::kaiming_uniform_(out_proj->weight, std::sqrt(5.0));
    out_proj->weight.div_(std::sqrt(static_cast<double>(s.depth)));
  }

  // h [B, L, D] -> [B, L, D]
  at::Tensor forward(const at::Tensor& h) {
    const int64_t di = s_.d_inner;
    const auto xz = in_proj->forward(h).transpose(1, 2);  // [B, 2 di, L]
    const auto x = xz.slice(1, 0, di), z = xz.slice(1, di, 2 * di);
    const auto fwd = project(conv(conv1d, x), z, x_proj, dt_proj);
    auto y = scan(fwd, A_log, D, dt_proj->bias);
    if (s_.bimamba == Bimamba::fo_bi) {
      y = y + scan(fwd.flipped(), A_b_log, D, dt_proj->bias).flip(2);
    } else if (s_.bimamba == Bimamba::bi_bi) {
      const auto bwd = project(conv(conv1d_b, x.flip(2)), z.flip(2), x_proj_b, dt_proj_b);
      y = (y + scan(bwd, A_b_log, D_b, dt_proj_b->bias).flip(2)) * 0.5;  // if_devide_out
    }
    return out_proj->forward(y.transpose(1, 2));
  }

  Shape s_;
  torch::nn::Linear in_proj{nullptr}, x_proj{nullptr}, dt_proj{nullptr}, out_proj{nullptr};
  torch::nn::Linear x_proj_b{nullptr}, dt_proj_b{nullptr};
  torch::nn::Conv1d conv1d{nullptr}, conv1d_b{nullptr};
  at::Tensor A_log, A_b_log, D, D_b;

 private:
  torch::nn::Conv1d make_conv() const {
    // Padding k - 1 on both sides, keeping the first L outputs: causal.
    return torch::nn::Conv1d(torch::nn::Conv1dOptions(s_.d_inner, s_.d_inner, s_.d_conv)
                                 .groups(s_.d_inner).padding(s_.d_conv - 1).bias(true));
  }
  torch::nn::Linear make_x_proj() const {
    return torch::nn::Linear(torch::nn::LinearOptions(s_.d_inner, s_.dt_rank + 2 * s_.d_state).bias(false));
  }
  // Mamba's dt initialisation: weight U(+-dt_rank^-0.5); bias = softplus^-1(dt) with
  // dt ~ logU[1e-3, 1e-1] clamped at 1e-4, so softplus(bias) starts in that range.
  torch::nn::Linear make_dt_proj() const {
    torch::nn::Linear l(torch::nn::LinearOptions(s_.dt_rank, s_.d_inner).bias(true));
    torch::NoGradGuard no_grad;
    const double std = 1.0 / std::sqrt(static_cast<double>(s_.dt_rank));
    l->weight.uniform_(-std, std);
    const double lo = std::log(1e-3), hi = std::log(1e-1);
    const auto dt = torch::exp(torch::rand({s_.d_inner}) * (hi - lo) + lo).clamp_min(1e-4);
    l->bias.copy_(dt + torch::log(-torch::expm1(-dt)));  // log(exp(dt) - 1), stably
    return l;
  }
  // A = -exp(A_log) = -(1..d_state) for every channel: S4D-real.
  at::Tensor a_log_init() const {
    return torch::log(torch::arange(1, s_.d_state + 1, torch::kFloat)).repeat({s_.d_inner, 1});
  }
  at::Tensor conv(torch::nn::Conv1d& c, const at::Tensor& x) const {
    return torch::silu(c->forward(x).slice(2, 0, x.size(2)));
  }
  ScanInputs project(const at::Tensor& x, const at::Tensor& z, torch::nn::Linear& xp,
                     torch::nn::Linear& dtp) const {
    const int64_t r = s_.dt_rank, n = s_.d_state;
    const auto dbl = xp->forward(x.transpose(1, 2));  // [B, L, r + 2n]
    // dt_proj's bias is added (before softplus) inside the scan.
    const auto delta = torch::matmul(dbl.slice(2, 0, r), dtp->weight.t()).transpose(1, 2);
    return {x, delta, dbl.slice(2, r, r + n).transpose(1, 2), dbl.slice(2, r + n, r + 2 * n).transpose(1, 2), z};
  }
  // The scan runs in float32 whatever the forward's precision: train.precision = "bf16"
  // gives bfloat16 projections, which are cast up here (the CPU kernel is float32 / float64;
  // mamba_ssm's CUDA kernel also keeps its recurrent state in float32).
  static at::Tensor scan(const ScanInputs& in, const at::Tensor& a_log, const at::Tensor& d,
                         const at::Tensor& dt_bias) {
    const auto f32 = [](const at::Tensor& t) {
      const bool reduced = t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf;
      return reduced ? t.to(at::kFloat) : t;  // float64 (the gradient checks) stays as it is
    };
    return patchbay::aum::selective_scan(f32(in.x), f32(in.delta), -torch::exp(a_log), f32(in.b), f32(in.c), d,
                                         f32(in.z), dt_bias, /*delta_softplus=*/true);
  }
};
TORCH_MODULE(Mixer);

struct BlockImpl : torch::nn::Module {
  BlockImpl(const Shape& s, double drop_path_rate) : drop_path_(drop_path_rate) {
    norm = register_module("norm", RmsNorm(s.dim));
    mixer = register_module("mixer", Mixer(s));
  }
  at::Tensor forward(const at::Tensor& x) {
    return x + drop_path(mixer->forward(norm->forward(x)), drop_path_, is_training());
  }
  double drop_path_;
  RmsNorm norm{nullptr};
  Mixer mixer{nullptr};
};
TORCH_MODULE(Block);

class Aum final : public patchbay::Backbone {
 public:
  Aum(const Shape& s, const patchbay::BackboneContext& ctx)
      : shape_(s), ctx_(ctx), root_(std::make_shared<torch::nn::Module>("AuM")) {
    if (ctx.embed_dim != s.dim) {
      throw patchbay::ShapeError("shape.backbone_width",
                                 fmt::format("backbone 'aum' is {} wide but the patcher makes "
                                             "{}-wide tokens", s.dim, ctx.embed_dim));
    }
    const int64_t n = ctx.grid.tokens();
    cls_token_ = root_->register_parameter("cls_token", torch::zeros({1, 1, s.dim}));
    pos_embed_ = root_->register_parameter("pos_embed", torch::zeros({1, n + 1, s.dim}));
    layers_ = root_->register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < s.depth; ++i) {
      const double rate = s.depth > 1 ? s.drop_path * static_cast<double>(i) / static_cast<double>(s.depth - 1) : s.drop_path;
      layers_->push_back(Block(s, rate));
    }
    norm_f_ = root_->register_module("norm_f", RmsNorm(s.dim));
    head_ = root_->register_module("head", torch::nn::Linear(s.dim, ctx.num_classes));
    trunc_normal_(cls_token_, 0.02);
    trunc_normal_(pos_embed_, 0.02);
    trunc_normal_(head_->weight, 0.02);
    torch::NoGradGuard no_grad;
    head_->bias.zero_();
  }

  // Where the class token sits among the N + 1 tokens.
  int64_t class_position() const { return ctx_.grid.tokens() / 2; }

  at::Tensor forward(const at::Tensor& tokens) override { return encode(embed(tokens), class_position()); }

  // Token dropping (AuM has none of its own; PaSST's order): position embeddings on all N + 1
  // tokens, then the kept patch tokens, with the class token placed in the middle of the
  // shorter sequence (at K / 2, as Vim places it at M / 2 of whatever it is given), keeping
  // the position embedding of its place in the full sequence.
  bool drops_tokens() const override { return true; }
  at::Tensor forward_kept(const at::Tensor& tokens, const at::Tensor& keep) override {
    const int64_t pos = class_position();
    const at::Tensor x = embed(tokens);
    const at::Tensor patches = torch::cat({x.slice(1, 0, pos), x.slice(1, pos + 1)}, 1)
                                   .index_select(1, keep.to(x.device()));
    const int64_t middle = keep.size(0) / 2;
    return encode(torch::cat({patches.slice(1, 0, middle), x.slice(1, pos, pos + 1), patches.slice(1, middle)}, 1),
                  middle);
  }

  // tokens [B, N, D] -> [B, N + 1, D]: the class token at class_position(), positions added.
  at::Tensor embed(const at::Tensor& tokens) {
    if (tokens.dim() != 3 || tokens.size(1) != ctx_.grid.tokens() || tokens.size(2) != shape_.dim) {
      throw patchbay::ShapeError("shape.backbone_input",
                                 fmt::format("backbone 'aum' expects tokens [B, {}, {}], got [{}]",
                                             ctx_.grid.tokens(), shape_.dim,
                                             fmt::join(tokens.sizes(), ", ")));
    }
    const int64_t b = tokens.size(0), pos = class_position();
    auto x = torch::cat({tokens.slice(1, 0, pos), cls_token_.expand({b, -1, -1}), tokens.slice(1, pos)}, 1);
    return x + pos_embed_;
  }

  // The sequence with the class token at `pos` -> logits [B, C].
  at::Tensor encode(at::Tensor x, int64_t pos) {
    for (const auto& layer : *layers_) x = layer->as<Block>()->forward(x);
    return head_->forward(norm_f_->forward(x).select(1, pos));
  }

  torch::nn::Module& module() override { return *root_; }

  // Our module tree mirrors AuM's VisionMamba (Vim's models_mamba.py) name for name, with
  // the patch embedding (patch_embed.proj) at the top level.
  std::vector<std::pair<std::string, std::string>> original_names() const override {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& p : root_->named_parameters()) out.emplace_back(p.key(), p.key());
    for (const auto& b : root_->named_buffers()) out.emplace_back(b.key(), b.key());
    return out;
  }
  std::string original_patcher_prefix() const override { return ""; }
  // Vim / AuM insert the class token in the middle of the sequence (token_position = M // 2
  // in Vim's models_mamba.py), and its positional embedding row with it.
  patchbay::WeightLayout weight_layout() const override { return {"pos_embed", 1, true, {}}; }

  // AuM's VisionMamba applies segm_init_weights to its patch embedding
  // (kaistmm/Audio-Mamba-AuM src/models/mamba_models.py, after Vim's models_mamba.py):
  // lecun_normal_ on the Conv2d weight, zero bias. The Mamba init that follows touches
  // Linear and Embedding layers only, so the embedding keeps it.
  void init_patcher(patchbay::Patcher& patcher) const override {
    if (!shape_.lecun_patch_embed) return;
    for (auto& p : patcher.module().named_parameters()) {
      const auto& name = p.key();
      if (p.value().dim() >= 2) {
        lecun_normal_(p.value());
      } else if (name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0) {
        p.value().zero_();
      }
    }
  }

  patchbay::Cost cost() const override {
    const int64_t t = ctx_.grid.tokens() + 1, d = shape_.dim, di = shape_.d_inner;
    const int64_t r = shape_.dt_rank, n = shape_.d_state;
    // Per token: conv, x_proj and dt_proj of one direction. Fo-Bi reuses the forward
    // direction's (flipping commutes with per-token maps); Bi-Bi computes its own.
    const int64_t direction = di * shape_.d_conv + di * (r + 2 * n) + r * di;
    int64_t per_token = d * 2 * di + direction + di * d;  // + in_proj, out_proj
    if (shape_.bimamba == Bimamba::bi_bi) per_token += direction;
    const int64_t directions = shape_.bimamba == Bimamba::none ? 1 : 2;
    // The scan: decay x state, input x B, C contraction per (token, channel, state).
    const int64_t scan_macs = shape_.depth * directions * 3 * t * di * n;
    patchbay::Cost c;
    for (const auto& p : root_->parameters()) c.params += p.numel();
    c.paper_macs = shape_.depth * t * per_token + d * ctx_.num_classes;
    c.flops = 2 * (c.paper_macs + scan_macs);
    return c;
  }

 private:
  Shape shape_;
  patchbay::BackboneContext ctx_;
  std::shared_ptr<torch::nn::Module> root_;
  at::Tensor cls_token_, pos_embed_;
  torch::nn::ModuleList layers_{nullptr};
  RmsNorm norm_f_{nullptr};
  torch::nn::Linear head_{nullptr};
};

}  // namespace

void register_aum(patchbay::Registrar& registrar) {
  using namespace patchbay;
  OptionSchema s;
  s.add_choice("preset", "tiny", {"tiny", "small", "base"}, "width: tiny 192, small 384, base 768");
  s.add_int("depth", 24, "Mamba blocks", Range::at_least(1));
  s.add_int("embed_dim", 0, "token width D (0: the preset's)", Range::at_least(0));
  s.add_int("d_state", 16, "SSM state size per channel", Range::at_least(1));
  s.add_int("d_conv", 4, "kernel of the causal depthwise conv1d", Range::at_least(1));
  s.add_int("expand", 2, "d_inner / D", Range::at_least(1));
  s.add_choice("bimamba", "fo_bi", {"fo_bi", "bi_bi", "none"},
               "bidirectional scan: fo_bi (shared projections, own backward A), bi_bi (backward "
               "conv1d, x_proj, dt_proj, D and A of its own), none (forward only)");
  s.add_real("drop_path", 0.0, "stochastic depth rate of the last block (linear from 0)",
             Range::between(0, 0.99));
  s.add_choice("patch_init", "lecun_normal", {"lecun_normal", "patcher"},
               "the patch embedding's initialisation: lecun_normal (AuM's: lecun_normal_ weights, "
               "zero bias) or patcher (the patcher's own, PyTorch's Conv2d default)");
  registrar.add_backbone(
      {"aum", "Audio Mamba (bidirectional Mamba blocks, middle class token)", s},
      [](const Options& o) { return shape_from(o).dim; },
      [](const Options& o, const BackboneContext& c) { return std::make_shared<Aum>(shape_from(o), c); });
}

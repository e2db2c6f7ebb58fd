// The `aum` backbone: AuM's parameter set, a forward pass checked against a direct
// re-computation of docs/reference.md §3 from the same parameters (each bidirectional variant),
// the class token's position, initialisation, determinism, gradients and shape errors.
#include <doctest/doctest.h>

#include <cmath>

#include <torch/nn.h>

#include "../../plugins/backbones/aum/selective_scan.hpp"
#include "helpers.hpp"
#include "patchbay/config.hpp"
#include "patchbay/error.hpp"
#include "patchbay/model.hpp"

using namespace patchbay;

namespace {

const Registry& registry() { return test::linked_registry(); }

std::shared_ptr<Backbone> make_aum(const std::map<std::string, OptionValue>& set, const PatchGrid& grid,
                                   int64_t classes) {
  auto o = Options::defaults(registry().get(PluginKind::backbone, "aum").description.options);
  for (const auto& [k, v] : set) o.set(k, v);
  const int64_t d = registry().backbone_embed_dim("aum", o);
  return registry().make_backbone("aum", o, BackboneContext{grid, d, classes});
}

std::map<std::string, at::Tensor> params_of(Backbone& b) {
  std::map<std::string, at::Tensor> p;
  for (const auto& kv : b.module().named_parameters()) p[kv.key()] = kv.value().detach();
  return p;
}

const PatchGrid kFftp = PatchGrid::make(128, 128, 128, 16, 128, 4);   // 29 tokens
const PatchGrid kSeven = PatchGrid::make(128, 64, 128, 16, 128, 8);   // 7 tokens

// Small model options: depth 2, D 24 (dt_rank 2, d_inner 48), d_state 4.
std::map<std::string, OptionValue> small(const std::string& bimamba) {
  return {{"depth", int64_t{2}}, {"embed_dim", int64_t{24}}, {"d_state", int64_t{4}}, {"bimamba", bimamba}};
}

// docs/reference.md §3 written out with plain tensor ops (the scan itself is the kernel, checked
// on its own in test_selective_scan.cpp).
at::Tensor direct_forward(std::map<std::string, at::Tensor>& p, const at::Tensor& tokens,
                          const std::string& bimamba, int64_t depth, int64_t d_state) {
  const int64_t b = tokens.size(0), n = tokens.size(1), pos = n / 2, dim = tokens.size(2);
  const int64_t di = 2 * dim, r = (dim + 15) / 16, len = n + 1;
  const auto rms = [](const at::Tensor& x, const at::Tensor& w) {
    return x / torch::sqrt(x.pow(2).mean(-1, true) + 1e-5) * w;
  };
  // Causal depthwise conv: out[t] = bias + sum_j w[j] x[t - 3 + j], zeros before t = 0.
  const auto conv = [&](const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
    const auto padded = torch::constant_pad_nd(x, {3, 0});
    auto out = bias.view({1, -1, 1}).expand({b, di, len}).clone();
    for (int64_t j = 0; j < 4; ++j) out = out + w.select(2, j).view({1, -1, 1}) * padded.slice(2, j, j + len);
    return torch::silu(out);
  };
  struct Dir {
    at::Tensor x, delta, bm, cm;
  };
  const auto project = [&](const at::Tensor& x, const std::string& xp, const std::string& dtp) {
    const auto dbl = torch::matmul(x.transpose(1, 2), p[xp].t());
    const auto delta = torch::matmul(dbl.slice(2, 0, r), p[dtp].t()).transpose(1, 2);
    return Dir{x, delta, dbl.slice(2, r, r + d_state).transpose(1, 2),
               dbl.slice(2, r + d_state, r + 2 * d_state).transpose(1, 2)};
  };
  const auto scan = [](const Dir& d, const at::Tensor& z, const at::Tensor& a_log, const at::Tensor& dd,
                       const at::Tensor& bias) {
    return aum::selective_scan(d.x, d.delta, -torch::exp(a_log), d.bm, d.cm, dd, z, bias, true);
  };
  const auto flip = [](const Dir& d) { return Dir{d.x.flip(2), d.delta.flip(2), d.bm.flip(2), d.cm.flip(2)}; };

  auto x = torch::cat({tokens.slice(1, 0, pos), p["cls_token"].expand({b, 1, dim}), tokens.slice(1, pos)}, 1);
  x = x + p["pos_embed"];
  for (int64_t i = 0; i < depth; ++i) {
    const std::string m = "layers." + std::to_string(i) + ".mixer.";
    const auto h = rms(x, p["layers." + std::to_string(i) + ".norm.weight"]);
    const auto xz = torch::matmul(h, p[m + "in_proj.weight"].t());
    const auto xs = xz.slice(2, 0, di).transpose(1, 2), z = xz.slice(2, di, 2 * di).transpose(1, 2);
    const auto fwd = project(conv(xs, p[m + "conv1d.weight"], p[m + "conv1d.bias"]), m + "x_proj.weight",
                             m + "dt_proj.weight");
    auto y = scan(fwd, z, p[m + "A_log"], p[m + "D"], p[m + "dt_proj.bias"]);
    if (bimamba == "fo_bi") {
      y = y + scan(flip(fwd), z.flip(2), p[m + "A_b_log"], p[m + "D"], p[m + "dt_proj.bias"]).flip(2);
    } else if (bimamba == "bi_bi") {
      const auto bwd = project(conv(xs.flip(2), p[m + "conv1d_b.weight"], p[m + "conv1d_b.bias"]),
                               m + "x_proj_b.weight", m + "dt_proj_b.weight");
      // Bi-Bi halves the sum (AuM's if_devide_out = True).
      y = (y + scan(bwd, z.flip(2), p[m + "A_b_log"], p[m + "D_b"], p[m + "dt_proj_b.bias"]).flip(2)) / 2;
    }
    x = x + torch::matmul(y.transpose(1, 2), p[m + "out_proj.weight"].t());
  }
  const auto cls = rms(x, p["norm_f.weight"]).select(1, pos);
  return torch::matmul(cls, p["head.weight"].t()) + p["head.bias"];
}

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("aum: the tiny preset has AuM's parameter tensors") {
  auto aum = make_aum({}, kFftp, 35);
  std::map<std::string, std::vector<int64_t>> expected = {
      {"cls_token", {1, 1, 192}}, {"pos_embed", {1, 30, 192}}, {"norm_f.weight", {192}},
      {"head.weight", {35, 192}}, {"head.bias", {35}}};
  for (int i = 0; i < 24; ++i) {
    const std::string l = "layers." + std::to_string(i) + ".";
    expected[l + "norm.weight"] = {192};
    expected[l + "mixer.in_proj.weight"] = {768, 192};
    expected[l + "mixer.conv1d.weight"] = {384, 1, 4};
    expected[l + "mixer.conv1d.bias"] = {384};
    expected[l + "mixer.x_proj.weight"] = {12 + 32, 384};
    expected[l + "mixer.dt_proj.weight"] = {384, 12};
    expected[l + "mixer.dt_proj.bias"] = {384};
    expected[l + "mixer.A_log"] = {384, 16};
    expected[l + "mixer.A_b_log"] = {384, 16};
    expected[l + "mixer.D"] = {384};
    expected[l + "mixer.out_proj.weight"] = {192, 384};
  }
  std::map<std::string, std::vector<int64_t>> actual;
  int64_t count = 0;
  for (const auto& p : aum->module().named_parameters()) {
    actual[p.key()] = p.value().sizes().vec();
    count += p.value().numel();
  }
  CHECK(actual == expected);
  const auto cost = aum->cost();
  CHECK(cost.params == count);
  // Per token and layer: in_proj, conv, x_proj, dt_proj, out_proj; 30 tokens; + head.
  const int64_t per_token = 192 * 768 + 384 * 4 + 384 * 44 + 12 * 384 + 384 * 192;
  CHECK(cost.paper_macs == 24LL * 30 * per_token + 192 * 35);
  CHECK(cost.flops == 2 * (cost.paper_macs + 24LL * 2 * 3 * 30 * 384 * 16));
}

TEST_CASE("aum: bi_bi adds the backward conv1d, x_proj, dt_proj and D; none drops A_b_log") {
  auto bi = params_of(*make_aum(small("bi_bi"), kSeven, 3));
  for (const char* name : {"conv1d_b.weight", "conv1d_b.bias", "x_proj_b.weight", "dt_proj_b.weight",
                           "dt_proj_b.bias", "D_b", "A_b_log"}) {
    CAPTURE(name);
    CHECK(bi.count(std::string("layers.1.mixer.") + name) == 1);
  }
  CHECK(bi.at("layers.0.mixer.x_proj_b.weight").sizes() == at::IntArrayRef({2 + 8, 48}));
  auto none = params_of(*make_aum(small("none"), kSeven, 3));
  CHECK(none.count("layers.0.mixer.A_b_log") == 0);
  CHECK(none.count("layers.0.mixer.A_log") == 1);
}

TEST_CASE("aum: forward equals a direct computation of the architecture") {
  for (const std::string mode : {"fo_bi", "bi_bi", "none"}) {
    CAPTURE(mode);
    torch::manual_seed(21);
    auto aum = make_aum(small(mode), kSeven, 5);
    aum->module().eval();
    auto p = params_of(*aum);
    const auto tokens = torch::randn({3, 7, 24});
    torch::NoGradGuard no_grad;
    const auto expected = direct_forward(p, tokens, mode, 2, 4);
    const auto logits = aum->forward(tokens);
    REQUIRE(logits.sizes() == at::IntArrayRef({3, 5}));
    CHECK((logits - expected).abs().max().item<float>() < 1e-5);
  }
}

TEST_CASE("aum: the class token sits in the middle, at N // 2") {
  // Forward-only scan and causal conv: the class token at position 7 // 2 = 3 sees tokens
  // 0..2 and nothing after it.
  torch::manual_seed(5);
  auto causal = make_aum(small("none"), kSeven, 4);
  const auto tokens = torch::randn({2, 7, 24});
  torch::NoGradGuard no_grad;
  const auto base = causal->forward(tokens);
  auto later = tokens.clone();
  later.slice(1, 3).add_(torch::randn({2, 4, 24}));
  CHECK(torch::equal(causal->forward(later), base));
  auto earlier = tokens.clone();
  earlier.select(1, 2).add_(1.0);
  CHECK(!torch::allclose(causal->forward(earlier), base));
  // Bidirectional: the class token also sees the tokens after it.
  auto fo_bi = make_aum(small("fo_bi"), kSeven, 4);
  CHECK(!torch::allclose(fo_bi->forward(later), fo_bi->forward(tokens)));
}

TEST_CASE("aum: Fo-Bi and forward-only differ with the same shared weights") {
  // A_b_log's initialisation draws no random numbers, so the same seed gives both models
  // identical shared weights; only the backward scan differs.
  torch::manual_seed(8);
  auto fo_bi = make_aum(small("fo_bi"), kSeven, 4);
  torch::manual_seed(8);
  auto none = make_aum(small("none"), kSeven, 4);
  const auto pf = params_of(*fo_bi), pn = params_of(*none);
  CHECK(torch::equal(pf.at("layers.1.mixer.in_proj.weight"), pn.at("layers.1.mixer.in_proj.weight")));
  const auto tokens = torch::randn({2, 7, 24});
  torch::NoGradGuard no_grad;
  CHECK(!torch::allclose(fo_bi->forward(tokens), none->forward(tokens), 1e-4, 1e-4));
}

TEST_CASE("aum: Mamba initialisation") {
  torch::manual_seed(0);
  auto aum = make_aum({}, kFftp, 10);
  auto p = params_of(*aum);
  const auto log_range = torch::log(torch::arange(1, 17, torch::kFloat));
  CHECK(torch::allclose(p["layers.3.mixer.A_log"], log_range.expand({384, 16})));
  CHECK(torch::equal(p["layers.3.mixer.A_b_log"], p["layers.3.mixer.A_log"]));
  CHECK((p["layers.3.mixer.D"] == 1).all().item<bool>());
  CHECK((p["layers.3.norm.weight"] == 1).all().item<bool>());
  // softplus(dt bias) = dt in [1e-4, 1e-1], spread log-uniformly from 1e-3.
  const auto dt = torch::softplus(p["layers.3.mixer.dt_proj.bias"]);
  CHECK(dt.min().item<float>() >= 0.99e-3f);
  CHECK(dt.max().item<float>() <= 0.1001f);
  CHECK(torch::log(dt).mean().item<float>() == doctest::Approx(std::log(1e-2)).epsilon(0.05));
  // dt_proj weight U(+-12^-0.5).
  CHECK(p["layers.3.mixer.dt_proj.weight"].abs().max().item<float>() <= 1 / std::sqrt(12.0f));
  // out_proj: kaiming-uniform(a = sqrt 5) bound 1 / sqrt(fan_in), then / sqrt(24).
  const float bound = 1.0f / std::sqrt(384.0f) / std::sqrt(24.0f);
  CHECK(p["layers.3.mixer.out_proj.weight"].abs().max().item<float>() <= bound);
  CHECK(p["layers.3.mixer.out_proj.weight"].abs().max().item<float>() > 0.95f * bound);
  CHECK(p["pos_embed"].std().item<float>() == doctest::Approx(0.02).epsilon(0.05));
  CHECK(p["head.bias"].abs().max().item<float>() == 0.0f);
}

TEST_CASE("aum: the patch embedding gets AuM's lecun_normal_ and a zero bias; AST keeps the patcher's") {
  // FFTP 128 x 16 kernel: fan_in 2048. lecun_normal_ std = sqrt(1/2048) / 0.8796 = 0.0251;
  // PyTorch's Conv2d default (kaiming-uniform, a = sqrt 5) has std 1/sqrt(3 * 2048) = 0.0128.
  const auto proj = [](const std::string& backbone) {
    const std::string text =
        "[dataset]\nplugin = \"folder\"\nroot = \"data\"\n[frontend]\nnum_mel_bins = 128\n"
        "target_frames = 128\n[patcher]\nplugin = \"fftp\"\npatch_frames = 16\nstride = 16\n"
        "[backbone]\n" + backbone + "\n";
    const auto config = load_experiment_text(text, "exp.toml", {}, registry()).runs.front().config;
    torch::manual_seed(3);
    const Model m = build_model(config, registry(), 10);
    std::map<std::string, at::Tensor> p;
    for (const auto& kv : m.patcher->module().named_parameters()) p[kv.key()] = kv.value().detach().clone();
    return p;
  };
  const double lecun = std::sqrt(1.0 / 2048.0) / 0.87962566103423978, pytorch = 1.0 / std::sqrt(3.0 * 2048.0);
  const auto aum = proj("plugin = \"aum\"\ndepth = 1");
  CHECK(aum.at("proj.weight").std().item<double>() == doctest::Approx(lecun).epsilon(0.03));
  CHECK(aum.at("proj.bias").abs().max().item<float>() == 0.0f);
  // patch_init = "patcher" keeps the patcher's own, as AST does.
  const auto kept = proj("plugin = \"aum\"\ndepth = 1\npatch_init = \"patcher\"");
  CHECK(kept.at("proj.weight").std().item<double>() == doctest::Approx(pytorch).epsilon(0.03));
  CHECK(kept.at("proj.bias").abs().max().item<float>() > 0.0f);
  const auto ast = proj("plugin = \"ast\"\npreset = \"tiny\"\ndepth = 1\nembed_dim = 192");
  CHECK(ast.at("proj.weight").std().item<double>() == doctest::Approx(pytorch).epsilon(0.03));
}

TEST_CASE("aum: deterministic under a seed, gradients reach every parameter") {
  for (const std::string mode : {"fo_bi", "bi_bi"}) {
    CAPTURE(mode);
    torch::manual_seed(3);
    auto a = make_aum(small(mode), kSeven, 4);
    torch::manual_seed(3);
    auto b = make_aum(small(mode), kSeven, 4);
    const auto tokens = torch::randn({2, 7, 24});
    const auto out = a->forward(tokens);
    CHECK(torch::equal(out, b->forward(tokens)));
    out.pow(2).sum().backward();
    for (const auto& p : a->module().named_parameters()) {
      CAPTURE(p.key());
      REQUIRE(p.value().grad().defined());
      CHECK(torch::isfinite(p.value().grad()).all().item<bool>());
      CHECK(p.value().grad().abs().sum().item<float>() > 0);
    }
  }
}

TEST_CASE("aum: wrong token count or width is a ShapeError") {
  auto aum = make_aum(small("fo_bi"), kSeven, 4);
  CHECK_THROWS_AS(aum->forward(torch::randn({2, 8, 24})), ShapeError);
  CHECK_THROWS_AS(aum->forward(torch::randn({2, 7, 25})), ShapeError);
  CHECK_THROWS_AS(aum->forward(torch::randn({7, 24})), ShapeError);
  CHECK_THROWS_AS(registry().make_backbone(
                      "aum", Options::defaults(registry().get(PluginKind::backbone, "aum").description.options),
                      BackboneContext{kSeven, 100, 4}),
                  ShapeError);
}
}

// The `ast` backbone: AST-base's exact parameter set, and a forward pass checked against a
// direct re-computation of docs/reference.md §2 from the same parameters.
#include <doctest/doctest.h>

#include <torch/nn.h>

#include "helpers.hpp"
#include "patchbay/error.hpp"

using namespace patchbay;

namespace {

const Registry& registry() { return test::linked_registry(); }

std::shared_ptr<Backbone> make_ast(const std::map<std::string, OptionValue>& set, const PatchGrid& grid,
                                   int64_t classes) {
  auto o = Options::defaults(registry().get(PluginKind::backbone, "ast").description.options);
  for (const auto& [k, v] : set) o.set(k, v);
  const int64_t d = registry().backbone_embed_dim("ast", o);
  return registry().make_backbone("ast", o, BackboneContext{grid, d, classes});
}

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("ast: the base preset has AST-base's parameter tensors (AudioSet, 1212 patches)") {
  const auto grid = PatchGrid::make(128, 1024, 16, 16, 10, 10);
  auto ast = make_ast({{"preset", std::string("base")}}, grid, 527);
  // The original's state_dict, prefix "v." dropped, its patch embedding (our patcher's) and its
  // two unused ImageNet heads (v.head, v.head_dist) left out.
  std::map<std::string, std::vector<int64_t>> expected = {
      {"cls_token", {1, 1, 768}},  {"dist_token", {1, 1, 768}}, {"pos_embed", {1, 1214, 768}},
      {"norm.weight", {768}},      {"norm.bias", {768}},        {"mlp_head.0.weight", {768}},
      {"mlp_head.0.bias", {768}},  {"mlp_head.1.weight", {527, 768}}, {"mlp_head.1.bias", {527}}};
  for (int i = 0; i < 12; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    expected[b + "norm1.weight"] = {768};
    expected[b + "norm1.bias"] = {768};
    expected[b + "attn.qkv.weight"] = {2304, 768};
    expected[b + "attn.qkv.bias"] = {2304};
    expected[b + "attn.proj.weight"] = {768, 768};
    expected[b + "attn.proj.bias"] = {768};
    expected[b + "norm2.weight"] = {768};
    expected[b + "norm2.bias"] = {768};
    expected[b + "mlp.fc1.weight"] = {3072, 768};
    expected[b + "mlp.fc1.bias"] = {3072};
    expected[b + "mlp.fc2.weight"] = {768, 3072};
    expected[b + "mlp.fc2.bias"] = {768};
  }
  std::map<std::string, std::vector<int64_t>> actual;
  for (const auto& p : ast->module().named_parameters()) {
    actual[p.key()] = p.value().sizes().vec();
  }
  CHECK(actual == expected);
  CHECK(ast->cost().params == 86396687);  // + the patcher's 197,376 = 86.6 M, as AST-base
  // Paper MACs: 12 blocks x 1214 tokens x 12 D^2 + head.
  CHECK(ast->cost().paper_macs == 12LL * 1214 * 12 * 768 * 768 + 768 * 527);
}

TEST_CASE("ast: forward equals a direct computation of the architecture") {
  torch::manual_seed(11);
  const auto grid = PatchGrid::make(128, 64, 128, 16, 128, 8);  // 7 tokens
  auto ast = make_ast({{"depth", int64_t{2}}, {"embed_dim", int64_t{48}}, {"heads", int64_t{4}}}, grid, 5);
  ast->module().eval();
  std::map<std::string, at::Tensor> p;
  for (const auto& kv : ast->module().named_parameters()) p[kv.key()] = kv.value().detach();
  const auto tokens = torch::randn({3, 7, 48});

  const auto ln = [](const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps) {
    const auto mean = x.mean(-1, true);
    const auto var = (x - mean).pow(2).mean(-1, true);
    return (x - mean) / torch::sqrt(var + eps) * w + b;
  };
  const auto lin = [&](const at::Tensor& x, const std::string& name) {
    return torch::matmul(x, p[name + ".weight"].t()) + p[name + ".bias"];
  };
  auto x = torch::cat({p["cls_token"].expand({3, 1, 48}), p["dist_token"].expand({3, 1, 48}), tokens}, 1);
  x = x + p["pos_embed"];
  for (int i = 0; i < 2; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    const auto h = ln(x, p[b + "norm1.weight"], p[b + "norm1.bias"], 1e-6);
    const auto qkv = lin(h, b + "attn.qkv");  // [3, 9, 144] = q | k | v, each 4 heads x 12
    std::vector<at::Tensor> heads;
    for (int head = 0; head < 4; ++head) {
      const auto q = qkv.slice(2, head * 12, head * 12 + 12);
      const auto k = qkv.slice(2, 48 + head * 12, 48 + head * 12 + 12);
      const auto v = qkv.slice(2, 96 + head * 12, 96 + head * 12 + 12);
      heads.push_back(torch::softmax(torch::matmul(q, k.transpose(1, 2)) / std::sqrt(12.0), -1).matmul(v));
    }
    x = x + lin(torch::cat(heads, 2), b + "attn.proj");
    const auto h2 = ln(x, p[b + "norm2.weight"], p[b + "norm2.bias"], 1e-6);
    const auto gelu = [](const at::Tensor& t) { return 0.5 * t * (1 + torch::erf(t / std::sqrt(2.0))); };
    x = x + lin(gelu(lin(h2, b + "mlp.fc1")), b + "mlp.fc2");
  }
  x = ln(x, p["norm.weight"], p["norm.bias"], 1e-6);
  const auto pooled = (x.select(1, 0) + x.select(1, 1)) / 2;
  const auto expected = lin(ln(pooled, p["mlp_head.0.weight"], p["mlp_head.0.bias"], 1e-5), "mlp_head.1");

  torch::NoGradGuard no_grad;
  const auto logits = ast->forward(tokens);
  CHECK(logits.sizes() == at::IntArrayRef({3, 5}));
  CHECK((logits - expected).abs().max().item<float>() < 1e-5);
}

TEST_CASE("ast: from-scratch initialisation as the original") {
  torch::manual_seed(0);
  auto ast = make_ast({{"preset", std::string("small")}}, PatchGrid::make(128, 128, 16, 16, 10, 10), 35);
  std::map<std::string, at::Tensor> p;
  for (const auto& kv : ast->module().named_parameters()) p[kv.key()] = kv.value().detach();
  CHECK(p["blocks.3.attn.qkv.weight"].std().item<float>() == doctest::Approx(0.02).epsilon(0.02));
  CHECK(p["pos_embed"].std().item<float>() == doctest::Approx(0.02).epsilon(0.05));
  CHECK(p["blocks.3.attn.qkv.bias"].abs().max().item<float>() == 0.0f);
  CHECK((p["blocks.3.norm1.weight"] == 1).all().item<bool>());
  CHECK(p["pos_embed"].size(1) == 146);  // 144 patches + 2
  // mlp_head keeps PyTorch's default Linear init (AST builds it outside timm's init):
  // kaiming-uniform, |w| <= 1 / sqrt(fan_in), std = bound / sqrt(3), not 0.02.
  const double bound = 1.0 / std::sqrt(static_cast<double>(p["mlp_head.1.weight"].size(1)));
  CHECK(p["mlp_head.1.weight"].abs().max().item<double>() <= bound + 1e-7);
  CHECK(p["mlp_head.1.weight"].std().item<double>() == doctest::Approx(bound / std::sqrt(3.0)).epsilon(0.05));
  CHECK(p["mlp_head.1.bias"].abs().max().item<double>() > 0.0);
  CHECK(p["mlp_head.1.bias"].abs().max().item<double>() <= bound + 1e-7);
}

TEST_CASE("ast: width and heads that do not fit are refused") {
  const auto grid = PatchGrid::make(128, 128, 128, 16, 128, 4);
  CHECK_THROWS_AS(make_ast({{"embed_dim", int64_t{100}}, {"heads", int64_t{3}}}, grid, 2), ConfigError);
}
}

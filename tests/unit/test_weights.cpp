// Weights in and out (weights.hpp): the original implementations' names and shapes, exact
// round trips, refusals that name the tensor, and the proof that the names and the
// architecture match the originals: tools/load_weights.py loads an export into plain PyTorch
// models with load_state_dict(strict=True) and computes the same logits.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <torch/nn.h>

#include "helpers.hpp"
#include "patchbay/config.hpp"
#include "patchbay/error.hpp"
#include "patchbay/hash.hpp"
#include "patchbay/model.hpp"
#include "patchbay/npy.hpp"
#include "patchbay/weights.hpp"
#include "test_paths.hpp"

namespace fs = std::filesystem;
using namespace patchbay;

namespace {

// A configuration from experiment text (the dataset is never opened: the model needs only
// the class count).
ResolvedConfig config_of(const std::string& patcher, const std::string& backbone, int64_t bins,
                         int64_t frames) {
  const std::string text = fmt::format(
      "[dataset]\nplugin = \"folder\"\nroot = \"data\"\n\n[frontend]\nnum_mel_bins = {}\n"
      "target_frames = {}\n\n[patcher]\n{}\n\n[backbone]\n{}\n",
      bins, frames, patcher, backbone);
  return load_experiment_text(text, "exp.toml", {}, test::linked_registry()).runs.front().config;
}

Model model_of(const ResolvedConfig& c, int64_t classes, uint64_t seed) {
  torch::manual_seed(seed);
  Model m = build_model(c, test::linked_registry(), classes);
  m.train(false);
  return m;
}

// Moves every tensor off its initial value (LayerNorm 1 / 0, zero biases, A_log's log(1..n)
// grid), so a tensor that loaded into the wrong place cannot go unnoticed.
void perturb(Model& m, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : m.named_state()) t.add_(torch::randn_like(t) * 0.05);
}

at::Tensor logits_of(Model& m, const at::Tensor& spec) {
  torch::NoGradGuard no_grad;
  return m.forward(spec);
}

std::map<std::string, std::vector<int64_t>> stored_shapes(const fs::path& file) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& t : read_weights_index(file).tensors) out[t.name] = t.shape;
  return out;
}

std::string mismatch_of(Model& m, const fs::path& file) {
  try {
    import_weights(m, file);
  } catch (const Error& e) {
    return e.id() + ": " + e.what();
  }
  return "(no error)";
}

const char* kAstTiny = "plugin = \"ast\"\ndepth = 2\nembed_dim = 64\nheads = 4";
const char* kSquare = "plugin = \"square\"\npatch_size = 16\nstride = 8";  // 3 x 5 on 32 x 48
const char* kFftp = "plugin = \"fftp\"\npatch_frames = 8\nstride = 4";      // 11 on 32 x 48

std::string aum_tiny(const std::string& bimamba) {
  return "plugin = \"aum\"\ndepth = 2\nembed_dim = 32\nd_state = 4\nbimamba = \"" + bimamba + "\"";
}

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("weights: export then import gives bit-identical logits") {
  test::TempDir dir;
  const auto spec = torch::randn({3, 1, 32, 48});
  const std::pair<const char*, std::string> models[] = {{kSquare, kAstTiny},
                                                        {kFftp, aum_tiny("fo_bi")},
                                                        {kFftp, aum_tiny("bi_bi")},
                                                        {kFftp, "plugin = \"linear_probe\"\nembed_dim = 16"}};
  for (const auto& [patcher, backbone] : models) {
    CAPTURE(backbone);
    const auto c = config_of(patcher, backbone, 32, 48);
    Model a = model_of(c, 5, 1);
    perturb(a, 2);
    Model b = model_of(c, 5, 3);
    REQUIRE_FALSE(logits_of(a, spec).equal(logits_of(b, spec)));
    const fs::path file = dir.path() / "w.h5";
    export_weights(a, file, "test", c.to_toml());
    import_weights(b, file);
    CHECK(logits_of(a, spec).equal(logits_of(b, spec)));
    const auto sa = a.named_state(), sb = b.named_state();
    for (size_t i = 0; i < sa.size(); ++i) CHECK(sa[i].second.equal(sb[i].second));
  }
}

TEST_CASE("weights: AST-base exports exactly the original ASTModel's tensors (AudioSet, 1212 patches)") {
  test::TempDir dir;
  const auto c = config_of("plugin = \"square\"", "plugin = \"ast\"\npreset = \"base\"", 128, 1024);
  Model m = model_of(c, 527, 0);
  const fs::path file = dir.path() / "ast_base.h5";
  export_weights(m, file, "AST-base, untrained", c.to_toml());
  // ASTModel(label_dim=527, fstride=10, tstride=10, input_fdim=128, input_tdim=1024,
  // model_size='base384')'s state_dict without timm's two unused ImageNet heads (v.head.*,
  // v.head_dist.*; docs/weights.md).
  std::map<std::string, std::vector<int64_t>> expected = {
      {"v.cls_token", {1, 1, 768}},
      {"v.dist_token", {1, 1, 768}},
      {"v.pos_embed", {1, 1214, 768}},
      {"v.patch_embed.proj.weight", {768, 1, 16, 16}},
      {"v.patch_embed.proj.bias", {768}},
      {"v.norm.weight", {768}},
      {"v.norm.bias", {768}},
      {"mlp_head.0.weight", {768}},
      {"mlp_head.0.bias", {768}},
      {"mlp_head.1.weight", {527, 768}},
      {"mlp_head.1.bias", {527}}};
  for (int i = 0; i < 12; ++i) {
    const std::string b = "v.blocks." + std::to_string(i) + ".";
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
  CHECK(stored_shapes(file) == expected);
  const auto index = read_weights_index(file);
  CHECK(index.attrs.at("format") == "patchbay.weights");
  CHECK(index.attrs.at("names") == "original");
  CHECK(index.attrs.at("architecture") == "ast");
  CHECK(index.attrs.at("patcher") == "square");
  CHECK(index.attrs.at("tokens") == "1212");
  CHECK(index.attrs.at("stride_time") == "10");
  CHECK(index.attrs.at("config") == c.to_toml());
  for (const auto& t : index.tensors) {
    CHECK(t.dtype == "float32");
    if (t.name == "v.patch_embed.proj.weight") CHECK(t.patchbay_name == "patcher.proj.weight");
    if (t.name == "mlp_head.1.weight") CHECK(t.patchbay_name == "backbone.mlp_head.1.weight");
    if (t.name == "v.blocks.7.attn.qkv.bias") CHECK(t.patchbay_name == "backbone.blocks.7.attn.qkv.bias");
  }
}

TEST_CASE("weights: AuM exports Vim's names, with the backward direction of bimamba v2") {
  // AuM-tiny's widths (D 192, d_inner 384, dt_rank 12, d_state 16, d_conv 4), two layers.
  const auto names_of = [](const std::string& bimamba) {
    const auto c = config_of("plugin = \"square\"", "plugin = \"aum\"\ndepth = 2\nbimamba = \"" + bimamba + "\"",
                             128, 128);
    Model m = model_of(c, 35, 0);
    std::map<std::string, std::vector<int64_t>> out;
    for (const auto& w : weight_names(m)) out[w.file] = w.tensor.sizes().vec();
    return out;
  };
  std::map<std::string, std::vector<int64_t>> expected = {
      {"patch_embed.proj.weight", {192, 1, 16, 16}}, {"patch_embed.proj.bias", {192}},
      {"cls_token", {1, 1, 192}},                     {"pos_embed", {1, 145, 192}},
      {"norm_f.weight", {192}},                       {"head.weight", {35, 192}},
      {"head.bias", {35}}};
  for (int i = 0; i < 2; ++i) {
    const std::string l = "layers." + std::to_string(i) + ".";
    expected[l + "norm.weight"] = {192};
    expected[l + "mixer.in_proj.weight"] = {768, 192};
    expected[l + "mixer.conv1d.weight"] = {384, 1, 4};
    expected[l + "mixer.conv1d.bias"] = {384};
    expected[l + "mixer.x_proj.weight"] = {44, 384};
    expected[l + "mixer.dt_proj.weight"] = {384, 12};
    expected[l + "mixer.dt_proj.bias"] = {384};
    expected[l + "mixer.A_log"] = {384, 16};
    expected[l + "mixer.D"] = {384};
    expected[l + "mixer.out_proj.weight"] = {192, 384};
  }
  CHECK(names_of("none") == expected);
  for (int i = 0; i < 2; ++i) expected["layers." + std::to_string(i) + ".mixer.A_b_log"] = {384, 16};
  CHECK(names_of("fo_bi") == expected);
  for (int i = 0; i < 2; ++i) {
    const std::string l = "layers." + std::to_string(i) + ".mixer.";
    expected[l + "conv1d_b.weight"] = {384, 1, 4};
    expected[l + "conv1d_b.bias"] = {384};
    expected[l + "x_proj_b.weight"] = {44, 384};
    expected[l + "dt_proj_b.weight"] = {384, 12};
    expected[l + "dt_proj_b.bias"] = {384};
    expected[l + "D_b"] = {384};
  }
  CHECK(names_of("bi_bi") == expected);
}

TEST_CASE("weights: a backbone without original names keeps patchbay's") {
  const auto c = config_of(kFftp, "plugin = \"linear_probe\"\nembed_dim = 16", 32, 48);
  Model m = model_of(c, 5, 0);
  for (const auto& w : weight_names(m)) CHECK(w.file == w.patchbay);
}

TEST_CASE("weights: a file of another shape is refused, naming the tensor, and changes nothing") {
  test::TempDir dir;
  const fs::path file = dir.path() / "w.h5";
  const auto two = config_of(kSquare, kAstTiny, 32, 48);
  Model exported = model_of(two, 5, 0);
  export_weights(exported, file, "test");

  const auto advice = fmt::format(
      "; a weights file fits only a model of the same architecture: the same backbone and options "
      "(preset, embed_dim, depth, ...), patcher geometry, input size (frontend.num_mel_bins, "
      "target_frames) and number of classes; compare with 'patchbay weights list {}'", file.string());
  // Deeper: the third block's tensors are missing (12 of them).
  Model deeper = model_of(config_of(kSquare, "plugin = \"ast\"\ndepth = 3\nembed_dim = 64\nheads = 4", 32, 48), 5, 0);
  const auto before = deeper.named_state().front().second.clone();
  CHECK(mismatch_of(deeper, file) ==
        "weights.mismatch: '" + file.string() + "' has no tensor 'v.blocks.2.norm1.weight' "
        "(backbone.blocks.2.norm1.weight [64]), which this model (patcher 'square', backbone 'ast') "
        "needs (11 more mismatched tensors)" + advice);
  CHECK(deeper.named_state().front().second.equal(before));
  // Another class count: the head's shapes differ.
  Model classes = model_of(two, 7, 0);
  CHECK(mismatch_of(classes, file) ==
        "weights.mismatch: tensor 'mlp_head.1.weight' is [5, 64] in '" + file.string() + "' but "
        "[7, 64] in this model (patcher 'square', backbone 'ast') (backbone.mlp_head.1.weight) "
        "(1 more mismatched tensor)" + advice);
  // Shallower: the file holds a block the model does not have (first in name order).
  Model shallower = model_of(config_of(kSquare, "plugin = \"ast\"\ndepth = 1\nembed_dim = 64\nheads = 4", 32, 48), 5, 0);
  CHECK(mismatch_of(shallower, file) ==
        "weights.mismatch: '" + file.string() + "' holds tensor 'v.blocks.1.attn.proj.bias' [64], "
        "which this model (patcher 'square', backbone 'ast') does not have (11 more mismatched "
        "tensors)" + advice);
  // Another backbone altogether.
  Model aum = model_of(config_of(kSquare, aum_tiny("fo_bi"), 32, 48), 5, 0);
  CHECK(mismatch_of(aum, file).rfind("weights.mismatch: '" + file.string() + "' has no tensor "
                                     "'patch_embed.proj.weight'", 0) == 0);

  CHECK(mismatch_of(shallower, dir.path() / "none.h5").rfind("weights.not_found: ", 0) == 0);
  std::ofstream(dir.path() / "text.h5") << "not HDF5";
  CHECK(mismatch_of(shallower, dir.path() / "text.h5").rfind("weights.unreadable: ", 0) == 0);
}

TEST_CASE("weights: train.init_weights is recorded; unset, it leaves run ids as they were") {
  const auto load = [](const std::string& train) {
    return load_experiment_text("[dataset]\nplugin = \"folder\"\nroot = \"data\"\n[patcher]\nplugin = "
                                "\"fftp\"\n[backbone]\nplugin = \"linear_probe\"\n[train]\n" + train,
                                "exp.toml", {}, test::linked_registry()).runs.front().config;
  };
  const auto unset = load(""), empty = load("init_weights = \"\"\n"), set = load("init_weights = \"w.h5\"\n");
  CHECK(unset.to_toml().find("init_weights = \"\"\n") != std::string::npos);
  CHECK(set.to_toml().find("init_weights = \"w.h5\"\n") != std::string::npos);
  CHECK(unset.hash() == empty.hash());
  CHECK(unset.hash() != set.hash());
  // The id is the hash of the text the configuration had before the option existed.
  CHECK(test::id_hash_without_later_options(unset) == unset.hash());
  // init_strict and init_exclude: the same at their defaults, part of the id when set.
  CHECK(load("init_strict = false\ninit_exclude = \"\"\n").hash() == unset.hash());
  CHECK(load("init_weights = \"w.h5\"\ninit_strict = true\n").hash() != set.hash());
  CHECK(load("init_weights = \"w.h5\"\ninit_exclude = \"mlp_head.*\"\n").hash() != set.hash());
}

TEST_CASE("weights: a plugin whose name list misses a tensor is refused") {
  struct Partial final : Backbone {
    Partial() : root(std::make_shared<torch::nn::Module>()) {
      root->register_parameter("a", torch::zeros({2}));
      root->register_parameter("b", torch::zeros({2}));
    }
    at::Tensor forward(const at::Tensor& tokens) override { return tokens.mean(1); }
    torch::nn::Module& module() override { return *root; }
    Cost cost() const override { return {}; }
    std::vector<std::pair<std::string, std::string>> original_names() const override { return {{"a", "x.a"}}; }
    std::shared_ptr<torch::nn::Module> root;
  };
  Model m = model_of(config_of(kFftp, "plugin = \"linear_probe\"\nembed_dim = 16", 32, 48), 5, 0);
  m.backbone = std::make_shared<Partial>();
  m.backbone_name = "partial";
  try {
    weight_names(m);
    FAIL("accepted");
  } catch (const PluginError& e) {
    CHECK(e.id() == "weights.bad_mapping");
    CHECK(std::string(e.what()) == "backbone 'partial' declares original names but none for its "
                                   "tensor 'b'; fix its original_names()");
  }
}

TEST_CASE("weights: the original architectures in plain PyTorch load an export strictly and agree") {
  // tools/load_weights.py builds AST (ASTModel with its DeiT `v`) and AuM (VisionMamba) from
  // the file alone and calls load_state_dict(strict=True): a name or shape that differs from
  // the original's fails there; a structural difference shows in the logits.
  test::TempDir dir;
  const auto spec = torch::randn({2, 1, 32, 48});
  const fs::path input = dir.path() / "input.npy";
  write_npy(input, spec);
  const std::pair<const char*, std::string> models[] = {
      {kSquare, kAstTiny}, {kFftp, kAstTiny}, {kSquare, aum_tiny("fo_bi")}, {kFftp, aum_tiny("bi_bi")},
      {kFftp, aum_tiny("none")}};
  for (const auto& [patcher, backbone] : models) {
    CAPTURE(patcher);
    CAPTURE(backbone);
    const auto c = config_of(patcher, backbone, 32, 48);
    Model m = model_of(c, 5, 4);
    perturb(m, 5);
    const fs::path file = dir.path() / "w.h5", out = dir.path() / "logits.npy";
    export_weights(m, file, "test", c.to_toml());
    const auto r = test::run("/usr/bin/python3 " + quoted(fs::path(test::kSourceDir) / "tools" / "load_weights.py") +
                             " " + quoted(file) + " " + quoted(input) + " --out " + quoted(out));
    REQUIRE_MESSAGE(r.code == 0, r.err);
    const auto expected = logits_of(m, spec);
    const auto python = read_npy(out);
    REQUIRE(python.sizes() == expected.sizes());
    CHECK((python - expected).abs().max().item<float>() < 1e-4);
  }
}
}

// Loading weights from elsewhere (torch_checkpoint.hpp, weights_load.hpp): torch.save
// checkpoints as the peers publish them, written here by Debian's PyTorch; the plain PyTorch
// AST and AuM of tools/load_weights.py saved with torch.save and loaded back with equal
// logits; and each geometry adaptation's stated property, checked numerically.
#include <doctest/doctest.h>

#include <fstream>

#include <fmt/format.h>
#include <torch/nn.h>

#include "helpers.hpp"
#include "patchbay/config.hpp"
#include "patchbay/error.hpp"
#include "patchbay/model.hpp"
#include "patchbay/npy.hpp"
#include "patchbay/torch_checkpoint.hpp"
#include "patchbay/weights.hpp"
#include "patchbay/weights_load.hpp"
#include "test_paths.hpp"
#include "weights_adapt.hpp"

namespace fs = std::filesystem;
using namespace patchbay;

namespace {

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

// Runs a Python snippet with Debian's python3 (torch, h5py, numpy) in `dir`.
void python(const fs::path& dir, const std::string& code) {
  const fs::path script = dir / "snippet.py";
  std::ofstream(script) << "import collections, torch\n" << code;
  const auto r = test::run("cd " + quoted(dir) + " && /usr/bin/python3 " + quoted(script));
  REQUIRE_MESSAGE(r.code == 0, r.err);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.id() + ": " + e.what();
  }
  return "(no error)";
}

ResolvedConfig config_of(const std::string& patcher, const std::string& backbone, int64_t bins, int64_t frames) {
  const std::string text = fmt::format(
      "[dataset]\nplugin = \"folder\"\nroot = \"data\"\n\n[frontend]\nnum_mel_bins = {}\ntarget_frames = {}\n\n"
      "[patcher]\n{}\n\n[backbone]\n{}\n", bins, frames, patcher, backbone);
  return load_experiment_text(text, "exp.toml", {}, test::linked_registry()).runs.front().config;
}

Model model_of(const ResolvedConfig& c, int64_t classes, uint64_t seed) {
  torch::manual_seed(seed);
  Model m = build_model(c, test::linked_registry(), classes);
  m.train(false);
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : m.named_state()) t.add_(torch::randn_like(t) * 0.05);  // off the init values
  return m;
}

at::Tensor logits_of(Model& m, const at::Tensor& spec) {
  torch::NoGradGuard no_grad;
  return m.forward(spec);
}

at::Tensor state_of(const Model& m, const std::string& name) {
  for (const auto& [n, t] : m.named_state()) {
    if (n == name) return t;
  }
  FAIL("no tensor " << name);
  return {};
}

const char* kAst = "plugin = \"ast\"\ndepth = 2\nembed_dim = 64\nheads = 4";
const char* kAum = "plugin = \"aum\"\ndepth = 2\nembed_dim = 32\nd_state = 4\nbimamba = \"bi_bi\"";

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("torch checkpoint: state dicts as torch.save writes them, nested, prefixed, shared, any dtype") {
  test::TempDir dir;
  python(dir.path(), R"(
base = torch.arange(24.0).reshape(4, 6)
sd = collections.OrderedDict()
sd['module.v.w'] = base
sd['module.v.view'] = base[1:3, 2:5]         # a view: offset and strides into a shared storage
sd['module.v.t'] = base.t()                  # transposed strides
sd['module.half'] = torch.tensor([1.5, -2.5]).half()
sd['module.bf16'] = torch.tensor([3.0]).bfloat16()
sd['module.f64'] = torch.tensor([0.1], dtype=torch.float64)
sd['module.count'] = torch.tensor(7)
sd['module.param'] = torch.nn.Parameter(torch.ones(2, 2))
sd._metadata = collections.OrderedDict([('', {'version': 1})])
torch.save(sd, 'plain.pth')
torch.save({'epoch': 9, 'model': sd, 'optimizer': {'lr': 0.1, 'betas': (0.9, 0.98)}, 'best': 0.95}, 'nested.pth')
torch.save({'state_dict': dict(sd)}, 'single.pth')  # one key: pickled with SETITEM
torch.save({'a': torch.ones(3)}, 'proto4.pth', pickle_protocol=4)
torch.save(torch.nn.Linear(2, 2), 'module.pth')
torch.save(sd, 'legacy.pth', _use_new_zipfile_serialization=False)
torch.save({'epoch': 1, 'history': [1, 2]}, 'nostate.pth')
)");
  for (const char* name : {"plain.pth", "nested.pth", "single.pth"}) {
    CAPTURE(name);
    const auto c = read_torch_checkpoint(dir.path() / name);
    CHECK(c.removed_prefix == "module.");
    CHECK(c.nested_under == (std::string(name) == "nested.pth" ? "model" : std::string(name) == "single.pth" ? "state_dict" : ""));
    REQUIRE(c.tensors.size() == 8);
    const at::Tensor base = at::arange(24.0, at::kFloat).reshape({4, 6});
    CHECK(c.tensors.at("v.w").equal(base));
    CHECK(c.tensors.at("v.view").equal(base.slice(0, 1, 3).slice(1, 2, 5)));
    CHECK(c.tensors.at("v.t").equal(base.t()));
    CHECK((c.tensors.at("half").scalar_type() == at::kHalf));
    CHECK(c.tensors.at("half").to(at::kFloat).equal(at::tensor({1.5f, -2.5f})));
    CHECK(c.tensors.at("bf16").to(at::kFloat).item<float>() == 3.0f);
    CHECK(c.tensors.at("f64").item<double>() == 0.1);
    CHECK(c.tensors.at("count").item<int64_t>() == 7);
    CHECK(c.tensors.at("param").equal(at::ones({2, 2})));
  }
  CHECK(read_torch_checkpoint(dir.path() / "proto4.pth").tensors.at("a").equal(at::ones({3})));

  const auto module = error_of([&] { read_torch_checkpoint(dir.path() / "module.pth"); });
  CHECK_MESSAGE(module.find("holds a pickled Python object (torch.nn.modules.linear.Linear), not a state dict: in "
                            "Python, save model.state_dict() instead") != std::string::npos, module);
  const auto legacy = error_of([&] { read_torch_checkpoint(dir.path() / "legacy.pth"); });
  CHECK_MESSAGE(legacy.rfind("weights.unreadable: ", 0) == 0, legacy);
  CHECK(legacy.find("legacy format loads after re-saving it") != std::string::npos);
  const auto none = error_of([&] { read_torch_checkpoint(dir.path() / "nostate.pth"); });
  CHECK_MESSAGE(none.find("its keys are 'epoch' (an int), 'history' (a list)") != std::string::npos, none);
  // A truncated file is named, with no LibTorch stack trace.
  fs::copy_file(dir.path() / "plain.pth", dir.path() / "cut.pth");
  fs::resize_file(dir.path() / "cut.pth", fs::file_size(dir.path() / "cut.pth") / 2);
  const auto cut = error_of([&] { read_torch_checkpoint(dir.path() / "cut.pth"); });
  CHECK_MESSAGE(cut.rfind("weights.unreadable: ", 0) == 0, cut);
  CHECK(cut.find("Exception raised from") == std::string::npos);
}

TEST_CASE("weights load: the plain PyTorch AST and AuM saved with torch.save load back with equal logits") {
  // tools/load_weights.py loads an export strictly into the plain models, computes their
  // logits and saves their state_dict() with torch.save: the original code's own checkpoint.
  test::TempDir dir;
  const auto spec = torch::randn({2, 1, 32, 48});
  write_npy(dir.path() / "input.npy", spec);
  const char* kSquare = "plugin = \"square\"\npatch_size = 16\nstride = 8";
  for (const char* backbone : {kAst, kAum}) {
    CAPTURE(backbone);
    const auto c = config_of(kSquare, backbone, 32, 48);
    Model trained = model_of(c, 5, 1);
    export_weights(trained, dir.path() / "w.h5", "test", c.to_toml());
    const auto r = test::run("/usr/bin/python3 " + quoted(fs::path(test::kSourceDir) / "tools" / "load_weights.py") +
                             " " + quoted(dir.path() / "w.h5") + " " + quoted(dir.path() / "input.npy") + " --out " +
                             quoted(dir.path() / "py.npy") + " --save-pth " + quoted(dir.path() / "plain.pth"));
    REQUIRE_MESSAGE(r.code == 0, r.err);
    // As AST publishes it: DataParallel's prefix, nested in a training checkpoint, and DeiT's
    // unused ImageNet heads beside the model's tensors.
    python(dir.path(), R"(
sd = torch.load('plain.pth')
if 'v.cls_token' in sd:
    d = sd['v.cls_token'].shape[-1]
    sd['v.head.weight'], sd['v.head.bias'] = torch.zeros(1000, d), torch.zeros(1000)
torch.save({'model': collections.OrderedDict(('module.' + k, v) for k, v in sd.items()), 'epoch': 3}, 'wrapped.pth')
)");
    const at::Tensor python_logits = read_npy(dir.path() / "py.npy");
    Model fresh = model_of(c, 5, 2);
    REQUIRE((logits_of(fresh, spec) - python_logits).abs().max().item<float>() > 1e-2);
    import_weights(fresh, dir.path() / "plain.pth");  // strict
    CHECK((logits_of(fresh, spec) - python_logits).abs().max().item<float>() < 1e-4);

    Model wrapped = model_of(c, 5, 3);
    const auto report = load_weights(wrapped, read_weights_source(dir.path() / "wrapped.pth"), {false, {}});
    CHECK((logits_of(wrapped, spec) - python_logits).abs().max().item<float>() < 1e-4);
    CHECK(report.count(InitAction::Kind::loaded) == static_cast<int64_t>(wrapped.named_state().size()));
    CHECK(report.count(InitAction::Kind::ignored) == (std::string(backbone) == kAst ? 2 : 0));
    // Strict refuses the unused heads; the adaptive load reports them.
    if (std::string(backbone) == kAst) {
      const auto strict = error_of([&] { import_weights(wrapped, dir.path() / "wrapped.pth"); });
      CHECK_MESSAGE(strict.find("holds tensor 'v.head.bias' [1000], which this model") != std::string::npos, strict);
      CHECK(report.details().find("ignored  v.head.weight: backbone 'ast' never uses it") != std::string::npos);
    }
  }
}

TEST_CASE("weights load: another class count gets a fresh head; init_exclude; another architecture is refused") {
  test::TempDir dir;
  const char* kFftp = "plugin = \"fftp\"\npatch_frames = 8\nstride = 4";
  const auto c = config_of(kFftp, kAst, 32, 48);
  Model source = model_of(c, 5, 1);
  export_weights(source, dir.path() / "w.h5", "test", c.to_toml());

  Model seven = model_of(c, 7, 2);
  const at::Tensor head_before = state_of(seven, "backbone.mlp_head.1.weight").clone();
  const auto report = load_weights(seven, read_weights_source(dir.path() / "w.h5"), {false, {}});
  CHECK(report.summary() == fmt::format("{} loaded, 0 adapted, 2 fresh, 0 ignored", seven.named_state().size() - 2));
  CHECK(report.details().find("fresh    mlp_head.1.weight: classification head: 5 classes in the file, 7 here") !=
        std::string::npos);
  CHECK(state_of(seven, "backbone.mlp_head.1.weight").equal(head_before));
  CHECK(state_of(seven, "backbone.pos_embed").equal(state_of(source, "backbone.pos_embed")));
  CHECK(state_of(seven, "backbone.mlp_head.0.weight").equal(state_of(source, "backbone.mlp_head.0.weight")));
  // strict: the same file is a mismatch.
  const auto strict = error_of([&] { load_weights(seven, read_weights_source(dir.path() / "w.h5"), {true, {}}); });
  CHECK(strict.find("weights.mismatch: tensor 'mlp_head.1.weight' is [5, 64]") == 0);
  // ... unless init_exclude names the head: an explicit choice, honoured in strict mode too.
  const auto strict_excluded = load_weights(seven, read_weights_source(dir.path() / "w.h5"), {true, {"mlp_head.1.*"}});
  CHECK(strict_excluded.count(InitAction::Kind::fresh) == 2);
  CHECK(strict_excluded.details().find("fresh    mlp_head.1.bias: excluded (init_exclude)") != std::string::npos);

  // init_exclude: the whole head (and the norm before it) start fresh, even at equal shapes.
  Model same = model_of(c, 5, 3);
  const at::Tensor norm_before = state_of(same, "backbone.mlp_head.0.weight").clone();
  const auto excluded = load_weights(same, read_weights_source(dir.path() / "w.h5"), {false, split_patterns(" mlp_head.* ,")});
  CHECK(excluded.count(InitAction::Kind::fresh) == 4);
  CHECK(state_of(same, "backbone.mlp_head.0.weight").equal(norm_before));
  CHECK(state_of(same, "backbone.blocks.0.attn.qkv.weight").equal(state_of(source, "backbone.blocks.0.attn.qkv.weight")));

  // AuM from an AST file: every mismatch counted, the first named, nothing changed.
  Model aum = model_of(config_of(kFftp, kAum, 32, 48), 5, 4);
  const at::Tensor aum_before = aum.named_state().front().second.clone();
  const auto other = error_of([&] { load_weights(aum, read_weights_source(dir.path() / "w.h5"), {false, {}}); });
  CHECK_MESSAGE(other.rfind("weights.mismatch: '" + (dir.path() / "w.h5").string() + "' has no tensor "
                            "'patch_embed.proj.weight'", 0) == 0, other);
  CHECK(other.find("more mismatched tensors") != std::string::npos);
  CHECK(other.find("only the positional embedding, the patch embedding and the classification head adapt") !=
        std::string::npos);
  CHECK(aum.named_state().front().second.equal(aum_before));
}

TEST_CASE("weights adapt: square 16 x 16 without overlap -> FFTP: each token + position is its column's mean") {
  // Square: 2 x 3 tokens of 16 x 16 on 32 x 48 (stride 16). FFTP: 1 x 3 tokens of 32 x 16.
  test::TempDir dir;
  const auto square_c = config_of("plugin = \"square\"\npatch_size = 16\nstride = 16", kAst, 32, 48);
  const auto fftp_c = config_of("plugin = \"fftp\"\npatch_frames = 16\nstride = 16", kAst, 32, 48);
  Model square = model_of(square_c, 5, 1);
  export_weights(square, dir.path() / "sq.h5", "test", square_c.to_toml());
  Model fftp = model_of(fftp_c, 5, 2);
  const auto report = load_weights(fftp, read_weights_source(dir.path() / "sq.h5"), {false, {}});
  CHECK(report.count(InitAction::Kind::adapted) == 2);
  CHECK(report.details().find("adapted  v.pos_embed: positional grid 2x3 -> 1x3: mean over the frequency rows, "
                              "then bilinear interpolation; 2 class token rows kept") != std::string::npos);
  CHECK(report.details().find("adapted  v.patch_embed.proj.weight: patch kernel 16x16 -> 32x16: frequency tiled "
                              "2 times") != std::string::npos);

  const auto spec = torch::randn({2, 1, 32, 48});
  torch::NoGradGuard no_grad;
  const at::Tensor sq_tokens = square.patcher->forward(spec);  // [B, 6, D], frequency-major
  const at::Tensor ff_tokens = fftp.patcher->forward(spec);    // [B, 3, D]
  const int64_t d = sq_tokens.size(2);
  const at::Tensor column_mean = sq_tokens.reshape({2, 2, 3, d}).mean(1);
  CHECK((ff_tokens - column_mean).abs().max().item<float>() < 1e-5);
  const at::Tensor sq_pos = state_of(square, "backbone.pos_embed").squeeze(0);
  const at::Tensor ff_pos = state_of(fftp, "backbone.pos_embed").squeeze(0);
  CHECK(ff_pos.slice(0, 0, 2).equal(sq_pos.slice(0, 0, 2)));  // class and distillation rows
  CHECK((ff_pos.slice(0, 2) - sq_pos.slice(0, 2).reshape({2, 3, d}).mean(0)).abs().max().item<float>() < 1e-6);
  // Everything else loaded as is: the encoders are the same.
  CHECK(state_of(fftp, "backbone.blocks.1.mlp.fc2.weight").equal(state_of(square, "backbone.blocks.1.mlp.fc2.weight")));
}

TEST_CASE("weights adapt: kernels keep their response to constant input; positions resize bilinearly") {
  // Cell-overlap resampling preserves sums, so a patch constant along the resampled axis
  // gives the same response, for any sizes.
  for (const auto& [from, to] : {std::pair<int64_t, int64_t>{16, 8}, {16, 6}, {4, 10}, {7, 7}}) {
    CAPTURE(from);
    CAPTURE(to);
    const at::Tensor m = adapt::overlap_matrix(from, to);
    CHECK((m.sum(0) - 1.0).abs().max().item<double>() < 1e-12);
  }
  const at::Tensor kernel = torch::randn({4, 1, 16, 16});
  std::string how;
  const at::Tensor resized = adapt::resize_patch_kernel(kernel, 16, 6, how);
  CHECK(how == "patch kernel 16x16 -> 16x6: frequency as is, time resampled 16 -> 6 by cell overlap");
  REQUIRE(resized.sizes() == at::IntArrayRef({4, 1, 16, 6}));
  const at::Tensor along_freq = torch::randn({16, 1});  // a patch constant in time, varying in frequency
  const auto response = [](const at::Tensor& w, const at::Tensor& patch) {
    return (w * patch.expand({16, w.size(3)})).sum({1, 2, 3});
  };
  CHECK((response(resized, along_freq) - response(kernel, along_freq)).abs().max().item<float>() < 1e-4);
  const at::Tensor odd = adapt::resize_patch_kernel(kernel, 24, 16, how);  // 24 is no multiple of 16
  CHECK(how.find("frequency resampled 16 -> 24 by cell overlap") != std::string::npos);
  CHECK((odd.sum({2, 3}) - kernel.sum({2, 3})).abs().max().item<float>() < 1e-4);

  // Positions: identity at the same grid; bilinear as torch's interpolate otherwise.
  const at::Tensor grid = torch::randn({3, 5, 8});
  CHECK(adapt::resize_grid_positions(grid, 3, 5).equal(grid));
  const at::Tensor up = adapt::resize_grid_positions(grid, 6, 10);
  const at::Tensor expected = torch::nn::functional::interpolate(
      grid.permute({2, 0, 1}).unsqueeze(0),
      torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{6, 10}).mode(torch::kBilinear).align_corners(false));
  CHECK((up - expected.squeeze(0).permute({1, 2, 0})).abs().max().item<float>() < 1e-6);
  // A grid constant along time stays constant after a time resize.
  const at::Tensor flat = torch::randn({2, 1, 8}).expand({2, 5, 8});
  const at::Tensor longer = adapt::resize_grid_positions(flat, 2, 9);
  CHECK((longer - longer.select(1, 0).unsqueeze(1)).abs().max().item<float>() < 1e-6);

  // AuM's layout: the class row sits at N / 2, before and after a resize.
  const WeightLayout middle{"pos_embed", 1, true, {}};
  const at::Tensor pos = torch::randn({1, 7, 4});  // N = 6: class row at 3
  const auto parts = adapt::split_positions(pos, middle);
  CHECK(parts.special.equal(pos[0].slice(0, 3, 4)));
  CHECK(adapt::join_positions(parts.special, parts.grid, middle).equal(pos));
  const at::Tensor joined = adapt::join_positions(parts.special, torch::zeros({9, 4}), middle);
  CHECK(joined[0][4].equal(pos[0][3]));  // N = 9: at 4
}

TEST_CASE("weights adapt: AuM and AST positions to another length; a torch checkpoint needs its grid") {
  test::TempDir dir;
  const char* kFftp = "plugin = \"fftp\"\npatch_frames = 8\nstride = 4";
  for (const char* backbone : {kAum, kAst}) {
    CAPTURE(backbone);
    const auto short_c = config_of(kFftp, backbone, 32, 48), long_c = config_of(kFftp, backbone, 32, 96);
    Model a = model_of(short_c, 5, 1);  // 1 x 11 tokens
    export_weights(a, dir.path() / "a.h5", "test", short_c.to_toml());
    Model b = model_of(long_c, 5, 2);  // 1 x 23 tokens
    const auto report = load_weights(b, read_weights_source(dir.path() / "a.h5"), {false, {}});
    CHECK(report.count(InitAction::Kind::adapted) == 1);
    CHECK(report.details().find("positional grid 1x11 -> 1x23: bilinear interpolation") != std::string::npos);
    const WeightLayout layout = b.backbone->weight_layout();
    const auto from = adapt::split_positions(state_of(a, "backbone.pos_embed"), layout);
    const auto to = adapt::split_positions(state_of(b, "backbone.pos_embed"), layout);
    CHECK(to.special.equal(from.special));
    CHECK(to.grid.size(0) == 23);
    // The ends stay the ends (align_corners = false keeps the outer half-cells).
    CHECK((to.grid[0] - from.grid[0]).abs().max().item<float>() < 1e-6);
    CHECK((to.grid[22] - from.grid[10]).abs().max().item<float>() < 1e-6);
  }
  // The same weights as a torch checkpoint do not say their grid: resizing needs --grid.
  python(dir.path(), "import h5py\nf = h5py.File('a.h5', 'r')\n"
                     "torch.save({k: torch.from_numpy(v[()]) for k, v in f.items()}, 'a.pth')\n");
  Model b = model_of(config_of(kFftp, kAst, 32, 96), 5, 3);
  const auto unknown = error_of([&] { load_weights(b, read_weights_source(dir.path() / "a.pth"), {false, {}}); });
  CHECK_MESSAGE(unknown.find("weights.grid_unknown: ") == 0, unknown);
  CHECK(unknown.find("patchbay weights import") != std::string::npos);
  CHECK(unknown.find("--grid RxC") != std::string::npos);
  WeightsSource src = read_weights_source(dir.path() / "a.pth");
  src.grid = std::make_pair(int64_t{1}, int64_t{11});
  write_weights_source(src, dir.path() / "a_grid.h5");
  const auto report = load_weights(b, read_weights_source(dir.path() / "a_grid.h5"), {false, {}});
  CHECK(report.count(InitAction::Kind::adapted) == 1);
}
}

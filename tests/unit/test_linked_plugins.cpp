// The in-tree plugin sources linked straight into this binary (no dlopen), as the
// patchbay_plugin_<name>_static libraries allow.
#include <doctest/doctest.h>
#include <torch/nn/module.h>

#include "helpers.hpp"
#include "patchbay/error.hpp"

using namespace patchbay;

TEST_SUITE("unit") {
TEST_CASE("linked plugins: square and fftp produce AST's and FFTP's token counts") {
  Registry r;
  test::register_linked_plugins(r);
  CHECK(r.find(PluginKind::patcher, "fftp")->origin.file == "(linked in)");
  const auto defaults = [&](const char* name) {
    return Options::defaults(r.get(PluginKind::patcher, name).description.options);
  };
  PatcherContext audioset{128, 1024, 16};
  auto square = r.make_patcher("square", defaults("square"), audioset);
  CHECK(square->grid().rows == 12);
  CHECK(square->grid().cols == 101);
  auto tokens = square->forward(torch::randn({2, 1, 128, 1024}));
  CHECK(tokens.sizes() == at::IntArrayRef({2, 1212, 16}));

  auto fopts = defaults("fftp");
  fopts.set("patch_frames", int64_t{10});
  fopts.set("stride", int64_t{1});
  auto fftp = r.make_patcher("fftp", fopts, PatcherContext{128, 1000, 16});
  CHECK(fftp->grid().tokens() == 991);
  // Paper MACs of the patch embedding: N x D x F x Tp.
  CHECK(fftp->cost().paper_macs == 991LL * 16 * 128 * 10);
}

TEST_CASE("linked plugins: token counts and grids on 1 s and 10 s inputs") {
  Registry r;
  test::register_linked_plugins(r);
  const auto grid = [&](const char* name, std::map<std::string, OptionValue> set, int64_t frames) {
    auto o = Options::defaults(r.get(PluginKind::patcher, name).description.options);
    for (const auto& [k, v] : set) o.set(k, v);
    return r.make_patcher(name, o, PatcherContext{128, frames, 8})->grid();
  };
  struct Case {
    int64_t frames, tp, st, tokens;
  };
  // FFTP: N = floor((T - Tp) / st) + 1, one row of full-frequency patches.
  for (const auto& c : {Case{128, 16, 4, 29}, Case{128, 16, 16, 8}, Case{128, 2, 1, 127},
                        Case{998, 16, 10, 99}, Case{1000, 10, 1, 991}, Case{1000, 10, 10, 100},
                        Case{1024, 16, 10, 101}, Case{1024, 16, 8, 127}}) {
    CAPTURE(c.frames);
    CAPTURE(c.tp);
    CAPTURE(c.st);
    const auto g = grid("fftp", {{"patch_frames", c.tp}, {"stride", c.st}}, c.frames);
    CHECK(g.rows == 1);
    CHECK(g.tokens() == c.tokens);
    CHECK(g.span(0).freq_end == 128);
    CHECK(g.span(g.tokens() - 1).time_end <= c.frames);
  }
  // Square 16 x 16, stride 10: 12 rows; (T - 16) / 10 + 1 columns.
  for (const auto& c : {Case{128, 16, 10, 144}, Case{998, 16, 10, 12 * 99}, Case{1000, 16, 10, 12 * 99},
                        Case{1024, 16, 10, 1212}}) {
    CAPTURE(c.frames);
    const auto g = grid("square", {}, c.frames);
    CHECK(g.rows == 12);
    CHECK(g.tokens() == c.tokens);
  }
  // Rectangular patches and strides as [freq, time] pairs.
  const auto g = grid("square", {{"patch_size", std::vector<int64_t>{32, 8}},
                                 {"stride", std::vector<int64_t>{32, 4}}}, 128);
  CHECK(g.rows == 4);
  CHECK(g.cols == 31);
}

TEST_CASE("linked plugins: token order is frequency-major") {
  Registry r;
  test::register_linked_plugins(r);
  auto opts = Options::defaults(r.get(PluginKind::patcher, "square").description.options);
  opts.set("stride", std::vector<int64_t>{16, 16});
  auto square = r.make_patcher("square", opts, PatcherContext{32, 48, 4});  // 2 x 3 grid
  // A spectrogram that is non-zero in one cell of the bottom-right patch only.
  auto spec = torch::zeros({1, 1, 32, 48});
  spec.index_put_({0, 0, 20, 40}, 1.0);
  torch::NoGradGuard no_grad;
  auto bias = square->forward(torch::zeros({1, 1, 32, 48}));
  auto out = square->forward(spec) - bias;
  const auto changed = out.abs().sum(2).squeeze(0).nonzero();
  REQUIRE(changed.numel() == 1);
  CHECK(changed.item<int64_t>() == 1 * 3 + 2);  // row 1, column 2
}

TEST_CASE("linked plugins: bad geometry names the option and the input shape") {
  Registry r;
  test::register_linked_plugins(r);
  auto opts = Options::defaults(r.get(PluginKind::patcher, "fftp").description.options);
  opts.set("patch_frames", int64_t{200});
  try {
    r.make_patcher("fftp", opts, PatcherContext{128, 128, 16});
    FAIL("expected a ShapeError");
  } catch (const ShapeError& e) {
    CHECK(std::string(e.what()) ==
          "patcher 'fftp' (patch_frames = 200, stride = 4): a patch of 200 frames is longer than the "
          "input (input 128 mel bins x 128 frames, kernel 128 x 200, stride 128 x 4); choose a "
          "smaller patch or a longer input");
  }
}
}

// SpecAugment and SpecMask semantics (the conformance suite covers the generic contract).
#include <doctest/doctest.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn.h>

#include "helpers.hpp"
#include "patchbay/config.hpp"
#include "patchbay/error.hpp"
#include "patchbay/model.hpp"

using namespace patchbay;

namespace {

const Registry& registry() { return test::linked_registry(); }

std::shared_ptr<Masker> masker(const std::string& name, const std::map<std::string, OptionValue>& set = {}) {
  auto o = Options::defaults(registry().get(PluginKind::masker, name).description.options);
  for (const auto& [k, v] : set) o.set(k, v);
  return registry().make_masker(name, o);
}

MaskResult apply(const Masker& m, const at::Tensor& spec, const PatchGrid& g, uint64_t seed = 1) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return m.apply(spec, g, gen);
}

const PatchGrid kFftp = PatchGrid::make(128, 128, 128, 16, 128, 4);
const PatchGrid kSquare = PatchGrid::make(128, 128, 16, 16, 10, 10);

// Starts of runs of true values in a 1-D bool tensor.
std::vector<int64_t> run_starts(const at::Tensor& flags) {
  std::vector<int64_t> starts;
  auto a = flags.accessor<bool, 1>();
  for (int64_t i = 0; i < flags.size(0); ++i) {
    if (a[i] && (i == 0 || !a[i - 1])) starts.push_back(i);
  }
  return starts;
}

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("specmask: the default budget masks exactly 1024 cells, 768 of them full-frequency") {
  // 0.7 * 1024 / 128 = 5.6 -> the nearest whole number, 6 full-frequency frames (768 cells,
  // 75 %) in bands of 3 and 3; the remaining 256 cells -> one 16 x 16 rectangle.
  const auto spec = torch::randn({16, 128, 128});
  const auto r = apply(*masker("specmask"), spec, kFftp);
  CHECK(torch::equal(r.masked_cells, torch::full({16}, 1024, torch::kLong)));
  CHECK(torch::equal(full_frequency_cells(r.mask), torch::full({16}, 768, torch::kLong)));
  const auto masked = r.spec != spec;
  for (int64_t b = 0; b < 16; ++b) {
    const auto full_columns = masked[b].all(0);  // frames where every bin is masked
    CHECK(full_columns.sum().item<int64_t>() == 6);
    for (auto start : run_starts(full_columns)) CHECK(start % 4 == 0);  // aligned to stride 4
  }
}

TEST_CASE("specmask: rectangles snap to a square grid's strides") {
  const auto spec = torch::randn({24, 128, 128});
  const auto r = apply(*masker("specmask", {{"budget", int64_t{256}}, {"full_frequency_share", 0.0}}),
                       spec, kSquare);
  CHECK(torch::equal(r.masked_cells, torch::full({24}, 256, torch::kLong)));
  const auto masked = r.spec != spec;
  for (int64_t b = 0; b < 24; ++b) {
    const auto rows = run_starts(masked[b].any(1));
    const auto cols = run_starts(masked[b].any(0));
    REQUIRE(rows.size() == 1);
    REQUIRE(cols.size() == 1);
    CHECK(rows[0] % 10 == 0);
    CHECK(cols[0] % 10 == 0);
    CHECK(masked[b].slice(0, rows[0], rows[0] + 16).slice(1, cols[0], cols[0] + 16).all().item<bool>());
  }
}

TEST_CASE("specmask: without alignment starts fall anywhere") {
  const auto spec = torch::randn({64, 128, 128});
  const auto r = apply(*masker("specmask", {{"budget", int64_t{128}}, {"full_frequency_share", 1.0},
                                            {"align", false}}),
                       spec, kFftp);
  int unaligned = 0;
  for (int64_t b = 0; b < 64; ++b) {
    const auto starts = run_starts((r.spec[b] != spec[b]).all(0));
    REQUIRE(starts.size() == 1);
    unaligned += starts[0] % 4 != 0;
  }
  CHECK(unaligned > 16);  // 3 in 4 starts are off-grid when drawn freely
}

TEST_CASE("specmask: fill values") {
  const auto spec = torch::randn({4, 128, 128}) * 3 + 1;
  auto r = apply(*masker("specmask"), spec, kFftp);
  auto masked = r.spec != spec;
  for (int64_t b = 0; b < 4; ++b) {
    const auto mean = spec[b].mean().item<float>();
    CHECK(r.spec[b].masked_select(masked[b]).sub(mean).abs().max().item<float>() < 1e-6);
  }
  r = apply(*masker("specmask", {{"fill", std::string("zero")}}), spec, kFftp);
  CHECK(r.spec.masked_select(r.spec != spec).abs().max().item<float>() == 0.0f);
  r = apply(*masker("specmask", {{"fill", std::string("value")}, {"fill_value", -7.5}}), spec, kFftp);
  CHECK((r.spec.masked_select(r.spec != spec) == -7.5).all().item<bool>());
  CHECK((r.spec == -7.5).sum().item<int64_t>() == r.masked_cells.sum().item<int64_t>());
}

TEST_CASE("specmask: budget 0 is the identity; the same seed gives the same masks") {
  const auto spec = torch::randn({3, 128, 128});
  const auto none = apply(*masker("specmask", {{"budget", int64_t{0}}}), spec, kFftp);
  CHECK(torch::equal(none.spec, spec));
  CHECK(none.masked_cells.sum().item<int64_t>() == 0);
  const auto m = masker("specmask");
  CHECK(torch::equal(apply(*m, spec, kFftp, 5).spec, apply(*m, spec, kFftp, 5).spec));
  CHECK_FALSE(torch::equal(apply(*m, spec, kFftp, 5).spec, apply(*m, spec, kFftp, 6).spec));
}

TEST_CASE("specmask: quantization of other budgets and shares") {
  const auto spec = torch::randn({8, 128, 128});
  // 0.3 * 2048 / 128 = 4.8 -> 5 frames (640); 1408 left -> five 16 x 16 rectangles + 16 x 8.
  auto r = apply(*masker("specmask", {{"budget", int64_t{2048}}, {"full_frequency_share", 0.3}}), spec, kFftp);
  CHECK(torch::equal(r.masked_cells, torch::full({8}, 2048, torch::kLong)));
  // 100 cells, all local: 6 rows of 16 = 96 cells (a 16 x 6 rectangle); 4 cells unmasked.
  r = apply(*masker("specmask", {{"budget", int64_t{100}}, {"full_frequency_share", 0.0}}), spec, kFftp);
  CHECK(torch::equal(r.masked_cells, torch::full({8}, 96, torch::kLong)));
  // A budget beyond the spectrogram masks all of it.
  r = apply(*masker("specmask", {{"budget", int64_t{1 << 20}}}), spec, kFftp);
  CHECK(torch::equal(r.masked_cells, torch::full({8}, 128 * 128, torch::kLong)));
}

TEST_CASE("specmask: check() refuses a budget of the whole spectrogram before any run") {
  // issue "faults" 4: a budget beyond the spectrogram masked everything without a word.
  try {
    masker("specmask", {{"budget", int64_t{128 * 128}}})->check(MaskContext(kFftp));
    FAIL("accepted");
  } catch (const ConfigError& e) {
    CHECK(e.id() == "specmask.budget");
    CHECK_MESSAGE(std::string(e.what()).find("128 x 128 spectrogram (16384 cells)") != std::string::npos, e.what());
  }
  CHECK_NOTHROW(masker("specmask", {{"budget", int64_t{128 * 128 - 1}}})->check(MaskContext(kFftp)));
  CHECK_NOTHROW(masker("specmask")->check(MaskContext(kSquare)));
  // The base class accepts everything.
  CHECK_NOTHROW(masker("none")->check(MaskContext(kFftp)));
  // And every run calls it: loading the file refuses it at the budget's value, and building
  // the model refuses a configuration made in code.
  const std::string text =
      "[dataset]\nplugin = \"folder\"\nroot = \"data\"\n[patcher]\nplugin = \"fftp\"\n"
      "[masker]\nplugin = \"specmask\"\nbudget = 20000\n[backbone]\nplugin = \"linear_probe\"\n";
  CHECK_THROWS_WITH_AS(load_experiment_text(text, "exp.toml", {}, registry()),
                       doctest::Contains("exp.toml:8:10: masker 'specmask': budget = 20000 cells"), ConfigError);
  auto config = load_experiment_text(text, "exp.toml", {"masker.budget=1024"}, registry()).runs.front().config;
  config.masker.options.set("budget", int64_t{20000});
  CHECK_THROWS_WITH_AS(build_model(config, registry(), 3), doctest::Contains("budget = 20000 cells"), ConfigError);
}

TEST_CASE("specmask: a grid for another shape is refused") {
  CHECK_THROWS_AS(apply(*masker("specmask"), torch::randn({2, 128, 100}), kFftp), ShapeError);
}

TEST_CASE("specaugment: AST's widths, starts and fill") {
  // One frequency mask (width uniform in [0, 48)), no time mask, on many examples.
  const int64_t n = 2000;
  const auto spec = torch::randn({n, 128, 64}) + 5;  // never 0 by chance
  // The default fill is raw 0, which the identity normalisation leaves at 0.
  const auto r = apply(*masker("specaugment", {{"time_masks", int64_t{0}}}), spec, kFftp);
  const auto masked_rows = (r.spec == 0).all(2);  // [n, 128]
  const auto widths = masked_rows.sum(1);
  CHECK(widths.max().item<int64_t>() <= 47);
  CHECK(widths.max().item<int64_t>() >= 44);
  CHECK(widths.min().item<int64_t>() == 0);
  CHECK(widths.to(torch::kDouble).mean().item<double>() == doctest::Approx(23.5).epsilon(0.08));
  CHECK(torch::equal(r.masked_cells, widths * 64));
  // Contiguous bands inside the spectrogram, starts spread over the valid range.
  int64_t low_starts = 0, high_ends = 0;
  for (int64_t b = 0; b < n; ++b) {
    const auto starts = run_starts(masked_rows[b]);
    CHECK(starts.size() <= 1);
    if (!starts.empty()) {
      low_starts += starts[0] < 20;
      high_ends += starts[0] + widths[b].item<int64_t>() > 108;
    }
  }
  CHECK(low_starts > 100);
  CHECK(high_ends > 100);
}

TEST_CASE("specaugment: counts the union of the frequency and time bands") {
  const auto spec = torch::randn({50, 128, 128}) + 5;
  const auto r = apply(*masker("specaugment", {{"fill", std::string("value")}, {"fill_value", 0.25}}), spec, kFftp);
  for (int64_t b = 0; b < 50; ++b) {
    const auto m = r.spec[b] != spec[b];
    const int64_t wf = m.all(1).sum().item<int64_t>();
    const int64_t wt = m.all(0).sum().item<int64_t>();
    CHECK(r.masked_cells[b].item<int64_t>() == wf * 128 + wt * 128 - wf * wt);
    CHECK((r.spec[b].masked_select(m) == 0.25).all().item<bool>());
  }
}

TEST_CASE("specaugment: fill = raw_zero puts the raw log-mel 0 after normalisation, as AST") {
  // AST masks before normalising: raw 0 becomes (0 - mean) / (2 std); with its Speech
  // Commands statistics (-6.845978, 5.5654526) that is 0.6150.
  const auto spec = torch::randn({8, 128, 128}) + 5;
  MaskContext context(kFftp);
  context.norm_mean = -6.845978;
  context.norm_scale = 2 * 5.5654526;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const auto r = masker("specaugment")->apply(spec, context, gen);
  REQUIRE(r.mask.defined());
  REQUIRE(r.mask.any().item<bool>());
  const auto filled = r.spec.masked_select(r.mask);
  CHECK(filled.min().item<double>() == doctest::Approx(0.6150).epsilon(1e-4));
  CHECK(filled.max().item<double>() == doctest::Approx(0.6150).epsilon(1e-4));
}

TEST_CASE("specmask: the full-frequency share takes the nearest whole frame count") {
  // 0.7 * 2048 / 128 = 11.2 -> 11 frames (flooring and rounding agree); 0.3 * 1024 / 128 =
  // 2.4 -> 2; 0.66 * 1024 / 128 = 5.28 -> 5; share 1 never exceeds the budget.
  const auto spec = torch::randn({4, 128, 128});
  const std::vector<std::tuple<int64_t, double, int64_t>> cases = {
      {2048, 0.7, 11}, {1024, 0.3, 2}, {1024, 0.66, 5}, {1000, 1.0, 7}, {1024, 0.75, 6}};
  for (const auto& [budget, share, frames] : cases) {
    CAPTURE(budget);
    CAPTURE(share);
    const auto r = apply(*masker("specmask", {{"budget", budget}, {"full_frequency_share", share}}), spec, kFftp);
    CHECK(torch::equal(full_frequency_cells(r.mask), torch::full({4}, frames * 128, torch::kLong)));
  }
}
}

// Conformance: every plugin found in the build's plugin folder must pass these checks for
// its kind. A new plugin is covered by being built, not by copying a test.
#include <doctest/doctest.h>

#include <fstream>

#include <cctype>
#include <set>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/module.h>

#include "helpers.hpp"
#include "patchbay/error.hpp"
#include "patchbay/loader.hpp"
#include "patchbay/weights.hpp"
#include "test_paths.hpp"

using namespace patchbay;

namespace {

const Registry& loaded() {
  static Registry r;
  static bool once = [] {
    PluginLoader(r).load_directories({test::kPluginDir});
    return true;
  }();
  (void)once;
  return r;
}

bool snake_case(const std::string& s) {
  if (s.empty() || !std::islower(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_')) {
      return false;
    }
  }
  return true;
}

int64_t parameter_count(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

Options defaults_of(const RegistryEntry& e) { return Options::defaults(e.description.options); }

// The contexts every patcher must handle with its default options.
const PatcherContext kContexts[] = {{128, 128, 32}, {128, 1024, 16}, {64, 100, 24}};

}  // namespace

TEST_SUITE("conformance") {
TEST_CASE("conformance: there is at least one plugin of every kind") {
  for (auto kind : kAllPluginKinds) {
    CAPTURE(to_string(kind));
    CHECK(!loaded().entries(kind).empty());
  }
}

TEST_CASE("conformance: option schemas are documented and consistent") {
  for (auto kind : kAllPluginKinds) {
    for (const auto* e : loaded().entries(kind)) {
      CAPTURE(e->name());
      CHECK(snake_case(e->name()));
      CHECK(!e->description.help.empty());
      CHECK(!e->origin.version.empty());
      for (const auto& spec : e->description.options.specs()) {
        CAPTURE(spec.name);
        CHECK(snake_case(spec.name));
        CHECK(spec.name != "plugin");          // reserved for the slot's plugin name
        CHECK(spec.name != "plugin_version");  // reserved for the resolved config
        CHECK(!spec.help.empty());
        if (spec.range.min && spec.range.max) CHECK(*spec.range.min <= *spec.range.max);
      }
    }
  }
}

TEST_CASE("conformance: patchers") {
  for (const auto* e : loaded().entries(PluginKind::patcher)) {
    for (const auto& ctx : kContexts) {
      CAPTURE(e->name());
      CAPTURE(ctx.frames);
      torch::manual_seed(7);
      auto p = loaded().make_patcher(e->name(), defaults_of(*e), ctx);
      const auto& g = p->grid();
      CHECK(g.freq_bins == ctx.freq_bins);
      CHECK(g.frames == ctx.frames);
      CHECK(g.tokens() >= 1);
      const auto x = torch::randn({2, 1, ctx.freq_bins, ctx.frames});
      const auto tokens = p->forward(x);
      CHECK(tokens.sizes() == at::IntArrayRef({2, g.tokens(), ctx.embed_dim}));
      CHECK(torch::isfinite(tokens).all().item<bool>());
      // Examples are independent: example 1 alone gives the same tokens.
      CHECK(torch::allclose(p->forward(x.slice(0, 1, 2)), tokens.slice(0, 1, 2), 1e-5, 1e-5));
      // Cost accounting matches the module.
      CHECK(p->cost().params == parameter_count(p->module()));
      CHECK(p->cost().paper_macs > 0);
      // Gradients reach every parameter.
      tokens.sum().backward();
      for (const auto& param : p->module().parameters()) CHECK(param.grad().defined());
      // Same seed, same initial weights.
      torch::manual_seed(7);
      auto again = loaded().make_patcher(e->name(), defaults_of(*e), ctx);
      CHECK(torch::equal(again->forward(x), tokens.detach()));
      // A wrong input shape is a ShapeError, not a crash.
      CHECK_THROWS_AS(p->forward(torch::randn({2, 1, ctx.freq_bins, ctx.frames + 1})), ShapeError);
      CHECK_THROWS_AS(p->forward(torch::randn({2, ctx.freq_bins, ctx.frames})), ShapeError);
    }
  }
}

TEST_CASE("conformance: maskers") {
  const auto grid = PatchGrid::make(128, 128, 128, 16, 128, 4);
  for (const auto* e : loaded().entries(PluginKind::masker)) {
    CAPTURE(e->name());
    auto m = loaded().make_masker(e->name(), defaults_of(*e));
    const auto spec = torch::randn({3, 128, 128});
    const auto before = spec.clone();
    auto gen = at::make_generator<at::CPUGeneratorImpl>(1234);
    // A normalisation no built-in fill coincides with; the input is continuous noise, so a
    // masked cell never keeps its value by chance and "changed" is exactly "masked".
    MaskContext context(grid);
    context.norm_mean = 3.7;
    context.norm_scale = 1.9;
    const auto r = m->apply(spec, context, gen);
    CHECK(torch::equal(spec, before));  // never in place
    CHECK(r.spec.sizes() == spec.sizes());
    CHECK(r.spec.dtype() == spec.dtype());
    REQUIRE(r.masked_cells.sizes() == at::IntArrayRef({3}));
    CHECK(r.masked_cells.dtype() == at::kLong);
    CHECK((r.masked_cells >= 0).all().item<bool>());
    CHECK((r.masked_cells <= 128 * 128).all().item<bool>());
    // The reported count is the cells that changed, and the mask (when given) is them.
    const auto changed = r.spec != spec;
    CHECK(torch::equal(changed.flatten(1).sum(1), r.masked_cells));
    if (r.mask.defined()) {
      CHECK(r.mask.sizes() == spec.sizes());
      CHECK(torch::equal(r.mask, changed));
    }
    // Same seed, same masks.
    auto gen2 = at::make_generator<at::CPUGeneratorImpl>(1234);
    const auto r2 = m->apply(spec, context, gen2);
    CHECK(torch::equal(r2.spec, r.spec));
    CHECK(torch::equal(r2.masked_cells, r.masked_cells));
  }
}

TEST_CASE("conformance: token droppers") {
  const PatchGrid grids[] = {PatchGrid::make(128, 128, 128, 16, 128, 4), PatchGrid::make(128, 128, 16, 16, 10, 10),
                             PatchGrid::make(32, 24, 16, 8, 16, 8)};
  for (const auto* e : loaded().entries(PluginKind::token_dropper)) {
    for (const auto& g : grids) {
      CAPTURE(e->name());
      CAPTURE(g.describe());
      const auto d = loaded().make_token_dropper(e->name(), defaults_of(*e));
      try {
        d->check(g);
      } catch (const ConfigError&) {
        continue;  // refusing a grid is allowed, with a ConfigError
      }
      const int64_t k = d->kept(g);
      CHECK(k >= 1);
      CHECK(k <= g.tokens());
      auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
      const auto keep = d->keep(g, gen);
      REQUIRE(keep.dim() == 1);
      CHECK((keep.scalar_type() == at::kLong));
      REQUIRE(keep.size(0) == k);
      CHECK(keep.min().item<int64_t>() >= 0);
      CHECK(keep.max().item<int64_t>() < g.tokens());
      if (k > 1) CHECK((keep.slice(0, 1) > keep.slice(0, 0, k - 1)).all().item<bool>());
      // The same seed, the same tokens.
      auto again = at::make_generator<at::CPUGeneratorImpl>(11);
      CHECK(torch::equal(d->keep(g, again), keep));
    }
  }
}

TEST_CASE("conformance: backbones") {
  const auto grid = PatchGrid::make(128, 128, 128, 16, 128, 4);
  for (const auto* e : loaded().entries(PluginKind::backbone)) {
    CAPTURE(e->name());
    const auto opts = defaults_of(*e);
    const int64_t d = loaded().backbone_embed_dim(e->name(), opts);
    CHECK(d >= 1);
    BackboneContext ctx{grid, d, 5};
    torch::manual_seed(3);
    auto b = loaded().make_backbone(e->name(), opts, ctx);
    const auto tokens = torch::randn({2, grid.tokens(), d});
    const auto logits = b->forward(tokens);
    CHECK(logits.sizes() == at::IntArrayRef({2, 5}));
    CHECK(torch::isfinite(logits).all().item<bool>());
    CHECK(b->cost().params == parameter_count(b->module()));
    CHECK(b->cost().paper_macs > 0);
    CHECK(b->cost().flops >= b->cost().paper_macs);
    logits.sum().backward();
    for (const auto& p : b->module().parameters()) CHECK(p.grad().defined());
    torch::manual_seed(3);
    auto again = loaded().make_backbone(e->name(), opts, ctx);
    b->module().eval();
    again->module().eval();
    CHECK(torch::equal(again->forward(tokens), b->forward(tokens)));
    CHECK_THROWS_AS(b->forward(torch::randn({2, grid.tokens() + 1, d})), ShapeError);
    // Token dropping: every token kept is the plain forward; a subset trains.
    if (b->drops_tokens()) {
      const auto all = torch::arange(grid.tokens(), torch::kLong);
      CHECK(torch::allclose(b->forward_kept(tokens, all), b->forward(tokens), 1e-5, 1e-6));
      b->module().train();
      b->module().zero_grad();
      const auto some = torch::tensor({0, 3, 7, 20}, torch::kLong);
      const auto part = b->forward_kept(tokens, some);
      CHECK(part.sizes() == at::IntArrayRef({2, 5}));
      CHECK(torch::isfinite(part).all().item<bool>());
      part.sum().backward();
      for (const auto& p : b->module().parameters()) CHECK(p.grad().defined());
      CHECK_THROWS_AS(b->forward_kept(torch::randn({2, grid.tokens() + 1, d}), some), ShapeError);
    } else {
      CHECK_THROWS_AS(b->forward_kept(tokens, torch::arange(grid.tokens(), torch::kLong)), ConfigError);
    }
  }
}

TEST_CASE("conformance: declared original names cover each patcher's and backbone's tensors") {
  // weight_names() refuses a name list that misses, repeats or invents a tensor, and two
  // plugins that give one name to two tensors: every pairing must export.
  for (const auto* pe : loaded().entries(PluginKind::patcher)) {
    for (const auto* be : loaded().entries(PluginKind::backbone)) {
      CAPTURE(pe->name());
      CAPTURE(be->name());
      Model m;
      m.patcher_name = pe->name();
      m.backbone_name = be->name();
      m.num_classes = 5;
      const int64_t d = loaded().backbone_embed_dim(be->name(), defaults_of(*be));
      m.patcher = loaded().make_patcher(pe->name(), defaults_of(*pe), PatcherContext{128, 128, d});
      m.backbone = loaded().make_backbone(be->name(), defaults_of(*be), BackboneContext{m.patcher->grid(), d, 5});
      std::vector<WeightName> names;
      CHECK_NOTHROW(names = weight_names(m));
      CHECK(names.size() == m.named_state().size());
    }
  }
}

TEST_CASE("conformance: datasets read their own example layout") {
  for (const auto* e : loaded().entries(PluginKind::dataset)) {
    CAPTURE(e->name());
    REQUIRE(e->dataset_example);
    test::TempDir dir;
    auto opts = defaults_of(*e);
    for (const auto& [k, v] : e->dataset_example(dir.path())) opts.set(k, v);
    auto ds = loaded().make_dataset(e->name(), opts, DatasetContext{dir.path()});
    const auto& names = ds->class_names();
    REQUIRE(!names.empty());
    std::set<std::string> ids;
    size_t total = 0;
    for (auto split : {Split::train, Split::valid, Split::test}) {
      const auto clips = ds->clips(split);
      total += clips.size();
      for (const auto& c : clips) {
        CAPTURE(c.id);
        CHECK(ids.insert(c.id).second);  // no clip in two splits
        CHECK(std::filesystem::exists(c.path));
        CHECK(!c.labels.empty());
        if (!ds->multi_label()) CHECK(c.labels.size() == 1);
        for (auto l : c.labels) CHECK((l >= 0 && l < static_cast<int64_t>(names.size())));
      }
      // Deterministic listing.
      auto again = loaded().make_dataset(e->name(), opts, DatasetContext{dir.path()});
      const auto clips2 = again->clips(split);
      REQUIRE(clips2.size() == clips.size());
      for (size_t i = 0; i < clips.size(); ++i) CHECK(clips2[i].id == clips[i].id);
    }
    CHECK(!ds->clips(Split::train).empty());
    CHECK(total == ids.size());
    // A root that is not a folder (here: a plain file) is a DataError, not a crash. (A
    // missing root is not always wrong: built-in datasets generate into it.)
    auto bad = opts;
    std::ofstream(dir.path() / "not_a_folder") << "x";
    for (const auto& spec : e->description.options.specs()) {
      if (spec.name == "root") bad.set("root", (dir.path() / "not_a_folder").string());
    }
    if (bad.contains("root")) CHECK_THROWS_AS(loaded().make_dataset(e->name(), bad, DatasetContext{dir.path()}), DataError);
  }
}
}

// Patchout's semantics (PaSST's structured and unstructured drops), the host's checks of a
// token dropper's contract, and a backbone that cannot drop tokens. The conformance suite
// covers the generic contract of every token dropper and backbone.
#include <doctest/doctest.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn.h>

#include <set>

#include "helpers.hpp"
#include "patchbay/config.hpp"
#include "patchbay/error.hpp"
#include "patchbay/model.hpp"

using namespace patchbay;

namespace {

const Registry& registry() { return test::linked_registry(); }

std::shared_ptr<TokenDropper> patchout(const std::map<std::string, OptionValue>& set) {
  auto o = Options::defaults(registry().get(PluginKind::token_dropper, "patchout").description.options);
  for (const auto& [k, v] : set) o.set(k, v);
  return registry().make_token_dropper("patchout", o);
}

std::vector<int64_t> keep(const TokenDropper& d, const PatchGrid& g, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Tensor k = d.keep(g, gen);
  return std::vector<int64_t>(k.data_ptr<int64_t>(), k.data_ptr<int64_t>() + k.numel());
}

const PatchGrid kAst = PatchGrid::make(128, 1024, 16, 16, 10, 10);  // 12 x 101
const PatchGrid kFftp = PatchGrid::make(128, 128, 128, 16, 128, 4);  // 1 x 29

// A backbone that keeps the default forward_kept (it cannot drop tokens).
class PlainBackbone final : public Backbone {
 public:
  explicit PlainBackbone(const BackboneContext& c)
      : holder_(std::make_shared<torch::nn::Module>()), head_(c.embed_dim, c.num_classes) {
    holder_->register_module("head", head_);
  }
  at::Tensor forward(const at::Tensor& tokens) override { return head_->forward(tokens.mean(1)); }
  torch::nn::Module& module() override { return *holder_; }
  Cost cost() const override { return {}; }

 private:
  std::shared_ptr<torch::nn::Module> holder_;
  torch::nn::Linear head_;
};

// A token dropper that returns its indices in the wrong order.
class BackwardsDropper final : public TokenDropper {
 public:
  int64_t kept(const PatchGrid& g) const override { return g.tokens(); }
  at::Tensor keep(const PatchGrid& g, at::Generator&) const override { return at::arange(g.tokens() - 1, -1, -1, at::kLong); }
};

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("patchout: structured drops remove whole time columns and frequency rows, as PaSST's") {
  // PaSST's AudioSet setting: 40 of the 99 (here 101) columns, 4 of the 12 rows.
  const auto d = patchout({{"time_columns", int64_t{40}}, {"freq_rows", int64_t{4}}});
  CHECK_NOTHROW(d->check(kAst));
  REQUIRE(d->kept(kAst) == 61 * 8);
  const auto k = keep(*d, kAst, 1);
  REQUIRE(static_cast<int64_t>(k.size()) == 61 * 8);
  std::set<int64_t> rows, cols;
  for (int64_t t : k) {
    rows.insert(t / kAst.cols);
    cols.insert(t % kAst.cols);
  }
  CHECK(rows.size() == 8);
  CHECK(cols.size() == 61);
  // Every kept row has every kept column: the kept tokens are the rows x columns product,
  // in grid order.
  std::vector<int64_t> product;
  for (int64_t r : rows) {
    for (int64_t c : cols) product.push_back(r * kAst.cols + c);
  }
  CHECK(k == product);
  // The generator decides: the same seed keeps the same tokens, another seed others.
  CHECK(keep(*d, kAst, 1) == k);
  CHECK(keep(*d, kAst, 2) != k);
}

TEST_CASE("patchout: unstructured drops keep a uniform random subset, in order") {
  const auto d = patchout({{"random", int64_t{9}}});
  REQUIRE(d->kept(kFftp) == 20);
  std::vector<int> times_kept(29, 0);
  const int draws = 2000;
  for (int s = 0; s < draws; ++s) {
    const auto k = keep(*d, kFftp, static_cast<uint64_t>(s));
    REQUIRE(k.size() == 20);
    for (size_t i = 1; i < k.size(); ++i) REQUIRE(k[i] > k[i - 1]);
    for (int64_t t : k) ++times_kept[t];
  }
  // Each token is kept with probability 20 / 29 = 0.69; 2000 draws: sd 0.010 per token.
  for (int64_t t = 0; t < 29; ++t) {
    CAPTURE(t);
    CHECK(times_kept[t] / static_cast<double>(draws) == doctest::Approx(20.0 / 29.0).epsilon(0.07));
  }
  // Structured and unstructured together: columns first, then tokens of what is left.
  const auto both = patchout({{"time_columns", int64_t{10}}, {"random", int64_t{5}}});
  CHECK(both->kept(kFftp) == 14);
  CHECK(keep(*both, kFftp, 3).size() == 14);
}

TEST_CASE("patchout: counts the grid cannot give are refused, naming the option and the grid") {
  // A full-frequency grid has one row: there is no row to drop.
  CHECK_THROWS_WITH_AS(patchout({{"freq_rows", int64_t{1}}})->check(kFftp),
                       doctest::Contains("token_dropper.freq_rows = 1 would drop its only frequency row"), ConfigError);
  CHECK_THROWS_WITH_AS(patchout({{"time_columns", int64_t{29}}})->check(kFftp),
                       doctest::Contains("every one of its 29 time columns on the grid 1 x 29"), ConfigError);
  CHECK_THROWS_WITH_AS(patchout({{"time_columns", int64_t{20}}, {"random", int64_t{9}}})->check(kFftp),
                       doctest::Contains("token_dropper.random = 9 would drop all 9 tokens"), ConfigError);
  CHECK_NOTHROW(patchout({{"time_columns", int64_t{20}}, {"random", int64_t{8}}})->check(kFftp));
}

TEST_CASE("model: the host refuses a token dropper that breaks its contract, and a backbone that cannot drop") {
  const auto& r = registry();
  Model m;
  m.patcher = r.make_patcher("fftp", Options::defaults(r.get(PluginKind::patcher, "fftp").description.options),
                             PatcherContext{128, 128, 16});
  m.backbone = std::make_shared<PlainBackbone>(BackboneContext{m.patcher->grid(), 16, 3});
  m.backbone_name = "plain";
  m.num_classes = 3;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  // "none": nothing drawn, the plain forward.
  CHECK(!m.draw_keep(gen).defined());
  CHECK(m.train_tokens() == m.grid().tokens());
  m.token_dropper = std::make_shared<BackwardsDropper>();
  m.token_dropper_name = "backwards";
  CHECK_THROWS_WITH_AS(m.draw_keep(gen), doctest::Contains("token dropper 'backwards' broke its contract: the indices "
                                                           "are not strictly increasing"), PluginError);
  // The default forward_kept says what to do.
  const auto spec = torch::randn({2, 1, 128, 128});
  CHECK_THROWS_WITH_AS(m.forward(spec, at::arange(3, at::kLong)), doctest::Contains("cannot drop tokens"), ConfigError);
}

TEST_CASE("model: build_model checks the token dropper against the grid") {
  const auto& r = registry();
  const std::string text = R"([dataset]
plugin = "folder"
root = "data"
[patcher]
plugin = "fftp"
[backbone]
plugin = "linear_probe"
embed_dim = 16
[token_dropper]
plugin = "patchout"
time_columns = 5
)";
  const Experiment ok = load_experiment_text(text, "drop.toml", {}, r);
  const Model m = build_model(ok.runs.front().config, r, 3);
  CHECK(m.token_dropper_name == "patchout");
  CHECK(m.train_tokens() == m.grid().tokens() - 5);
  // Dropping every column of FFTP's default grid: refused when the file loads, at the
  // override, and by build_model for a configuration made in code.
  CHECK_THROWS_WITH_AS(load_experiment_text(text, "drop.toml", {"token_dropper.time_columns=999"}, r),
                       doctest::Contains("command line 'token_dropper.time_columns=999': token_dropper.time_columns = "
                                         "999 would drop every one of its 29 time columns"),
                       ConfigError);
  auto all = ok.runs.front().config;
  all.token_dropper.options.set("time_columns", int64_t{999});
  CHECK_THROWS_WITH_AS(build_model(all, r, 3), doctest::Contains("token_dropper.time_columns = 999"), ConfigError);
}
}

// backbone.match_paper_macs: build_model shrinks a backbone's width or depth to the paper-MACs
// target, picking the closest buildable value (checked against trying every value).
#include <doctest/doctest.h>

#include <cstdlib>
#include <sstream>

#include <fmt/format.h>

#include "helpers.hpp"
#include "patchbay/config.hpp"
#include "patchbay/error.hpp"
#include "patchbay/hash.hpp"
#include "patchbay/model.hpp"

using namespace patchbay;

namespace {

ResolvedConfig config_of(const std::string& patcher, const std::string& backbone_extra, int depth = 2) {
  const std::string text =
      "[dataset]\nplugin = \"folder\"\nroot = \"data\"\n[frontend]\nnum_mel_bins = 128\n"
      "target_frames = 128\n[patcher]\n" + patcher + "\n[backbone]\nplugin = \"ast\"\npreset = "
      "\"tiny\"\ndepth = " + std::to_string(depth) + "\n" + backbone_extra + "\n";
  return load_experiment_text(text, "exp.toml", {}, test::linked_registry()).runs.front().config;
}

const char* kSquare = "plugin = \"square\"\npatch_size = [16, 16]\nstride = [10, 10]";
const char* kFftp = "plugin = \"fftp\"\npatch_frames = 16\nstride = 4";

int64_t macs_of(const ResolvedConfig& c) { return build_model(c, test::linked_registry(), 10).cost().paper_macs; }

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("match: the square model shrunk to FFTP's paper MACs is the closest width that builds") {
  const int64_t target = macs_of(config_of(kFftp, ""));
  const int64_t full = macs_of(config_of(kSquare, ""));
  REQUIRE(full > 2 * target);  // the square model costs far more to begin with
  const auto matched_config = config_of(kSquare, fmt::format("match_paper_macs = {}", target));
  const Model m = build_model(matched_config, test::linked_registry(), 10);
  CHECK(m.matched_option == "embed_dim");
  CHECK(m.matched_value % 3 == 0);  // tiny has 3 heads
  const int64_t got = m.cost().paper_macs;
  // No other width (heads permitting) comes closer.
  for (int64_t w = 3; w <= 192; w += 3) {
    CAPTURE(w);
    const int64_t other = macs_of(config_of(kSquare, fmt::format("embed_dim = {}", w)));
    CHECK(std::llabs(other - target) >= std::llabs(got - target));
  }
  CHECK(std::llabs(got - target) < target / 10);
}

TEST_CASE("match: by depth, and unreachable targets are refused") {
  const int64_t one_block = macs_of(config_of(kSquare, "", 1));
  const Model m = build_model(config_of(kSquare, fmt::format("match_paper_macs = {}\nmatch_by = \"depth\"", one_block + 1)),
                              test::linked_registry(), 10);
  CHECK(m.matched_option == "depth");
  CHECK(m.matched_value == 1);
  CHECK(m.cost().paper_macs == one_block);
  CHECK_THROWS_WITH_AS(build_model(config_of(kSquare, "match_paper_macs = 1\nmatch_by = \"depth\""),
                                   test::linked_registry(), 10),
                       doctest::Contains("more than twice match_paper_macs"), ConfigError);
}

TEST_CASE("match: the options leave run ids as they were while off") {
  const auto c = config_of(kSquare, "");
  const std::string text = c.to_toml();
  CHECK(text.find("match_paper_macs = 0\n") != std::string::npos);
  // The identity text of a configuration without the two options hashes to the same id.
  CHECK(test::id_hash_without_later_options(c) == c.hash());
  CHECK(config_of(kSquare, "match_paper_macs = 1000").hash() != c.hash());
}
}

// Claims files (framework/app/claims.hpp): the verdict regions of each expectation, at and
// around their edges, and what a claims file may hold. `patchbay claims` end to end is
// tested in tests/cli/test_cli_shard.cpp.
#include <doctest/doctest.h>

#include <fstream>

#include "../../framework/app/claims.hpp"
#include "helpers.hpp"
#include "patchbay/error.hpp"

namespace {

using patchbay::cli::Claim;
using patchbay::cli::Expectation;
using patchbay::cli::Verdict;
using patchbay::cli::verdict_of;

Claim claim(Expectation e, double margin = 0.0) {
  Claim c;
  c.expect = e;
  c.margin = margin;
  return c;
}

std::string read_error(const std::string& text) {
  patchbay::test::TempDir dir;
  const auto file = dir.path() / "claims.toml";
  std::ofstream(file) << text;
  try {
    patchbay::cli::read_claims(file);
  } catch (const patchbay::ConfigError& e) {
    return e.id() + ": " + e.what();
  }
  return "";
}

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("claims: the interval alone decides, against the region each expectation names") {
  using patchbay::stats::Interval;
  const auto greater = claim(Expectation::greater), less = claim(Expectation::less);
  CHECK(verdict_of(greater, Interval{0.01, 0.2}) == Verdict::holds);
  CHECK(verdict_of(greater, Interval{-0.01, 0.2}) == Verdict::not_resolved);
  CHECK(verdict_of(greater, Interval{-0.2, -0.01}) == Verdict::differs);
  CHECK(verdict_of(greater, Interval{0.0, 0.2}) == Verdict::not_resolved);  // 0 is not above 0
  CHECK(verdict_of(less, Interval{-0.2, -0.01}) == Verdict::holds);
  CHECK(verdict_of(less, Interval{-0.2, 0.01}) == Verdict::not_resolved);
  CHECK(verdict_of(less, Interval{0.01, 0.2}) == Verdict::differs);
  // With a margin, "a > b" means a - b > margin: reliably above 0 but not above the margin
  // is not enough, and reliably below the margin differs.
  const auto by_margin = claim(Expectation::greater, 0.05);
  CHECK(verdict_of(by_margin, Interval{0.06, 0.2}) == Verdict::holds);
  CHECK(verdict_of(by_margin, Interval{0.01, 0.2}) == Verdict::not_resolved);
  CHECK(verdict_of(by_margin, Interval{0.01, 0.04}) == Verdict::differs);
  CHECK(verdict_of(claim(Expectation::less, 0.05), Interval{-0.2, -0.06}) == Verdict::holds);
  CHECK(verdict_of(claim(Expectation::less, 0.05), Interval{-0.04, 0.1}) == Verdict::differs);
  // "a = b" within 0.02: inside holds, outside (either side) differs, across an edge not.
  const auto level = claim(Expectation::equal, 0.02);
  CHECK(verdict_of(level, Interval{-0.01, 0.015}) == Verdict::holds);
  CHECK(verdict_of(level, Interval{-0.01, 0.03}) == Verdict::not_resolved);
  CHECK(verdict_of(level, Interval{-0.05, 0.05}) == Verdict::not_resolved);
  CHECK(verdict_of(level, Interval{0.03, 0.1}) == Verdict::differs);
  CHECK(verdict_of(level, Interval{-0.1, -0.02}) == Verdict::differs);
  CHECK(patchbay::cli::expectation_text(level) == "A = B within 0.02");
  CHECK(patchbay::cli::expectation_text(by_margin) == "A > B + 0.05");
}

TEST_CASE("claims: a claims file is read whole, and every problem in it is named with its line") {
  patchbay::test::TempDir dir;
  const auto file = dir.path() / "claims.toml";
  std::ofstream(file) << "# two claims\n[[claim]]\ntext = \"t\"\nresults = \"r.h5\"\na = \"x_s0\"\nb = \"y_s0\"\n"
                         "expect = \"a < b\"\nsource = \"s\"\n\n[[claim]]\ntext = \"u\"\nresults = \"r.h5\"\n"
                         "a = \"x_s0\"\nb = \"y_s0\"\nexpect = \"a = b\"\nmargin = 0.01\nmetric = \"test_mAP\"\n";
  const auto claims = patchbay::cli::read_claims(file);
  REQUIRE(claims.size() == 2);
  CHECK(claims[0].expect == Expectation::less);
  CHECK(claims[0].line == 2);
  CHECK(claims[0].source == "s");
  CHECK(claims[1].expect == Expectation::equal);
  CHECK(claims[1].margin == doctest::Approx(0.01));
  CHECK(claims[1].metric == "test_mAP");

  const std::string ok_rest = "results = \"r.h5\"\na = \"x\"\nb = \"y\"\n";
  CHECK(read_error("[[claim]]\ntext = \"t\"\n" + ok_rest + "expect = \"a > b\"\nmetric = \"valid_accuracy\"\n")
            .find(":7: metric = \"valid_accuracy\"") != std::string::npos);
  CHECK(read_error("[[claim]]\ntext = \"t\"\n" + ok_rest + "expect = \"a > b\"\nmargin = -1\n")
            .find(":7: 'margin' must be a number >= 0") != std::string::npos);
  CHECK(read_error("[[claim]]\ntext = \"t\"\nresults = \"r.h5\"\na = \"x\"\nb = \"x\"\nexpect = \"a > b\"\n")
            .find(":5: a and b name the same point") != std::string::npos);
  CHECK(read_error("[claim]\ntext = \"t\"\n").find("'claim' must be written [[claim]]") != std::string::npos);
  CHECK(read_error("[other]\n").find("claims.bad") == 0);
  CHECK(read_error("# nothing\n").find("claims.empty") == 0);
  CHECK(read_error("[[claim]\n").find("claims.syntax") == 0);
  CHECK(read_error("").find("claims.empty") == 0);
  const auto missing = dir.path() / "nowhere.toml";
  CHECK_THROWS_WITH_AS(patchbay::cli::read_claims(missing), doctest::Contains("cannot read the claims file"),
                       patchbay::ConfigError);
}
}

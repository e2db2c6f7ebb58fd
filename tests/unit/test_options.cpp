#include <doctest/doctest.h>

#include "patchbay/error.hpp"
#include "patchbay/options.hpp"

using namespace patchbay;

namespace {
std::string check_error(const OptionSchema& s, const std::string& name, OptionValue v) {
  auto r = s.check(*s.find(name), v);
  REQUIRE(std::holds_alternative<std::string>(r));
  return std::get<std::string>(r);
}
OptionValue check_ok(const OptionSchema& s, const std::string& name, OptionValue v) {
  auto r = s.check(*s.find(name), v);
  REQUIRE(std::holds_alternative<OptionValue>(r));
  return std::get<OptionValue>(r);
}
}  // namespace

TEST_SUITE("unit") {
TEST_CASE("options: types, conversions, ranges and choices") {
  OptionSchema s;
  s.add_int("stride", 4, "hop", Range::at_least(1))
      .add_real("share", 0.7, "share", Range::between(0, 1))
      .add_choice("fill", "mean", {"mean", "zero"}, "fill")
      .add_int_pair("patch_size", {16, 16}, "size", Range::at_least(1))
      .add_bool("aligned", true, "align")
      .add_real_list("betas", {0.9, 0.99}, "betas");

  CHECK(check_error(s, "stride", OptionValue{std::string("four")}) ==
        "expects an integer, got a string (\"four\")");
  CHECK(check_error(s, "stride", OptionValue{2.5}) == "expects an integer, got a number (2.5)");
  CHECK(check_error(s, "stride", OptionValue{int64_t{0}}) == "must be >= 1, got 0");
  CHECK(check_error(s, "share", OptionValue{1.5}) == "must be between 0 and 1, got 1.5");
  CHECK(check_error(s, "fill", OptionValue{std::string("avg")}) ==
        "must be one of \"mean\", \"zero\", got \"avg\"");
  CHECK(check_error(s, "aligned", OptionValue{int64_t{1}}) ==
        "expects a boolean (true or false), got an integer (1)");
  CHECK(check_error(s, "patch_size", OptionValue{std::vector<int64_t>{1, 2, 3}}) ==
        "expects an integer or a [frequency, time] pair of integers, got a list ([1, 2, 3])");
  CHECK(check_error(s, "patch_size", OptionValue{std::vector<int64_t>{16, 0}}) ==
        "has an element that must be >= 1, got [16, 0]");

  // Integers widen to reals; a single integer widens to a pair.
  CHECK(std::get<double>(check_ok(s, "share", OptionValue{int64_t{1}})) == 1.0);
  CHECK(std::get<std::vector<int64_t>>(check_ok(s, "patch_size", OptionValue{int64_t{8}})) ==
        std::vector<int64_t>{8, 8});
  CHECK(std::get<std::vector<double>>(check_ok(s, "betas", OptionValue{std::vector<int64_t>{1, 0}})) ==
        std::vector<double>{1.0, 0.0});
}

TEST_CASE("options: schema refuses duplicates and defaults outside their own range") {
  OptionSchema s;
  s.add_int("stride", 4, "hop", Range::at_least(1));
  CHECK_THROWS_AS(s.add_int("stride", 2, "again"), std::logic_error);
  CHECK_THROWS_AS(s.add_int("bad", 0, "zero is below 1", Range::at_least(1)), std::logic_error);
  CHECK_THROWS_AS(s.add_choice("fill", "avg", {"mean", "zero"}, "x"), std::logic_error);
}

TEST_CASE("options: closest key for typos, none for unrelated words") {
  OptionSchema s;
  s.add_int("stride", 4, "").add_int("patch_frames", 16, "");
  CHECK(s.closest("strid") == std::optional<std::string>("stride"));
  CHECK(s.closest("patch_frame") == std::optional<std::string>("patch_frames"));
  CHECK_FALSE(s.closest("budget").has_value());
}

TEST_CASE("options: getters check the declared type") {
  OptionSchema s;
  s.add_int("stride", 4, "").add_int_pair("size", {16, 8}, "").add_real("lr", 0.5, "");
  auto o = Options::defaults(s);
  CHECK(o.get_int("stride") == 4);
  CHECK(o.get_int_pair("size") == std::array<int64_t, 2>{16, 8});
  CHECK(o.get_real("lr") == 0.5);
  CHECK(o.get_real("stride") == 4.0);  // integers read as reals
  try {
    o.get_string("stride");
    FAIL("expected an error");
  } catch (const ConfigError& e) {
    CHECK(e.id() == "options.type");
  }
  try {
    o.get_int("missing");
    FAIL("expected an error");
  } catch (const ConfigError& e) {
    CHECK(e.id() == "options.missing");
  }
}

TEST_CASE("options: TOML spelling round-trips floats as floats") {
  CHECK(to_toml(OptionValue{1.0}) == "1.0");
  CHECK(to_toml(OptionValue{2.5e-4}) == "0.00025");
  CHECK(to_toml(OptionValue{std::string("a\"b")}) == "\"a\\\"b\"");
  CHECK(to_toml(OptionValue{std::vector<int64_t>{16, 16}}) == "[16, 16]");
}
}

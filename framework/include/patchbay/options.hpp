// Option schemas and resolved option values.
//
// Every plugin factory (and every framework section: [frontend], [train], [experiment])
// declares its options as an OptionSchema: name, type, default, range or choices, help.
// The host validates a TOML table against it before anything runs and hands the factory a
// fully resolved Options (every declared key present, defaults filled in).
//
//   OptionSchema s;
//   s.add_int("stride", 4, "hop between patches, in frames", Range::at_least(1));
//   s.add_choice("fill", "mean", {"mean", "zero"}, "value written into masked cells");
//   ...
//   int64_t stride = options.get_int("stride");
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "patchbay/export.hpp"

namespace patchbay {

enum class OptionType {
  boolean,
  integer,
  real,          // accepts integers too
  string,
  integer_list,
  real_list,
  string_list,
  integer_pair,  // an integer n (meaning [n, n]) or a [first, second] pair; stored as a 2-element list
};

using OptionValue = std::variant<bool, int64_t, double, std::string, std::vector<int64_t>,
                                 std::vector<double>, std::vector<std::string>>;

// Inclusive numeric bounds; applied to numbers and to every element of numeric lists.
struct Range {
  std::optional<double> min;
  std::optional<double> max;
  static Range any() { return {}; }
  static Range at_least(double lo) { return {lo, std::nullopt}; }
  static Range between(double lo, double hi) { return {lo, hi}; }
};

struct OptionSpec {
  std::string name;   // snake_case
  OptionType type = OptionType::string;
  std::optional<OptionValue> default_value;  // empty: the user must set it
  std::string help;   // one line, lower case, no final period
  Range range;
  std::vector<std::string> choices;  // for strings: the allowed values (empty: any)
};

// "an integer", "a list of numbers", ... as used in error messages.
PATCHBAY_API std::string describe(OptionType type);
// TOML spelling of a value: 4, 0.7, "mean", [16, 16], true.
PATCHBAY_API std::string to_toml(const OptionValue& value);

class PATCHBAY_API OptionSchema {
 public:
  // Adders return *this so a schema reads as a list. A duplicate name or a default that
  // breaks its own range/choices is a programming error: std::logic_error.
  OptionSchema& add(OptionSpec spec);
  OptionSchema& add_bool(std::string name, bool def, std::string help);
  OptionSchema& add_int(std::string name, int64_t def, std::string help, Range range = {});
  OptionSchema& add_real(std::string name, double def, std::string help, Range range = {});
  OptionSchema& add_string(std::string name, std::string def, std::string help);
  OptionSchema& add_required_string(std::string name, std::string help);
  OptionSchema& add_choice(std::string name, std::string def, std::vector<std::string> choices,
                           std::string help);
  OptionSchema& add_int_pair(std::string name, std::array<int64_t, 2> def, std::string help,
                             Range range = {});
  OptionSchema& add_int_list(std::string name, std::vector<int64_t> def, std::string help,
                             Range range = {});
  OptionSchema& add_real_list(std::string name, std::vector<double> def, std::string help,
                              Range range = {});

  const std::vector<OptionSpec>& specs() const { return specs_; }
  const OptionSpec* find(const std::string& name) const;
  // The declared name nearest to `name` by edit distance, if one is near enough to be a typo.
  std::optional<std::string> closest(const std::string& name) const;
  // Checks type, range and choices; returns the value in its stored form (integer_pair
  // widened to two elements, integers widened to reals where a real is expected) or an
  // error text without location ("expects an integer, got a string (\"four\")").
  std::variant<OptionValue, std::string> check(const OptionSpec& spec, const OptionValue& value) const;

 private:
  std::vector<OptionSpec> specs_;
};

// Resolved values: every option of a schema, defaults filled in. Getters throw
// ConfigError (id "options.missing" / "options.type") when a plugin asks for an option it
// did not declare or with the wrong type: a bug in the plugin, reported clearly.
class PATCHBAY_API Options {
 public:
  Options() = default;
  // All defaults of `schema` (options without a default are left unset).
  static Options defaults(const OptionSchema& schema);

  bool contains(const std::string& name) const { return values_.count(name) != 0; }
  const OptionValue& at(const std::string& name) const;
  void set(const std::string& name, OptionValue value) { values_[name] = std::move(value); }

  bool get_bool(const std::string& name) const;
  int64_t get_int(const std::string& name) const;
  double get_real(const std::string& name) const;
  const std::string& get_string(const std::string& name) const;
  std::array<int64_t, 2> get_int_pair(const std::string& name) const;
  const std::vector<int64_t>& get_int_list(const std::string& name) const;
  const std::vector<double>& get_real_list(const std::string& name) const;
  const std::vector<std::string>& get_string_list(const std::string& name) const;

  const std::map<std::string, OptionValue>& values() const { return values_; }

 private:
  std::map<std::string, OptionValue> values_;
};

}  // namespace patchbay

#include "patchbay/options.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "patchbay/error.hpp"
#include "text_util.hpp"

namespace patchbay {
namespace {

std::string format_real(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::string s = fmt::format("{}", v);
  // TOML needs a '.' or an exponent to read a float back as a float.
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

template <typename T, typename F>
std::string list(const std::vector<T>& v, F&& one) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + one(v[i]);
  return out + "]";
}

// "a string (\"four\")": what the user wrote, for "expects X, got Y" messages.
std::string describe_value(const OptionValue& v) {
  return std::visit(
      [&](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) return "a boolean (" + to_toml(v) + ")";
        else if constexpr (std::is_same_v<T, int64_t>) return "an integer (" + to_toml(v) + ")";
        else if constexpr (std::is_same_v<T, double>) return "a number (" + to_toml(v) + ")";
        else if constexpr (std::is_same_v<T, std::string>) return "a string (" + to_toml(v) + ")";
        else return "a list (" + to_toml(v) + ")";
      },
      v);
}

std::string format_bound(double b) {
  if (b == std::floor(b) && std::fabs(b) < 1e15) return fmt::format("{}", static_cast<int64_t>(b));
  return fmt::format("{}", b);
}

// Range check of one number; empty string when fine.
std::string check_range(const Range& r, double x, const std::string& shown) {
  // NaN passes every comparison and Inf most: no option means either.
  if (!std::isfinite(x)) return fmt::format("must be a finite number, got {}", shown);
  const bool low = r.min && x < *r.min;
  const bool high = r.max && x > *r.max;
  if (!low && !high) return {};
  if (r.min && r.max) {
    return fmt::format("must be between {} and {}, got {}", format_bound(*r.min),
                       format_bound(*r.max), shown);
  }
  if (low) return fmt::format("must be >= {}, got {}", format_bound(*r.min), shown);
  return fmt::format("must be <= {}, got {}", format_bound(*r.max), shown);
}

}  // namespace

std::string describe(OptionType type) {
  switch (type) {
    case OptionType::boolean: return "a boolean (true or false)";
    case OptionType::integer: return "an integer";
    case OptionType::real: return "a number";
    case OptionType::string: return "a string";
    case OptionType::integer_list: return "a list of integers";
    case OptionType::real_list: return "a list of numbers";
    case OptionType::string_list: return "a list of strings";
    case OptionType::integer_pair: return "an integer or a [frequency, time] pair of integers";
  }
  return "?";
}

std::string to_toml(const OptionValue& value) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) return x ? "true" : "false";
        else if constexpr (std::is_same_v<T, int64_t>) return fmt::format("{}", x);
        else if constexpr (std::is_same_v<T, double>) return format_real(x);
        else if constexpr (std::is_same_v<T, std::string>) return quote(x);
        else if constexpr (std::is_same_v<T, std::vector<int64_t>>)
          return list(x, [](int64_t i) { return fmt::format("{}", i); });
        else if constexpr (std::is_same_v<T, std::vector<double>>) return list(x, format_real);
        else return list(x, quote);
      },
      value);
}

OptionSchema& OptionSchema::add(OptionSpec spec) {
  if (find(spec.name) != nullptr) throw std::logic_error("option '" + spec.name + "' declared twice");
  if (spec.default_value) {
    auto checked = check(spec, *spec.default_value);
    if (auto* err = std::get_if<std::string>(&checked)) {
      throw std::logic_error("default of option '" + spec.name + "' " + *err);
    }
    spec.default_value = std::get<OptionValue>(checked);
  }
  specs_.push_back(std::move(spec));
  return *this;
}

OptionSchema& OptionSchema::add_bool(std::string name, bool def, std::string help) {
  return add({std::move(name), OptionType::boolean, OptionValue{def}, std::move(help), {}, {}});
}
OptionSchema& OptionSchema::add_int(std::string name, int64_t def, std::string help, Range range) {
  return add({std::move(name), OptionType::integer, OptionValue{def}, std::move(help), range, {}});
}
OptionSchema& OptionSchema::add_real(std::string name, double def, std::string help, Range range) {
  return add({std::move(name), OptionType::real, OptionValue{def}, std::move(help), range, {}});
}
OptionSchema& OptionSchema::add_string(std::string name, std::string def, std::string help) {
  return add({std::move(name), OptionType::string, OptionValue{std::move(def)}, std::move(help), {}, {}});
}
OptionSchema& OptionSchema::add_required_string(std::string name, std::string help) {
  return add({std::move(name), OptionType::string, std::nullopt, std::move(help), {}, {}});
}
OptionSchema& OptionSchema::add_choice(std::string name, std::string def,
                                       std::vector<std::string> choices, std::string help) {
  return add({std::move(name), OptionType::string, OptionValue{std::move(def)}, std::move(help), {},
              std::move(choices)});
}
OptionSchema& OptionSchema::add_int_pair(std::string name, std::array<int64_t, 2> def,
                                         std::string help, Range range) {
  return add({std::move(name), OptionType::integer_pair,
              OptionValue{std::vector<int64_t>{def[0], def[1]}}, std::move(help), range, {}});
}
OptionSchema& OptionSchema::add_int_list(std::string name, std::vector<int64_t> def,
                                         std::string help, Range range) {
  return add({std::move(name), OptionType::integer_list, OptionValue{std::move(def)},
              std::move(help), range, {}});
}
OptionSchema& OptionSchema::add_real_list(std::string name, std::vector<double> def,
                                          std::string help, Range range) {
  return add({std::move(name), OptionType::real_list, OptionValue{std::move(def)}, std::move(help),
              range, {}});
}

const OptionSpec* OptionSchema::find(const std::string& name) const {
  for (const auto& s : specs_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::optional<std::string> OptionSchema::closest(const std::string& name) const {
  std::vector<std::string> names;
  for (const auto& s : specs_) names.push_back(s.name);
  return closest_match(name, names);
}

std::variant<OptionValue, std::string> OptionSchema::check(const OptionSpec& spec,
                                                           const OptionValue& value) const {
  const auto wrong = [&] {
    return "expects " + describe(spec.type) + ", got " + describe_value(value);
  };
  const auto* as_int = std::get_if<int64_t>(&value);
  const auto* as_ints = std::get_if<std::vector<int64_t>>(&value);
  OptionValue out;
  switch (spec.type) {
    case OptionType::boolean:
      if (!std::holds_alternative<bool>(value)) return wrong();
      return value;
    case OptionType::integer:
      if (!as_int) return wrong();
      out = value;
      break;
    case OptionType::real:
      if (as_int) out = static_cast<double>(*as_int);
      else if (std::holds_alternative<double>(value)) out = value;
      else return wrong();
      break;
    case OptionType::string: {
      const auto* s = std::get_if<std::string>(&value);
      if (!s) return wrong();
      if (!spec.choices.empty() &&
          std::find(spec.choices.begin(), spec.choices.end(), *s) == spec.choices.end()) {
        std::string options;
        for (size_t i = 0; i < spec.choices.size(); ++i) {
          options += (i ? ", " : "") + quote(spec.choices[i]);
        }
        return fmt::format("must be one of {}, got {}", options, quote(*s));
      }
      return value;
    }
    case OptionType::integer_list:
      if (!as_ints) return wrong();
      out = value;
      break;
    case OptionType::real_list:
      if (as_ints) out = std::vector<double>(as_ints->begin(), as_ints->end());
      else if (std::holds_alternative<std::vector<double>>(value)) out = value;
      else return wrong();
      break;
    case OptionType::string_list:
      if (as_ints && as_ints->empty()) return OptionValue{std::vector<std::string>{}};
      if (!std::holds_alternative<std::vector<std::string>>(value)) return wrong();
      return value;
    case OptionType::integer_pair:
      if (as_int) out = std::vector<int64_t>{*as_int, *as_int};
      else if (as_ints && as_ints->size() == 2) out = value;
      else return wrong();
      break;
  }
  // Range check of the (converted) numbers.
  std::string err;
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, double>) {
          err = check_range(spec.range, static_cast<double>(x), to_toml(OptionValue{x}));
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>> ||
                             std::is_same_v<T, std::vector<double>>) {
          for (auto e : x) {
            err = check_range(spec.range, static_cast<double>(e), to_toml(OptionValue{x}));
            if (!err.empty()) {
              err = "has an element that " + err;
              break;
            }
          }
        }
      },
      out);
  if (!err.empty()) return err;
  return out;
}

Options Options::defaults(const OptionSchema& schema) {
  Options o;
  for (const auto& s : schema.specs()) {
    if (s.default_value) o.set(s.name, *s.default_value);
  }
  return o;
}

const OptionValue& Options::at(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) {
    throw ConfigError("options.missing", fmt::format("option '{}' was not declared or has no value; "
                                                     "declare it in the plugin's schema", name));
  }
  return it->second;
}

namespace {
template <typename T>
const T& get_as(const Options& o, const std::string& name, const char* type) {
  const auto* v = std::get_if<T>(&o.at(name));
  if (!v) {
    throw ConfigError("options.type",
                      fmt::format("option '{}' is {}, not {}; read it with the getter of its "
                                  "declared type", name, to_toml(o.at(name)), type));
  }
  return *v;
}
}  // namespace

bool Options::get_bool(const std::string& n) const { return get_as<bool>(*this, n, "a boolean"); }
int64_t Options::get_int(const std::string& n) const { return get_as<int64_t>(*this, n, "an integer"); }
double Options::get_real(const std::string& n) const {
  if (const auto* i = std::get_if<int64_t>(&at(n))) return static_cast<double>(*i);
  return get_as<double>(*this, n, "a number");
}
const std::string& Options::get_string(const std::string& n) const {
  return get_as<std::string>(*this, n, "a string");
}
std::array<int64_t, 2> Options::get_int_pair(const std::string& n) const {
  const auto& v = get_as<std::vector<int64_t>>(*this, n, "an integer pair");
  if (v.size() != 2) {
    throw ConfigError("options.type", fmt::format("option '{}' is {}, not a pair", n, to_toml(at(n))));
  }
  return {v[0], v[1]};
}
const std::vector<int64_t>& Options::get_int_list(const std::string& n) const {
  return get_as<std::vector<int64_t>>(*this, n, "a list of integers");
}
const std::vector<double>& Options::get_real_list(const std::string& n) const {
  return get_as<std::vector<double>>(*this, n, "a list of numbers");
}

const std::vector<std::string>& Options::get_string_list(const std::string& n) const {
  return get_as<std::vector<std::string>>(*this, n, "a list of strings");
}

}  // namespace patchbay

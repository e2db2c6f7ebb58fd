// Sweep-axis shorthands (range, linspace, logspace): see sweep_shorthand.hpp.
#include "sweep_shorthand.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "text_util.hpp"

namespace patchbay::config_internal {
namespace {

constexpr const char* kForms[] = {"range", "linspace", "logspace"};

std::string usage(const std::string& form, const std::string& key) {
  if (form == "range") return fmt::format("\"{}\" = {{ range = [start, stop, step] }}, e.g. {{ range = [10, 40, 10] }} for 10, 20, 30", key);
  if (form == "linspace") return fmt::format("\"{}\" = {{ linspace = [first, last, count] }}, e.g. {{ linspace = [0.0, 0.5, 3] }} for 0, 0.25, 0.5", key);
  return fmt::format("\"{}\" = {{ logspace = [a, b, count] }} for count values from 10^a to 10^b, e.g. {{ logspace = [-4, -2, 3] }} for 0.0001, 0.001, 0.01", key);
}

// A real rounded to 12 significant digits: what a person means by start + i * step.
double tidy(double v) {
  if (v == 0.0 || !std::isfinite(v)) return v;
  return std::stod(fmt::format("{:.12g}", v));
}

std::optional<double> number(const toml::node& n) {
  if (const auto i = n.value_exact<int64_t>()) return static_cast<double>(*i);
  if (const auto d = n.value_exact<double>()) return *d;
  return std::nullopt;
}

ShorthandValues range(const toml::array& args, const std::string& key) {
  ShorthandValues out;
  std::vector<double> v;
  bool integers = true;
  for (const auto& a : args) {
    const auto x = number(a);
    if (!x) break;
    integers = integers && a.is_integer();
    v.push_back(*x);
  }
  if (args.size() != 3 || v.size() != 3 || !std::isfinite(v[0]) || !std::isfinite(v[1]) || !std::isfinite(v[2])) {
    out.error = "takes three finite numbers: " + usage("range", key);
    return out;
  }
  if (v[2] == 0.0) {
    out.error = "has step 0, which never reaches the stop; " + usage("range", key);
    return out;
  }
  // A stop a whole number of steps away is excluded even when rounding puts the ratio a
  // hair above that number ({ range = [0.0, 0.3, 0.1] } is 0, 0.1, 0.2, as written).
  double steps = (v[1] - v[0]) / v[2];
  if (std::abs(steps - std::round(steps)) < 1e-9 * std::max(1.0, std::abs(steps))) steps = std::round(steps);
  const double count = std::ceil(steps);
  if (count < 1) {
    out.error = fmt::format("gives no values: from {} in steps of {} no value is {} {} (the stop is excluded); {}",
                            v[0], v[2], v[2] > 0 ? "below" : "above", v[1], usage("range", key));
    return out;
  }
  if (count > static_cast<double>(kMaxShorthandValues)) {
    out.error = fmt::format("gives {:.0f} values, more than the {} a sweep axis may have; use a larger step", count,
                            kMaxShorthandValues);
    return out;
  }
  toml::array values;
  for (int64_t i = 0; i < static_cast<int64_t>(count); ++i) {
    if (integers) {
      values.push_back(args.get(0)->value_exact<int64_t>().value() + i * args.get(2)->value_exact<int64_t>().value());
    } else {
      values.push_back(tidy(v[0] + static_cast<double>(i) * v[2]));
    }
  }
  out.values = std::move(values);
  return out;
}

ShorthandValues spaced(const toml::array& args, const std::string& key, bool logarithmic) {
  const std::string form = logarithmic ? "logspace" : "linspace";
  ShorthandValues out;
  const auto a = args.size() == 3 ? number(*args.get(0)) : std::nullopt;
  const auto b = args.size() == 3 ? number(*args.get(1)) : std::nullopt;
  const auto n = args.size() == 3 ? args.get(2)->value_exact<int64_t>() : std::nullopt;
  if (!a || !b || !n || !std::isfinite(*a) || !std::isfinite(*b)) {
    out.error = "takes two finite numbers and an integer count: " + usage(form, key);
    return out;
  }
  if (*n < 1 || static_cast<size_t>(*n) > kMaxShorthandValues) {
    out.error = fmt::format("has count {}; give 1 to {} values: {}", *n, kMaxShorthandValues, usage(form, key));
    return out;
  }
  toml::array values;
  for (int64_t i = 0; i < *n; ++i) {
    const double t = *n == 1 ? *a : *a + (*b - *a) * static_cast<double>(i) / static_cast<double>(*n - 1);
    values.push_back(tidy(logarithmic ? std::pow(10.0, t) : t));
  }
  out.values = std::move(values);
  return out;
}

}  // namespace

ShorthandValues expand_shorthand(const toml::table& table, const std::string& key) {
  ShorthandValues out;
  if (table.size() != 1) {
    for (const char* form : kForms) {
      if (table.contains(form)) {
        out.error = fmt::format("{} must be the table's only key: {}", form, usage(form, key));
        return out;
      }
    }
    return out;
  }
  // The one key (toml++'s iterators hand out their pairs by value, so copy what is needed).
  std::string form;
  const toml::node* value = nullptr;
  for (const auto& [name, node] : table) {
    form = std::string(name.str());
    value = &node;
  }
  const bool known = form == "range" || form == "linspace" || form == "logspace";
  if (!known) {
    if (const auto near = closest_match(form, {"range", "linspace", "logspace"})) {
      out.error = fmt::format("'{}' is not a shorthand; did you mean '{}'? {}", form, *near, usage(*near, key));
    }
    return out;
  }
  const toml::array* args = value->as_array();
  if (args == nullptr) {
    out.error = "takes a list: " + usage(form, key);
    return out;
  }
  ShorthandValues expanded = form == "range" ? range(*args, key) : spaced(*args, key, form == "logspace");
  if (!expanded.error.empty()) expanded.error = form + " " + expanded.error;
  return expanded;
}

}  // namespace patchbay::config_internal

// The [sweep] grammar: axes, zip groups, rows and seeds parsed into grid axes (with every
// problem reported at its key), and the slugs of the points they expand to. Used by
// config.cpp, which expands and resolves the points. Not installed.
#pragma once
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "config_internal.hpp"

namespace patchbay::config_internal {

constexpr size_t kMaxRuns = 100000;

// slot table, `value` a table).
struct Assignment {
  std::string key;
  const toml::node* value = nullptr;
  toml::source_region key_region;
  std::string where;  // FILE:LINE:COL of the sweep key
};

// One dimension of the grid: a plain axis, a zip group, or all the rows together.
struct GridAxis {
  std::string what;            // for messages: "axis 'patcher.stride'", "zip group 'g'", "rows"
  toml::source_region region;  // of its key, for file order
  std::vector<std::vector<Assignment>> points;
};

struct Sweep {
  toml::source_region region;  // of [sweep]
  // The lists that shorthands ({ range = [...] }, sweep_shorthand.hpp) expanded to: the
  // points' Assignment::value pointers point into them (deque: stable addresses).
  std::shared_ptr<std::deque<toml::array>> generated = std::make_shared<std::deque<toml::array>>();
  std::vector<GridAxis> axes;
  std::vector<const toml::node*> seeds;  // empty: no seeds
  std::string seeds_where;
};

// A key found while flattening the sweep's TOML: its dotted name, value and position.
struct RawKey {
  std::string key;
  const toml::node* value;
  toml::source_region region;
};

// Parses the [sweep] table; problems go to `diags` (config.sweep_syntax, ...).
Sweep parse_sweep(const toml::table& table, const Locator& where, Diagnostics& diags);

// Slug labels: the option name, or "table-key" where two swept keys share an option name.
std::map<std::string, std::string> slug_labels(const Sweep& sweep);

// A point's readable name from its values ("stride4_s1"), at most 80 characters.
std::string make_slug(const std::vector<Assignment>& point, const toml::node* seed,
                      const std::map<std::string, std::string>& labels, bool has_rows);

// The value an axis gives a point, as the results' axis columns hold it.
OptionValue axis_value(const Assignment& as);

}  // namespace patchbay::config_internal

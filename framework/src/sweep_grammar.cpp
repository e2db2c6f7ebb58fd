// The [sweep] grammar (contract in sweep_grammar.hpp).
#include "sweep_grammar.hpp"

#include <algorithm>
#include <set>
#include <sstream>
#include <tuple>

#include "patchbay/hash.hpp"
#include "sweep_shorthand.hpp"
#include "text_util.hpp"

namespace patchbay::config_internal {
namespace {

constexpr const char* kSlots[] = {"dataset", "patcher", "masker", "token_dropper", "backbone"};
constexpr size_t kMaxSlug = 80;

bool is_slot(const std::string& name) {
  return std::find(std::begin(kSlots), std::end(kSlots), name) != std::end(kSlots);
}

// Tables a sweep key may name: every table but [experiment] (it does not change what runs)
// and [sweep] itself.
std::vector<std::string> sweepable_sections() {
  std::vector<std::string> out;
  for (const char* s : kSections) {
    if (std::string(s) != "experiment" && std::string(s) != "sweep") out.emplace_back(s);
  }
  return out;
}

// One value a point gives one key: "patcher.stride" (an option) or "patcher" (the whole
enum class SweepContext { axis, zip, row };


const char* context_name(SweepContext c) {
  switch (c) {
    case SweepContext::axis: return "[sweep]";
    case SweepContext::zip: return "a zip group";
    case SweepContext::row: return "a row";
  }
  return "";
}

// "4", "0.001", "10x10", "fftp-stride4": a value as slugs and tables print it.
std::string display(const toml::node& node);

std::string compact_table(const toml::table& table) {
  std::vector<std::string> parts;
  if (const auto* plugin = table.get(kSlotPlugin)) parts.push_back(display(*plugin));
  for (const auto& [key, node] : table) {
    if (key.str() == kSlotPlugin) continue;
    parts.push_back(std::string(key.str()) + display(node));
  }
  return parts.empty() ? "default" : join(parts, "-");
}

std::string display(const toml::node& node) {
  if (auto v = node.value_exact<bool>()) return *v ? "true" : "false";
  if (auto v = node.value_exact<int64_t>()) return std::to_string(*v);
  if (auto v = node.value_exact<double>()) return fmt::format("{}", *v);
  if (auto v = node.value_exact<std::string>()) return *v;
  if (const auto* arr = node.as_array()) {
    std::vector<std::string> parts;
    for (const auto& e : *arr) parts.push_back(display(e));
    return join(parts, "x");
  }
  if (const auto* table = node.as_table()) return compact_table(*table);
  return "value";
}

// A typed spelling, so that 4 and "4" differ: for spotting a value listed twice.
std::string canonical(const toml::node& node) {
  if (node.is_string()) return "\"" + *node.value_exact<std::string>() + "\"";
  if (node.is_floating_point()) return "f" + display(node);
  if (const auto* arr = node.as_array()) {
    std::string out = "[";
    for (const auto& e : *arr) out += canonical(e) + ",";
    return out + "]";
  }
  if (const auto* table = node.as_table()) {
    std::string out = "{";
    for (const auto& [k, v] : *table) out += std::string(k.str()) + "=" + canonical(v) + ",";
    return out + "}";
  }
  return display(node);
}

std::string kind_of(const toml::node& node) {
  if (node.is_array()) return "a list";
  if (node.is_table()) return "a table";
  if (node.is_string()) return "a string";
  if (node.is_boolean()) return "a boolean";
  if (node.is_number()) return "a number";
  return "a date or time";
}

class SweepParser {
 public:
  SweepParser(const Locator& where, Diagnostics& diags) : where_(where), diags_(diags) {}

  Sweep parse(const toml::table& table) {
    Sweep sweep;
    sweep.region = table.source();
    generated_ = sweep.generated;
    for (const auto& [key, node] : table) {
      const std::string name(key.str());
      if (name == "seeds") {
        parse_seeds(node, key.source(), sweep);
      } else if (name == "zip") {
        parse_zip(node, key.source(), sweep);
      } else if (name == "rows") {
        parse_rows(node, key.source(), sweep);
      } else {
        std::vector<RawKey> keys;
        collect(name, node, key.source(), SweepContext::axis, keys);
        for (const auto& k : keys) add_plain_axis(k, sweep);
      }
    }
    std::sort(sweep.axes.begin(), sweep.axes.end(), [](const GridAxis& a, const GridAxis& b) {
      return std::make_pair(a.region.begin.line, a.region.begin.column) <
             std::make_pair(b.region.begin.line, b.region.begin.column);
    });
    check_conflicts(sweep);
    return sweep;
  }

 private:
  void syntax(const toml::source_region& region, const std::string& message) {
    diags_.add(where_.at(region), "config.sweep_syntax", message);
  }

  // Checks the table a dotted sweep key names; false (and a message) if it cannot be swept.
  bool check_section(const std::string& section, const std::string& key,
                     const toml::source_region& region) {
    if (section == "sweep") {
      syntax(region, fmt::format("sweep key '{}' nests a sweep; [sweep] cannot sweep itself, so "
                                 "write its axes, zip groups and rows directly under [sweep]", key));
      return false;
    }
    if (section == "experiment") {
      syntax(region, fmt::format("sweep key '{}': [experiment] (name, description) does not "
                                 "change what runs, so it cannot be swept; sweep another table",
                                 key));
      return false;
    }
    const auto tables = sweepable_sections();
    if (std::find(tables.begin(), tables.end(), section) == tables.end()) {
      std::string hint;
      if (auto near = closest_match(section, tables)) hint = fmt::format("; did you mean '{}'?", *near);
      syntax(region, fmt::format("sweep key '{}' names no table [{}]{} (tables: {})", key, section,
                                 hint, join(tables)));
      return false;
    }
    return true;
  }

  // Flattens one sweep entry into dotted keys ("patcher.stride") and whole slot tables
  // ("patcher"). `patcher.stride = ...` (TOML dotted keys) and [sweep.patcher] are the same
  // as "patcher.stride"; in a row, a slot table written inline replaces the table whole.
  void collect(const std::string& name, const toml::node& node, const toml::source_region& region,
               SweepContext ctx, std::vector<RawKey>& out) {
    const size_t dot = name.find('.');
    if (dot != std::string::npos) {
      const std::string section = name.substr(0, dot);
      const std::string key = name.substr(dot + 1);
      if (section.empty() || key.empty() || key.find('.') != std::string::npos) {
        syntax(region, fmt::format("sweep key '{}' must be <table>.<key> with one dot, e.g. "
                                   "\"patcher.stride\"", name));
        return;
      }
      if (check_section(section, name, region)) out.push_back({name, &node, region});
      return;
    }
    if (name == "sweep" || (ctx != SweepContext::axis &&
                            (name == "seeds" || name == "zip" || name == "rows"))) {
      syntax(region, fmt::format("'{}' cannot appear inside {} (no nested sweeps); write seeds, "
                                 "zip groups and rows directly under [sweep]", name,
                                 context_name(ctx)));
      return;
    }
    const auto tables = sweepable_sections();
    const bool is_table_name = std::find(tables.begin(), tables.end(), name) != tables.end();
    if (name == "experiment") {
      check_section(name, name, region);
      return;
    }
    if (is_table_name) {
      const toml::table* table = node.as_table();
      if (table != nullptr && (ctx != SweepContext::row || !table->is_inline())) {
        if (table->empty()) syntax(region, fmt::format("sweep table '{}' sets nothing; give it "
                                                       "keys or remove it", name));
        for (const auto& [k, v] : *table) collect(name + "." + std::string(k.str()), v, k.source(), ctx, out);
        return;
      }
      if (is_slot(name)) {
        out.push_back({name, &node, region});
        return;
      }
      syntax(region, fmt::format("'{}' cannot be set whole; sweep its keys as \"{}.<key>\" (only "
                                 "the slot tables dataset, patcher, masker, token_dropper and "
                                 "backbone take a table value)", name, name));
      return;
    }
    std::string hint;
    if (ctx == SweepContext::axis) {
      if (auto near = closest_match(name, {"seeds", "zip", "rows"})) {
        hint = fmt::format("; did you mean '{}'?", *near);
      }
    }
    if (hint.empty()) {
      if (auto near = closest_match(name, tables)) hint = fmt::format("; did you mean '{}.<key>'?", *near);
    }
    syntax(region, fmt::format("sweep key '{}' names no table{}; write \"<table>.<key>\", e.g. "
                               "\"patcher.stride\" = [1, 2]", name, hint));
  }

  // Whole-table values must be tables.
  bool check_value(const RawKey& k, const toml::node& value) {
    if (k.key.find('.') == std::string::npos && !value.is_table()) {
      syntax(k.region, fmt::format("'{}' set whole takes a table, e.g. {{plugin = \"fftp\", stride "
                                   "= 4}}, got {}; to change one option write \"{}.<key>\"",
                                   k.key, kind_of(value), k.key));
      return false;
    }
    return true;
  }

  // The list of values of an axis or a zip member, or nothing (and a message).
  const toml::array* values_of(const RawKey& k, const std::string& what) {
    const toml::array* list = k.value->as_array();
    if (const auto* table = k.value->as_table(); table != nullptr && k.key.find('.') != std::string::npos) {
      auto expanded = expand_shorthand(*table, k.key);
      if (!expanded.error.empty()) {
        syntax(k.region, fmt::format("{} '{}': {}", what, k.key, expanded.error));
        return nullptr;
      }
      if (expanded.values) list = &generated_->emplace_back(std::move(*expanded.values));
    }
    if (list == nullptr) {
      syntax(k.region, fmt::format("{} '{}' must be a list of values, e.g. \"{}\" = [{}, ...], got "
                                   "{}; for a single value set it in the base table", what, k.key,
                                   k.key, display(*k.value), kind_of(*k.value)));
      return nullptr;
    }
    if (list->empty()) {
      syntax(k.region, fmt::format("{} '{}' has no values; give at least one, or remove it", what,
                                   k.key));
      return nullptr;
    }
    bool ok = true;
    for (const auto& v : *list) ok = check_value(k, v) && ok;
    return ok ? list : nullptr;
  }

  Assignment assign(const RawKey& k, const toml::node& value) {
    return {k.key, &value, k.region, where_.at(k.region)};
  }

  void add_plain_axis(const RawKey& k, Sweep& sweep) {
    const toml::array* list = values_of(k, "sweep axis");
    if (list == nullptr) return;
    GridAxis axis;
    axis.what = fmt::format("axis '{}'", k.key);
    axis.region = k.region;
    std::map<std::string, size_t> seen;
    for (const auto& v : *list) {
      if (!seen.emplace(canonical(v), axis.points.size()).second) {
        diags_.add(where_.at(k.region), "config.sweep_duplicate",
                   fmt::format("sweep axis '{}' lists {} twice, which would make the same run "
                               "twice; list each value once (a list-valued option is swept as a "
                               "list of lists, e.g. [[10, 10], [4, 4]])", k.key, display(v)));
        return;
      }
      axis.points.push_back({assign(k, v)});
    }
    sweep.axes.push_back(std::move(axis));
  }

  void parse_seeds(const toml::node& node, const toml::source_region& region, Sweep& sweep) {
    const toml::array* list = node.as_array();
    bool ok = list != nullptr && !list->empty();
    if (ok) {
      for (const auto& e : *list) ok = ok && e.is_integer() && *e.value_exact<int64_t>() >= 0;
    }
    if (!ok) {
      syntax(region, "'seeds' must be a non-empty list of non-negative integers, e.g. seeds = "
                     "[0, 1, 2]; each repeats every point with that train.seed");
      return;
    }
    std::set<int64_t> seen;
    for (const auto& e : *list) {
      if (!seen.insert(*e.value_exact<int64_t>()).second) {
        diags_.add(where_.at(region), "config.sweep_duplicate",
                   fmt::format("'seeds' lists {} twice, which would make the same runs twice; list "
                               "each seed once", *e.value_exact<int64_t>()));
        return;
      }
    }
    for (const auto& e : *list) sweep.seeds.push_back(&e);
    sweep.seeds_where = where_.at(region);
  }

  void parse_zip(const toml::node& node, const toml::source_region& region, Sweep& sweep) {
    const toml::table* groups = node.as_table();
    if (groups == nullptr || groups->empty()) {
      syntax(region, "'zip' must hold named groups, written [sweep.zip.<name>] with one list per "
                     "key, e.g. [sweep.zip.geometry] \"patcher.stride\" = [2, 4]");
      return;
    }
    for (const auto& [gkey, gnode] : *groups) {
      const std::string group(gkey.str());
      const toml::table* table = gnode.as_table();
      if (table == nullptr || table->empty()) {
        syntax(gkey.source(), fmt::format("zip group '{}' must be a table of lists, written "
                                          "[sweep.zip.{}] with \"<table>.<key>\" = [values...]",
                                          group, group));
        continue;
      }
      std::vector<RawKey> keys;
      for (const auto& [k, v] : *table) collect(std::string(k.str()), v, k.source(), SweepContext::zip, keys);
      std::sort(keys.begin(), keys.end(), [](const RawKey& a, const RawKey& b) {
        return std::make_pair(a.region.begin.line, a.region.begin.column) <
               std::make_pair(b.region.begin.line, b.region.begin.column);
      });
      std::vector<const toml::array*> lists;
      bool ok = !keys.empty();
      for (const auto& k : keys) {
        lists.push_back(values_of(k, fmt::format("zip group '{}' key", group)));
        ok = ok && lists.back() != nullptr;
      }
      if (!ok) continue;
      for (size_t i = 1; i < keys.size(); ++i) {
        if (lists[i]->size() != lists[0]->size()) {
          diags_.add(where_.at(keys[i].region), "config.sweep_zip_length",
                     fmt::format("zip group '{}' pairs lists of unequal length: '{}' has {} "
                                 "value{}, '{}' has {}; give every list in a zip group the same "
                                 "number of values", group, keys[0].key, lists[0]->size(),
                                 lists[0]->size() == 1 ? "" : "s", keys[i].key, lists[i]->size()));
          ok = false;
        }
      }
      if (!ok) continue;
      GridAxis axis;
      axis.what = fmt::format("zip group '{}'", group);
      axis.region = gkey.source();
      for (size_t p = 0; p < lists[0]->size(); ++p) {
        std::vector<Assignment> point;
        for (size_t i = 0; i < keys.size(); ++i) point.push_back(assign(keys[i], *lists[i]->get(p)));
        axis.points.push_back(std::move(point));
      }
      sweep.axes.push_back(std::move(axis));
    }
  }

  void parse_rows(const toml::node& node, const toml::source_region& region, Sweep& sweep) {
    const toml::array* rows = node.as_array();
    bool ok = rows != nullptr && !rows->empty();
    if (ok) {
      for (const auto& r : *rows) ok = ok && r.is_table();
    }
    if (!ok) {
      syntax(region, "'rows' must be a list of tables, each written [[sweep.rows]] followed by "
                     "the values of that point, e.g. \"patcher.stride\" = 4");
      return;
    }
    GridAxis axis;
    axis.what = "rows";
    axis.region = region;
    for (size_t r = 0; r < rows->size(); ++r) {
      const toml::table& row = *rows->get(r)->as_table();
      std::vector<RawKey> keys;
      for (const auto& [k, v] : row) collect(std::string(k.str()), v, k.source(), SweepContext::row, keys);
      std::sort(keys.begin(), keys.end(), [](const RawKey& a, const RawKey& b) {
        return std::make_pair(a.region.begin.line, a.region.begin.column) <
               std::make_pair(b.region.begin.line, b.region.begin.column);
      });
      std::vector<Assignment> point;
      std::set<std::string> row_keys;
      for (const auto& k : keys) {
        if (!check_value(k, *k.value)) continue;
        if (!row_keys.insert(k.key).second) {
          diags_.add(where_.at(k.region), "config.sweep_conflict",
                     fmt::format("row {} sets '{}' twice; set it once", r + 1, k.key));
          continue;
        }
        point.push_back(assign(k, *k.value));
      }
      axis.points.push_back(std::move(point));
    }
    sweep.axes.push_back(std::move(axis));
  }

  // The same key swept by two axes (or twice in one group), or overridden on the command line
  // and swept in every run.
  void check_conflicts(const Sweep& sweep) {
    struct Owner {
      size_t axis;
      std::string where, what;
    };
    std::map<std::string, Owner> owners;
    const size_t seeds_axis = sweep.axes.size();
    for (size_t a = 0; a < sweep.axes.size(); ++a) {
      const auto& axis = sweep.axes[a];
      // The axis's keys: those of its first point (every point of a plain axis or zip group
      // sets the same keys), or the union over the rows (a row sets a key at most once).
      std::vector<const Assignment*> keys;
      std::map<std::string, const Assignment*> seen;
      for (size_t p = 0; p < axis.points.size(); ++p) {
        if (p > 0 && axis.what != "rows") break;
        for (const auto& as : axis.points[p]) {
          auto [it, added] = seen.emplace(as.key, &as);
          if (added) {
            keys.push_back(&as);
          } else if (p == 0 && axis.what != "rows") {
            diags_.add(as.where, "config.sweep_conflict",
                       fmt::format("'{}' is swept twice, here and at {} ({}); sweep each key in "
                                   "one place", as.key, it->second->where, axis.what));
          }
        }
      }
      for (const auto* as : keys) {
        auto it = owners.find(as->key);
        if (it == owners.end()) {
          owners[as->key] = {a, as->where, axis.what};
        } else {
          diags_.add(as->where, "config.sweep_conflict",
                     fmt::format("'{}' is swept twice, here ({}) and at {} ({}); sweep each key in "
                                 "one place (to pair values, put their lists in one "
                                 "[sweep.zip.<name>] group)", as->key, axis.what, it->second.where,
                                 it->second.what));
        }
      }
    }
    if (!sweep.seeds.empty()) {
      if (auto it = owners.find("train.seed"); it != owners.end()) {
        diags_.add(it->second.where, "config.sweep_conflict",
                   fmt::format("'train.seed' is swept twice, here and by 'seeds' at {}; use "
                               "'seeds' only", sweep.seeds_where));
      } else {
        owners["train.seed"] = {seeds_axis, sweep.seeds_where, "seeds"};
      }
    }
    // An override the sweep replaces in every run has no effect: refuse it.
    for (const auto& [dotted, text] : where_.overrides()) {
      const std::string section = dotted.substr(0, dotted.find('.'));
      for (const std::string& key : {dotted, section}) {
        auto it = owners.find(key);
        if (it == owners.end()) continue;
        const auto& owner = it->second;
        if (owner.axis < sweep.axes.size()) {
          const auto& axis = sweep.axes[owner.axis];
          bool every = true;
          for (const auto& point : axis.points) {
            bool sets = false;
            for (const auto& as : point) sets = sets || as.key == key;
            every = every && sets;
          }
          if (!every) continue;
        }
        diags_.add(text, "config.sweep_conflict",
                   key == dotted
                       ? fmt::format("'{}' is swept at {} ({}), whose values replace the override "
                                     "in every run; drop the override or that sweep key", key,
                                     owner.where, owner.what)
                       : fmt::format("'{}' is set whole by the sweep at {} ({}), which replaces the "
                                     "override in every run; drop the override or put the value "
                                     "in the sweep's tables", key, owner.where, owner.what));
        break;
      }
    }
  }

  const Locator& where_;
  Diagnostics& diags_;
  std::shared_ptr<std::deque<toml::array>> generated_;  // the Sweep's, being parsed
};

std::string sanitize(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-') {
      out += c;
    } else if (c != '+') {
      out += '-';
    }
  }
  return out;
}

std::string hex8(const std::string& text) {
  return fmt::format("{:016x}", stable_hash(text)).substr(0, 8);
}

}  // namespace

Sweep parse_sweep(const toml::table& table, const Locator& where, Diagnostics& diags) {
  return SweepParser(where, diags).parse(table);
}

std::map<std::string, std::string> slug_labels(const Sweep& sweep) {
  std::map<std::string, std::set<std::string>> by_name;
  for (const auto& axis : sweep.axes) {
    for (const auto& point : axis.points) {
      for (const auto& as : point) {
        const size_t dot = as.key.find('.');
        if (dot != std::string::npos) by_name[as.key.substr(dot + 1)].insert(as.key);
      }
    }
  }
  std::map<std::string, std::string> out;
  for (const auto& [name, keys] : by_name) {
    for (const auto& key : keys) {
      std::string label = key;
      std::replace(label.begin(), label.end(), '.', '-');
      out[key] = keys.size() == 1 ? name : label;
    }
  }
  return out;
}

std::string make_slug(const std::vector<Assignment>& point, const toml::node* seed,
                      const std::map<std::string, std::string>& labels, bool has_rows) {
  std::vector<std::string> parts;
  for (const auto& as : point) {
    const size_t dot = as.key.find('.');
    if (dot == std::string::npos || as.key.substr(dot + 1) == kSlotPlugin) {
      parts.push_back(sanitize(display(*as.value)));  // a table, or a plugin name: the value alone
    } else {
      parts.push_back(sanitize(labels.at(as.key) + display(*as.value)));
    }
  }
  std::string body = join(parts, "_");
  if (body.empty() && has_rows) body = "base";  // an empty row: the base point
  const std::string suffix = seed ? "s" + display(*seed) : "";
  if (body.empty()) return suffix.empty() ? "base" : suffix;
  const std::string tail = suffix.empty() ? "" : "_" + suffix;
  if (body.size() + tail.size() > kMaxSlug) {
    body = body.substr(0, kMaxSlug - tail.size() - 9) + "-" + hex8(body);
  }
  return body + tail;
}

OptionValue axis_value(const Assignment& as) {
  if (as.value->is_table()) return OptionValue{display(*as.value)};
  auto v = to_option_value(*as.value);
  if (auto* ok = std::get_if<OptionValue>(&v)) return *ok;
  return OptionValue{display(*as.value)};
}

}  // namespace patchbay::config_internal

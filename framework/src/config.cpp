#include "patchbay/config.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <tuple>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "patchbay/error.hpp"
#include "patchbay/hash.hpp"
#include "text_util.hpp"

namespace fs = std::filesystem;

namespace patchbay {
namespace {

constexpr const char* kSlotPlugin = "plugin";

struct Diagnostic {
  std::string where;
  std::string id;
  std::string message;
};

// Collects every problem so the user fixes them in one pass, then throws them together.
class Diagnostics {
 public:
  explicit Diagnostics(std::string source) : source_(std::move(source)) {}

  const std::string& source() const { return source_; }

  void add(std::string where, std::string id, std::string message) {
    items_.push_back({std::move(where), std::move(id), std::move(message)});
  }

  const std::vector<Diagnostic>& items() const { return items_; }
  bool empty() const { return items_.empty(); }

  void throw_if_any() const {
    if (items_.empty()) return;
    std::string text;
    for (size_t i = 0; i < items_.size(); ++i) {
      text += (i ? "\n" : "") + items_[i].where + ": " + items_[i].message;
      if (i) text += " [" + items_[i].id + "]";
    }
    throw ConfigError(items_.front().id, text);
  }

 private:
  std::string source_;
  std::vector<Diagnostic> items_;
};

// Where a value came from: the sweep key that set it, the command line (for overridden
// keys) or the file's line and column.
class Locator {
 public:
  explicit Locator(std::string source) : source_(std::move(source)) {}

  void mark_override(const std::string& dotted, const std::string& text) {
    overrides_[dotted] = "command line '" + text + "'";
  }
  // A value set by a sweep key: reported at that key ("FILE:LINE:COL").
  void mark_sweep(const std::string& dotted, const std::string& where) { sweep_[dotted] = where; }
  // A table replaced whole by a sweep value: overrides of its keys no longer apply, and its
  // keys are reported where the sweep wrote them.
  void replace_section(const std::string& section) { replaced_.insert(section); }

  std::string at(const std::string& dotted, const toml::source_region& region) const {
    if (auto it = sweep_.find(dotted); it != sweep_.end()) return it->second;
    if (!replaced_.count(dotted.substr(0, dotted.find('.')))) {
      if (auto it = overrides_.find(dotted); it != overrides_.end()) return it->second;
    }
    return at(region);
  }
  std::string at(const toml::source_region& region) const {
    if (region.begin.line == 0) return source_;
    return fmt::format("{}:{}:{}", source_, region.begin.line, region.begin.column);
  }
  const std::string& file() const { return source_; }
  const std::map<std::string, std::string>& overrides() const { return overrides_; }

 private:
  std::string source_;
  std::map<std::string, std::string> overrides_;
  std::map<std::string, std::string> sweep_;
  std::set<std::string> replaced_;
};

// A table as the resolver sees it: the base file's nodes, with a point's sweep values laid
// over them. Only pointers into the parsed documents, whose nodes keep their source
// positions (toml++ drops positions when a node is copied).
struct Entry {
  const toml::node* node = nullptr;
  toml::source_region key_region;
};

struct TableView {
  bool present = false;
  toml::source_region region;
  std::map<std::string, Entry> entries;  // sorted by key, as toml::table iterates

  const toml::node* get(const std::string& name) const {
    auto it = entries.find(name);
    return it == entries.end() ? nullptr : it->second.node;
  }
};

TableView view_of(const toml::table* table) {
  TableView view;
  if (table == nullptr) return view;
  view.present = true;
  view.region = table->source();
  for (const auto& [key, node] : *table) view.entries[std::string(key.str())] = {&node, key.source()};
  return view;
}

using Views = std::map<std::string, TableView>;  // section -> table

// TOML node -> OptionValue, or a description of why it cannot be one.
std::variant<OptionValue, std::string> to_option_value(const toml::node& node) {
  if (auto v = node.value_exact<bool>()) return OptionValue{*v};
  if (auto v = node.value_exact<int64_t>()) return OptionValue{*v};
  if (auto v = node.value_exact<double>()) return OptionValue{*v};
  if (auto v = node.value_exact<std::string>()) return OptionValue{*v};
  if (const auto* arr = node.as_array()) {
    bool all_int = true, all_number = true, all_string = true;
    for (const auto& e : *arr) {
      all_int = all_int && e.is_integer();
      all_number = all_number && e.is_number();
      all_string = all_string && e.is_string();
    }
    if (all_int) {
      std::vector<int64_t> out;
      for (const auto& e : *arr) out.push_back(*e.value_exact<int64_t>());
      return OptionValue{out};
    }
    if (all_number) {
      std::vector<double> out;
      for (const auto& e : *arr) out.push_back(*e.value<double>());
      return OptionValue{out};
    }
    if (all_string) {
      std::vector<std::string> out;
      for (const auto& e : *arr) out.push_back(*e.value_exact<std::string>());
      return OptionValue{out};
    }
    return std::string("a list mixing types");
  }
  if (node.is_table()) return std::string("a table");
  return std::string("a date or time");
}

std::string classify(const std::string& check_message) {
  if (check_message.rfind("expects", 0) == 0) return "config.wrong_type";
  if (check_message.rfind("must be one of", 0) == 0) return "config.bad_choice";
  return "config.out_of_range";
}

// Validates the keys of one table against a schema; `skip` lists keys handled elsewhere.
Options resolve_table(const TableView& table, const std::string& section, const OptionSchema& schema,
                      const std::string& subject, const Locator& where, Diagnostics& diags,
                      const std::set<std::string>& skip = {}) {
  Options out = Options::defaults(schema);
  if (table.present) {
    for (const auto& [name, entry] : table.entries) {
      const toml::node& node = *entry.node;
      if (skip.count(name)) continue;
      const std::string dotted = section + "." + name;
      const OptionSpec* spec = schema.find(name);
      if (spec == nullptr) {
        std::vector<std::string> names;
        for (const auto& s : schema.specs()) names.push_back(s.name);
        std::string hint;
        if (auto near = schema.closest(name)) hint = fmt::format("; did you mean '{}'?", *near);
        diags.add(where.at(dotted, entry.key_region), "config.unknown_key",
                  fmt::format("{} has no option '{}'{} (options: {})", subject, name, hint,
                              names.empty() ? "(none)" : join(names)));
        continue;
      }
      auto value = to_option_value(node);
      if (auto* err = std::get_if<std::string>(&value)) {
        diags.add(where.at(dotted, node.source()), "config.wrong_type",
                  fmt::format("{} option '{}' expects {}, got {}", subject, name,
                              describe(spec->type), *err));
        continue;
      }
      auto checked = schema.check(*spec, std::get<OptionValue>(value));
      if (auto* err = std::get_if<std::string>(&checked)) {
        diags.add(where.at(dotted, node.source()), classify(*err),
                  fmt::format("{} option '{}' {}", subject, name, *err));
        continue;
      }
      out.set(name, std::get<OptionValue>(checked));
    }
  }
  for (const auto& spec : schema.specs()) {
    if (!out.contains(spec.name)) {
      diags.add(table.present ? where.at(section, table.region) : where.file(), "config.missing_value",
                fmt::format("{} option '{}' ({}) has no default; set it in [{}] or on the command "
                            "line as {}.{}=...", subject, spec.name, spec.help, section, section,
                            spec.name));
    }
  }
  return out;
}

SlotConfig resolve_slot(const TableView& view, const std::string& section, PluginKind kind,
                        const Registry& registry, const Locator& where, Diagnostics& diags) {
  SlotConfig slot;
  const TableView* table = view.present ? &view : nullptr;
  const auto available = registry.names(kind);
  const std::string listing = fmt::format("available {}: {}", plural(kind),
                                          available.empty() ? "(none)" : join(available));
  const toml::node* plugin_node = table ? table->get(kSlotPlugin) : nullptr;
  if (plugin_node == nullptr) {
    // A run without a masker is normal (evaluation never masks; training may not either).
    if (kind == PluginKind::masker && registry.find(kind, "none") != nullptr) {
      slot.plugin = "none";
    } else if (table == nullptr) {
      diags.add(where.file(), "config.missing_plugin",
                fmt::format("[{}] is missing; add a [{}] table with plugin = \"<name>\" ({})",
                            section, section, listing));
      return slot;
    } else {
      diags.add(where.at(section, table->region), "config.missing_plugin",
                fmt::format("[{}] has no 'plugin' key; add plugin = \"<name>\" ({})", section, listing));
      return slot;
    }
  } else if (auto name = plugin_node->value_exact<std::string>()) {
    slot.plugin = *name;
  } else {
    auto value = to_option_value(*plugin_node);
    const std::string got = std::holds_alternative<OptionValue>(value)
                                ? to_toml(std::get<OptionValue>(value))
                                : std::get<std::string>(value);
    diags.add(where.at(section + ".plugin", plugin_node->source()), "config.wrong_type",
              fmt::format("[{}] plugin expects a string naming a {}, got {} ({})", section,
                          to_string(kind), got, listing));
    return slot;
  }
  const RegistryEntry* entry = registry.find(kind, slot.plugin);
  if (entry == nullptr) {
    try {
      registry.get(kind, slot.plugin);
    } catch (const ConfigError& e) {
      diags.add(plugin_node ? where.at(section + ".plugin", plugin_node->source()) : where.file(),
                e.id(), e.what());
    }
    return slot;
  }
  slot.plugin_version = entry->origin.version;
  slot.options = resolve_table(view, section, entry->description.options,
                               fmt::format("{} '{}'", to_string(kind), slot.plugin), where, diags,
                               {kSlotPlugin});
  return slot;
}

void apply_overrides(toml::table& doc, const std::vector<std::string>& overrides, Locator& where,
                     Diagnostics& diags) {
  std::vector<std::string> sections(std::begin(kSections), std::end(kSections));
  for (const auto& text : overrides) {
    const std::string loc = "command line '" + text + "'";
    const size_t eq = text.find('=');
    if (eq == std::string::npos || eq == 0) {
      diags.add(loc, "config.bad_override",
                "an override must be <table>.<key>=<value>, e.g. patcher.stride=4");
      continue;
    }
    const std::string key = text.substr(0, eq);
    const std::string value_text = text.substr(eq + 1);
    const size_t dot = key.find('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == key.size() ||
        key.find('.', dot + 1) != std::string::npos) {
      diags.add(loc, "config.bad_override",
                fmt::format("'{}' must name a table and a key, <table>.<key>=<value>, e.g. "
                            "patcher.stride=4", key));
      continue;
    }
    const std::string section = key.substr(0, dot);
    const std::string name = key.substr(dot + 1);
    if (std::find(sections.begin(), sections.end(), section) == sections.end() || section == "sweep") {
      std::string hint;
      if (auto near = closest_match(section, sections)) hint = fmt::format("; did you mean '{}'?", *near);
      diags.add(loc, "config.bad_override",
                fmt::format("there is no table [{}] to override{} (tables: experiment, dataset, "
                            "frontend, patcher, masker, backbone, train)", section, hint));
      continue;
    }
    // The value is read as TOML (4, 0.5, true, [1, 2], "x"); anything else is a string, so
    // paths and names need no quoting on the command line.
    std::optional<toml::table> parsed;
    try {
      parsed = toml::parse("v = " + value_text);
    } catch (const toml::parse_error&) {
      parsed.reset();
    }
    toml::table* target = doc.get_as<toml::table>(section);
    if (target == nullptr) {
      if (doc.contains(section)) {
        diags.add(loc, "config.bad_override", fmt::format("'{}' in the file is not a table", section));
        continue;
      }
      doc.insert_or_assign(section, toml::table{});
      target = doc.get_as<toml::table>(section);
    }
    if (parsed && parsed->contains("v") && parsed->size() == 1) {
      target->insert_or_assign(name, *parsed->get("v"));
    } else {
      target->insert_or_assign(name, value_text);
    }
    where.mark_override(key, text);
  }
}

// ---------------------------------------------------------------------------------------
// [sweep]: parsing into grid axes, expansion into points, slugs.

constexpr const char* kSlots[] = {"dataset", "patcher", "masker", "backbone"};
constexpr size_t kMaxRuns = 100000;
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
                                 "the slot tables dataset, patcher, masker and backbone take a "
                                 "table value)", name, name));
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
};

// Slug labels: the option name, or "table-key" where two swept keys share an option name.
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

// The problems of every point, each reported once: a problem that only some runs have
// names them ("run 'stride0': ..."), one that every run shares is reported as for one file.
void merge_point_diagnostics(const std::vector<Diagnostics>& per_run,
                             const std::vector<std::string>& slugs, Diagnostics& diags) {
  struct Merged {
    Diagnostic d;
    std::vector<size_t> runs;
  };
  std::vector<Merged> merged;
  std::map<std::tuple<std::string, std::string, std::string>, size_t> index;
  for (size_t r = 0; r < per_run.size(); ++r) {
    for (const auto& d : per_run[r].items()) {
      auto [it, added] = index.emplace(std::make_tuple(d.where, d.id, d.message), merged.size());
      if (added) merged.push_back({d, {}});
      auto& runs = merged[it->second].runs;
      if (runs.empty() || runs.back() != r) runs.push_back(r);
    }
  }
  for (auto& m : merged) {
    std::string message = m.d.message;
    if (per_run.size() > 1 && m.runs.size() < per_run.size()) {
      std::vector<std::string> names;
      for (size_t i = 0; i < m.runs.size() && i < 3; ++i) names.push_back("'" + slugs[m.runs[i]] + "'");
      std::string label = (m.runs.size() == 1 ? "run " : "runs ") + join(names);
      if (m.runs.size() > 3) label += fmt::format(" and {} more", m.runs.size() - 3);
      message = label + ": " + message;
    }
    diags.add(m.d.where, m.d.id, message);
  }
}

// train.device: every tensor of a run lives on the CPU in this version, so any other device
// is refused here rather than accepted and trained on the CPU.
void check_device(const Options& train, const TableView& view, const Locator& where, Diagnostics& diags) {
  const std::string& device = train.get_string("device");
  if (device == "cpu") return;
  const toml::node* node = view.get("device");
  diags.add(node ? where.at("train.device", node->source()) : where.file(), "config.unsupported_device",
            fmt::format("train.device = \"{}\" is not supported: this build of patchbay trains on the "
                        "CPU only (\"cpu\"); remove the option or set train.device = \"cpu\"", device));
}

ResolvedConfig resolve_point(const Views& views, const Registry& registry, const Locator& where,
                             Diagnostics& diags) {
  ResolvedConfig cfg;
  cfg.experiment = resolve_table(views.at("experiment"), "experiment", experiment_schema(),
                                 "[experiment]", where, diags);
  cfg.frontend = resolve_table(views.at("frontend"), "frontend", frontend_schema(), "[frontend]",
                               where, diags);
  cfg.train = resolve_table(views.at("train"), "train", train_schema(), "[train]", where, diags);
  check_device(cfg.train, views.at("train"), where, diags);
  cfg.dataset = resolve_slot(views.at("dataset"), "dataset", PluginKind::dataset, registry, where, diags);
  cfg.patcher = resolve_slot(views.at("patcher"), "patcher", PluginKind::patcher, registry, where, diags);
  cfg.masker = resolve_slot(views.at("masker"), "masker", PluginKind::masker, registry, where, diags);
  cfg.backbone = resolve_slot(views.at("backbone"), "backbone", PluginKind::backbone, registry,
                              where, diags);
  return cfg;
}

// The base views with one point's values laid over them: whole tables first, then options.
void apply_point(const std::vector<Assignment>& point, Views& views, Locator& where) {
  for (const auto& as : point) {
    if (as.key.find('.') != std::string::npos) continue;
    views[as.key] = view_of(as.value->as_table());
    where.replace_section(as.key);
  }
  for (const auto& as : point) {
    const size_t dot = as.key.find('.');
    if (dot == std::string::npos) continue;
    const std::string section = as.key.substr(0, dot);
    TableView& view = views[section];
    if (!view.present) {
      view.present = true;
      where.mark_sweep(section, as.where);
    }
    view.entries[as.key.substr(dot + 1)] = {as.value, as.key_region};
    where.mark_sweep(as.key, as.where);
  }
}

// Options that decide how fast a run goes, not what it computes: left out of run identity,
// so `train.threads=1` on the command line finds the same runs.
bool execution_only(const char* section, const std::string& key) {
  return (std::string(section) == "train" && (key == "threads" || key == "loader_threads" ||
                                              key == "checkpoint_every_s")) ||
         (std::string(section) == "frontend" && key == "cache_dir");
}

void write_table(std::string& out, const char* section, const Options& options,
                 const SlotConfig* slot, bool identity = false) {
  out += fmt::format("[{}]\n", section);
  if (slot) {
    out += fmt::format("plugin = {}\n", to_toml(OptionValue{slot->plugin}));
    out += fmt::format("plugin_version = {}\n", to_toml(OptionValue{slot->plugin_version}));
  }
  for (const auto& [k, v] : options.values()) {
    if (identity && execution_only(section, k)) continue;
    // Added after runs existed: unset, it leaves their ids as they were.
    if (identity && std::string(section) == "train" && k == "init_weights" &&
        v == OptionValue{std::string()}) {
      continue;
    }
    if (identity && std::string(section) == "backbone" && (k == kMatchPaperMacs || k == kMatchBy) &&
        options.contains(kMatchPaperMacs) && options.at(kMatchPaperMacs) == OptionValue{int64_t{0}}) {
      continue;
    }
    out += fmt::format("{} = {}\n", k, to_toml(v));
  }
}

// with_experiment = false gives the identity text: no [experiment], no execution-only keys.
std::string resolved_text(const ResolvedConfig& c, bool with_experiment) {
  const bool identity = !with_experiment;
  std::string out;
  const auto sep = [&] {
    if (!out.empty()) out += "\n";
  };
  if (with_experiment) write_table(out, "experiment", c.experiment, nullptr);
  sep();
  write_table(out, "dataset", c.dataset.options, &c.dataset, identity);
  sep();
  write_table(out, "frontend", c.frontend, nullptr, identity);
  sep();
  write_table(out, "patcher", c.patcher.options, &c.patcher, identity);
  sep();
  write_table(out, "masker", c.masker.options, &c.masker, identity);
  sep();
  write_table(out, "backbone", c.backbone.options, &c.backbone, identity);
  sep();
  write_table(out, "train", c.train, nullptr, identity);
  return out;
}

}  // namespace

std::string ResolvedConfig::to_toml() const { return resolved_text(*this, true); }

std::string ResolvedConfig::identity_text() const { return resolved_text(*this, false); }

std::string ResolvedConfig::hash() const {
  // [experiment] (name, description) does not change what runs, so it is not hashed:
  // renaming a study keeps its run ids; nor do thread counts and the cache folder.
  return fmt::format("{:016x}", stable_hash(resolved_text(*this, false))).substr(0, 8);
}

Experiment load_experiment_text(const std::string& text, const std::string& source_name,
                                const std::vector<std::string>& overrides, const Registry& registry) {
  toml::table doc;
  try {
    doc = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    throw ConfigError("config.syntax",
                      fmt::format("{}:{}:{}: {}; fix the TOML syntax (strings in quotes, tables "
                                  "as [name], one key = value per line)",
                                  source_name, e.source().begin.line, e.source().begin.column,
                                  e.description()));
  }
  Diagnostics diags(source_name);
  Locator where(source_name);
  apply_overrides(doc, overrides, where, diags);

  std::vector<std::string> sections(std::begin(kSections), std::end(kSections));
  for (const auto& [key, node] : doc) {
    const std::string name(key.str());
    if (std::find(sections.begin(), sections.end(), name) == sections.end()) {
      std::string hint;
      if (auto near = closest_match(name, sections)) hint = fmt::format("; did you mean [{}]?", *near);
      diags.add(where.at(name, node.source()), "config.unknown_section",
                fmt::format("unknown table [{}]{} (tables: {})", name, hint, join(sections)));
    } else if (!node.is_table()) {
      diags.add(where.at(name, node.source()), "config.wrong_type",
                fmt::format("'{}' must be a table, written [{}] on its own line", name, name));
    }
  }

  // The sweep's structure first: points cannot be expanded from a malformed [sweep].
  Sweep sweep;
  if (const toml::table* table = doc.get_as<toml::table>("sweep")) {
    const size_t before = diags.items().size();
    sweep = SweepParser(where, diags).parse(*table);
    if (diags.items().size() != before) diags.throw_if_any();
  }

  // The grid: every combination of the axes' points, in file order, the last axis fastest.
  size_t grid_size = 1;
  for (const auto& axis : sweep.axes) {
    grid_size *= axis.points.size();
    if (grid_size > kMaxRuns) break;
  }
  const size_t seed_count = std::max<size_t>(1, sweep.seeds.size());
  if (grid_size > kMaxRuns || grid_size * seed_count > kMaxRuns) {
    throw ConfigError("config.sweep_syntax",
                      fmt::format("{}: [sweep] expands to more than {} runs; sweep fewer values, or "
                                  "pair them in [sweep.zip.<name>] groups instead of a grid",
                                  where.at(sweep.region), kMaxRuns));
  }
  std::vector<std::vector<Assignment>> grid;
  std::vector<size_t> at(sweep.axes.size(), 0);
  for (size_t g = 0; g < grid_size; ++g) {
    std::vector<Assignment> point;
    for (size_t a = 0; a < sweep.axes.size(); ++a) {
      const auto& values = sweep.axes[a].points[at[a]];
      point.insert(point.end(), values.begin(), values.end());
    }
    grid.push_back(std::move(point));
    for (size_t a = sweep.axes.size(); a-- > 0;) {
      if (++at[a] < sweep.axes[a].points.size()) break;
      at[a] = 0;
    }
  }

  // Every axis key in order (grid axes in file order, train.seed last), for run.axes and
  // Experiment::axes.
  std::vector<std::string> axis_keys;
  for (const auto& axis : sweep.axes) {
    for (const auto& point : axis.points) {
      for (const auto& as : point) {
        if (std::find(axis_keys.begin(), axis_keys.end(), as.key) == axis_keys.end()) {
          axis_keys.push_back(as.key);
        }
      }
    }
  }
  if (!sweep.seeds.empty()) axis_keys.push_back("train.seed");
  const auto labels = slug_labels(sweep);
  const bool has_rows = std::any_of(sweep.axes.begin(), sweep.axes.end(),
                                    [](const GridAxis& a) { return a.what == "rows"; });

  Views base;
  for (const char* s : kSections) {
    if (std::string(s) != "sweep") base[s] = view_of(doc.get_as<toml::table>(s));
  }

  // Seeds outermost: a first complete pass over every point exists before any repeats.
  const size_t run_count = grid.size() * seed_count;
  std::vector<Diagnostics> run_diags;
  std::vector<PlannedRun> runs(run_count);
  std::vector<std::string> slugs;
  run_diags.reserve(run_count);
  for (size_t s = 0; s < seed_count; ++s) {
    const toml::node* seed = sweep.seeds.empty() ? nullptr : sweep.seeds[s];
    for (size_t g = 0; g < grid.size(); ++g) {
      PlannedRun& run = runs[s * grid.size() + g];
      std::vector<Assignment> point = grid[g];
      run.slug = make_slug(point, seed, labels, has_rows);
      if (seed) point.push_back({"train.seed", seed, sweep.seeds[s]->source(), sweep.seeds_where});
      for (const auto& key : axis_keys) {
        for (const auto& as : point) {
          if (as.key == key) run.axes.emplace_back(key, axis_value(as));
        }
      }
      Views views = base;
      Locator point_where = where;
      apply_point(point, views, point_where);
      run_diags.emplace_back(source_name);
      run.config = resolve_point(views, registry, point_where, run_diags.back());
      slugs.push_back(run.slug);
    }
  }
  merge_point_diagnostics(run_diags, slugs, diags);

  // Two points that run the same configuration are a mistake in the sweep. Seeds differ in
  // train.seed, so comparing the first pass (seed index 0) finds every pair once.
  std::map<std::string, size_t> seen;
  for (size_t r = 0; r < grid.size(); ++r) {
    if (!run_diags[r].empty()) continue;
    auto [it, added] = seen.emplace(resolved_text(runs[r].config, false), r);
    if (!added) {
      diags.add(where.at(sweep.region), "config.sweep_duplicate",
                fmt::format("runs '{}' and '{}' resolve to the same configuration; remove one of "
                            "the values or rows that make them (a swept value equal to the base "
                            "value or to a default changes nothing)",
                            runs[it->second].slug, runs[r].slug));
    }
  }
  diags.throw_if_any();

  Experiment exp;
  exp.file = source_name;
  exp.text = text;
  exp.overrides = overrides;
  exp.name = runs.front().config.experiment.get_string("name");
  if (exp.name.empty()) exp.name = fs::path(source_name).stem().string();

  // Slugs are unique within an experiment: two points whose values read the same (say
  // "a/b" and "a_b") get their configuration's hash appended.
  std::map<std::string, size_t> slug_count;
  for (const auto& run : runs) ++slug_count[run.slug];
  for (auto& run : runs) {
    run.config.experiment.set("name", exp.name);
    if (slug_count[run.slug] > 1) run.slug += "-" + run.config.hash();
    run.id = run.config.hash() + "-" + run.slug;
  }
  for (const auto& key : axis_keys) {
    SweepAxis axis{key, {}};
    for (const auto& run : runs) {
      for (const auto& [k, v] : run.axes) {
        if (k == key && std::find(axis.values.begin(), axis.values.end(), v) == axis.values.end()) {
          axis.values.push_back(v);
        }
      }
    }
    exp.axes.push_back(std::move(axis));
  }
  exp.runs = std::move(runs);
  return exp;
}

Experiment load_experiment(const fs::path& file, const std::vector<std::string>& overrides,
                           const Registry& registry) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw ConfigError("config.not_found",
                      fmt::format("cannot read experiment file '{}'; check the path (examples are "
                                  "in experiments/)", file.string()));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return load_experiment_text(text.str(), file.string(), overrides, registry);
}

}  // namespace patchbay

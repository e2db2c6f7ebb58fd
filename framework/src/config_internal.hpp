// The configuration resolver's internals, shared by config.cpp (experiments, points),
// config_tables.cpp (one table against a schema, overrides) and sweep_grammar.cpp ([sweep]).
// Not installed, not for plugins.
#pragma once
#include <map>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "patchbay/config.hpp"
#include "patchbay/error.hpp"

namespace patchbay::config_internal {

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

inline TableView view_of(const toml::table* table) {
  TableView view;
  if (table == nullptr) return view;
  view.present = true;
  view.region = table->source();
  for (const auto& [key, node] : *table) view.entries[std::string(key.str())] = {&node, key.source()};
  return view;
}

using Views = std::map<std::string, TableView>;  // section -> table

// TOML node -> OptionValue, or a description of why it cannot be one.
std::variant<OptionValue, std::string> to_option_value(const toml::node& node);

// Validates the keys of one table against a schema; `skip` lists keys handled elsewhere.
Options resolve_table(const TableView& table, const std::string& section, const OptionSchema& schema,
                      const std::string& subject, const Locator& where, Diagnostics& diags,
                      const std::set<std::string>& skip = {});

// A slot table ([dataset], [patcher], ...): its plugin and that plugin's options.
SlotConfig resolve_slot(const TableView& view, const std::string& section, PluginKind kind,
                        const Registry& registry, const Locator& where, Diagnostics& diags);

// Applies "section.key=value" overrides to the parsed file, marking where each came from.
void apply_overrides(toml::table& doc, const std::vector<std::string>& overrides, Locator& where,
                     Diagnostics& diags);

}  // namespace patchbay::config_internal

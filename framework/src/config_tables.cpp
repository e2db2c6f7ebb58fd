// One table of an experiment against a schema (resolve_table, resolve_slot) and the
// command line's key=value overrides (apply_overrides); contracts in config_internal.hpp.
#include "config_internal.hpp"

#include <algorithm>
#include <sstream>

#include "patchbay/registry.hpp"
#include "text_util.hpp"

namespace patchbay::config_internal {
namespace {

std::string classify(const std::string& check_message) {
  if (check_message.rfind("expects", 0) == 0) return "config.wrong_type";
  if (check_message.rfind("must be one of", 0) == 0) return "config.bad_choice";
  return "config.out_of_range";
}

}  // namespace


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


Options resolve_table(const TableView& table, const std::string& section, const OptionSchema& schema,
                      const std::string& subject, const Locator& where, Diagnostics& diags,
                      const std::set<std::string>& skip) {
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
    // A run without a masker or token dropper is normal (evaluation never masks; training
    // may not either).
    if ((kind == PluginKind::masker || kind == PluginKind::token_dropper) &&
        registry.find(kind, "none") != nullptr) {
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
    if (section == "sweep") {  // the plan is the file's: an override sets one value of every run
      diags.add(loc, "config.bad_override",
                fmt::format("'{}': the [sweep] cannot be overridden from the command line; edit it in the "
                            "experiment file",
                            key));
      continue;
    }
    if (std::find(sections.begin(), sections.end(), section) == sections.end()) {
      std::string hint;
      if (auto near = closest_match(section, sections)) hint = fmt::format("; did you mean '{}'?", *near);
      diags.add(loc, "config.bad_override",
                fmt::format("there is no table [{}] to override{} (tables: experiment, dataset, "
                            "frontend, patcher, masker, token_dropper, backbone, train)", section, hint));
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


}  // namespace patchbay::config_internal

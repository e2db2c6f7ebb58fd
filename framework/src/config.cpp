#include "patchbay/config.hpp"

#include <fstream>
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

// Where a value came from: the command line (for overridden keys) or the file's line and
// column.
class Locator {
 public:
  explicit Locator(std::string source) : source_(std::move(source)) {}

  void mark_override(const std::string& dotted, const std::string& text) {
    overrides_[dotted] = "command line '" + text + "'";
  }

  std::string at(const std::string& dotted, const toml::source_region& region) const {
    if (auto it = overrides_.find(dotted); it != overrides_.end()) return it->second;
    if (region.begin.line == 0) return source_;
    return fmt::format("{}:{}:{}", source_, region.begin.line, region.begin.column);
  }
  const std::string& file() const { return source_; }

 private:
  std::string source_;
  std::map<std::string, std::string> overrides_;
};

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
Options resolve_table(const toml::table* table, const std::string& section, const OptionSchema& schema,
                      const std::string& subject, const Locator& where, Diagnostics& diags,
                      const std::set<std::string>& skip = {}) {
  Options out = Options::defaults(schema);
  if (table != nullptr) {
    for (const auto& [key, node] : *table) {
      const std::string name(key.str());
      if (skip.count(name)) continue;
      const std::string dotted = section + "." + name;
      const OptionSpec* spec = schema.find(name);
      if (spec == nullptr) {
        std::vector<std::string> names;
        for (const auto& s : schema.specs()) names.push_back(s.name);
        std::string hint;
        if (auto near = schema.closest(name)) hint = fmt::format("; did you mean '{}'?", *near);
        diags.add(where.at(dotted, key.source()), "config.unknown_key",
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
      diags.add(table ? where.at(section, table->source()) : where.file(), "config.missing_value",
                fmt::format("{} option '{}' ({}) has no default; set it in [{}] or on the command "
                            "line as {}.{}=...", subject, spec.name, spec.help, section, section,
                            spec.name));
    }
  }
  return out;
}

SlotConfig resolve_slot(const toml::table& doc, const std::string& section, PluginKind kind,
                        const Registry& registry, const Locator& where, Diagnostics& diags) {
  SlotConfig slot;
  const toml::table* table = doc.get_as<toml::table>(section);
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
      diags.add(where.at(section, table->source()), "config.missing_plugin",
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
  slot.options = resolve_table(table, section, entry->description.options,
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

void write_table(std::string& out, const char* section, const Options& options,
                 const SlotConfig* slot) {
  out += fmt::format("[{}]\n", section);
  if (slot) {
    out += fmt::format("plugin = {}\n", to_toml(OptionValue{slot->plugin}));
    out += fmt::format("plugin_version = {}\n", to_toml(OptionValue{slot->plugin_version}));
  }
  for (const auto& [k, v] : options.values()) out += fmt::format("{} = {}\n", k, to_toml(v));
}

std::string resolved_text(const ResolvedConfig& c, bool with_experiment) {
  std::string out;
  const auto sep = [&] {
    if (!out.empty()) out += "\n";
  };
  if (with_experiment) write_table(out, "experiment", c.experiment, nullptr);
  sep();
  write_table(out, "dataset", c.dataset.options, &c.dataset);
  sep();
  write_table(out, "frontend", c.frontend, nullptr);
  sep();
  write_table(out, "patcher", c.patcher.options, &c.patcher);
  sep();
  write_table(out, "masker", c.masker.options, &c.masker);
  sep();
  write_table(out, "backbone", c.backbone.options, &c.backbone);
  sep();
  write_table(out, "train", c.train, nullptr);
  return out;
}

}  // namespace

std::string ResolvedConfig::to_toml() const { return resolved_text(*this, true); }

std::string ResolvedConfig::hash() const {
  // [experiment] (name, description) does not change what runs, so it is not hashed:
  // renaming a study keeps its run ids.
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
    } else if (name == "sweep") {
      diags.add(where.at(name, node.source()), "config.sweep_unsupported",
                "this patchbay cannot expand [sweep] yet (the sweep engine is a later issue); "
                "remove [sweep] and set one value per option, or use key=value overrides");
    }
  }

  ResolvedConfig cfg;
  const auto table = [&](const char* s) { return doc.get_as<toml::table>(s); };
  cfg.experiment = resolve_table(table("experiment"), "experiment", experiment_schema(),
                                 "[experiment]", where, diags);
  cfg.frontend = resolve_table(table("frontend"), "frontend", frontend_schema(), "[frontend]", where, diags);
  cfg.train = resolve_table(table("train"), "train", train_schema(), "[train]", where, diags);
  cfg.dataset = resolve_slot(doc, "dataset", PluginKind::dataset, registry, where, diags);
  cfg.patcher = resolve_slot(doc, "patcher", PluginKind::patcher, registry, where, diags);
  cfg.masker = resolve_slot(doc, "masker", PluginKind::masker, registry, where, diags);
  cfg.backbone = resolve_slot(doc, "backbone", PluginKind::backbone, registry, where, diags);
  diags.throw_if_any();

  Experiment exp;
  exp.file = source_name;
  exp.text = text;
  exp.overrides = overrides;
  exp.name = cfg.experiment.get_string("name");
  if (exp.name.empty()) exp.name = fs::path(source_name).stem().string();
  cfg.experiment.set("name", exp.name);

  PlannedRun run;
  run.slug = "base";
  run.id = cfg.hash() + "-" + run.slug;
  run.config = std::move(cfg);
  exp.runs.push_back(std::move(run));
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

// patchbay plugins: every plugin found, with its kind, version, file and options, and the
// options of the framework's own tables ([experiment], [frontend], [train]).
#include "cli_common.hpp"
#include "commands.hpp"
#include "option_json.hpp"

#include <iostream>

#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "patchbay/config.hpp"
#include "patchbay/error.hpp"
#include "patchbay/version.hpp"

namespace po = boost::program_options;
using nlohmann::json;

namespace patchbay::cli {
namespace {

const char* type_name(OptionType t) {
  switch (t) {
    case OptionType::boolean: return "bool";
    case OptionType::integer: return "int";
    case OptionType::real: return "float";
    case OptionType::string: return "string";
    case OptionType::integer_list: return "int list";
    case OptionType::real_list: return "float list";
    case OptionType::string_list: return "string list";
    case OptionType::integer_pair: return "int pair";
  }
  return "?";
}

std::string describe_constraint(const OptionSpec& s) {
  if (!s.choices.empty()) {
    std::string out = "one of:";
    for (const auto& c : s.choices) out += " " + c;
    return out;
  }
  if (s.range.min && s.range.max) return fmt::format("{} .. {}", *s.range.min, *s.range.max);
  if (s.range.min) return fmt::format(">= {}", *s.range.min);
  if (s.range.max) return fmt::format("<= {}", *s.range.max);
  return "";
}

json schema_json(const OptionSchema& schema) {
  json options = json::array();
  for (const auto& s : schema.specs()) {
    json o = {{"name", s.name}, {"type", type_name(s.type)}, {"help", s.help}};
    o["default"] = s.default_value ? to_json(*s.default_value) : json(nullptr);
    o["required"] = !s.default_value.has_value();
    if (s.range.min) o["min"] = *s.range.min;
    if (s.range.max) o["max"] = *s.range.max;
    if (!s.choices.empty()) o["choices"] = s.choices;
    options.push_back(o);
  }
  return options;
}

void print_schema(const OptionSchema& schema, const std::string& indent) {
  size_t width = 4;
  for (const auto& s : schema.specs()) width = std::max(width, s.name.size());
  for (const auto& s : schema.specs()) {
    const std::string def = s.default_value ? to_toml(*s.default_value) : "(required)";
    const std::string constraint = describe_constraint(s);
    fmt::print("{}{:<{}}  {:<11} {:<14} {}{}\n", indent, s.name, width, type_name(s.type), def,
               s.help, constraint.empty() ? "" : " [" + constraint + "]");
  }
}

struct FrameworkTable {
  const char* name;
  const OptionSchema& (*schema)();
};
constexpr FrameworkTable kFrameworkTables[] = {
    {"experiment", experiment_schema}, {"frontend", frontend_schema}, {"train", train_schema}};

}  // namespace

int run_plugins(const std::vector<std::string>& args) {
  auto desc = common_options("patchbay plugins options");
  const auto p = parse(args, desc);
  if (wants_help(p, "Usage: patchbay plugins [--json] [--plugin-dir DIR]\n\nLists every plugin "
                    "found: kind, name, version, file, and its options (type, default, help); then the options "
                    "of the framework's own tables, [experiment], [frontend] and [train].",
                 desc)) {
    return kExitOk;
  }
  if (!p.positional.empty()) {
    throw ConfigError("cli.unexpected", fmt::format("'plugins' takes no arguments, got '{}'",
                                                    p.positional[0]));
  }
  Registry registry;
  load_plugins(registry, p);
  if (p.vm.count("json")) {
    json out = {{"patchbay_version", version()}, {"plugins", json::array()}};
    for (auto kind : kAllPluginKinds) {
      for (const auto* e : registry.entries(kind)) {
        out["plugins"].push_back({{"kind", to_string(kind)},
                                  {"name", e->name()},
                                  {"library", e->origin.library},
                                  {"version", e->origin.version},
                                  {"file", e->origin.file},
                                  {"help", e->description.help},
                                  {"options", schema_json(e->description.options)}});
      }
    }
    out["tables"] = json::array();
    for (const auto& t : kFrameworkTables) {
      out["tables"].push_back({{"name", t.name}, {"options", schema_json(t.schema())}});
    }
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  for (auto kind : kAllPluginKinds) {
    const auto entries = registry.entries(kind);
    fmt::print("{} ({})\n", plural(kind), entries.size());
    for (const auto* e : entries) {
      fmt::print("  {} {}  {}\n    from {}\n", e->name(), e->origin.version, e->description.help,
                 e->origin.file);
      print_schema(e->description.options, "      ");
    }
    fmt::print("\n");
  }
  fmt::print("framework tables ({})\n", std::size(kFrameworkTables));
  for (const auto& t : kFrameworkTables) {
    fmt::print("  [{}]\n", t.name);
    print_schema(t.schema(), "      ");
  }
  return kExitOk;
}

}  // namespace patchbay::cli

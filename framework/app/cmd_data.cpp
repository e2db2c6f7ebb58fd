// patchbay data NAME --out DIR [--force] [--OPTION VALUE...]: generate a dataset into a folder.
//
// The CLI knows no dataset: every dataset plugin that declares a DatasetGenerator
// (patchbay/registrar.hpp) can be generated, the built-in keywords and instruments as much as
// an out-of-tree one found with --plugin-dir. Its options come from the generator's schema,
// spelt --per-class for `per_class`, and are checked against it before anything is written.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <boost/program_options.hpp>
#include <fmt/format.h>

#include "cli_common.hpp"
#include "exit_codes.hpp"
#include "patchbay/error.hpp"
#include "text_util.hpp"

namespace po = boost::program_options;

namespace patchbay::cli {

namespace {

constexpr const char* kUsage =
    "Usage: patchbay data NAME --out DIR [--force] [--OPTION VALUE...] [--plugin-dir DIR]\n\n"
    "Generates dataset NAME into DIR, for the datasets that can make their own data (below;\n"
    "`patchbay data NAME --help` shows what one makes and its options). A list option takes\n"
    "comma-separated values (--words yes,no,up). DIR must be empty, unless --force replaces an\n"
    "earlier dataset of the same kind in it.";

std::string flag_of(const std::string& option) {
  std::string flag = option;
  for (char& c : flag) c = c == '_' ? '-' : c;
  return flag;
}

std::vector<std::string> split_list(const std::string& csv) {
  std::vector<std::string> items;
  std::stringstream in(csv);
  for (std::string w; std::getline(in, w, ',');) {
    if (!w.empty()) items.push_back(w);
  }
  return items;
}

std::string duration(double seconds) {
  const auto s = static_cast<long>(seconds + 0.5);
  return s >= 60 ? fmt::format("{}m{:02}s", s / 60, s % 60) : fmt::format("{}s", s);
}

// A progress line on stderr, at most twice a second.
std::function<void(int64_t, int64_t)> progress_printer(const std::string& dataset) {
  const auto start = std::chrono::steady_clock::now();
  auto last = std::make_shared<std::chrono::steady_clock::time_point>(start - std::chrono::seconds(1));
  return [=](int64_t done, int64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - *last < std::chrono::milliseconds(500)) return;
    *last = now;
    const double elapsed = std::chrono::duration<double>(now - start).count();
    const double eta = elapsed / static_cast<double>(std::max<int64_t>(done, 1)) *
                       static_cast<double>(total - done);
    fmt::print(stderr, "\r{}: {}/{} clips ({:.0f} %), {} elapsed, ETA {}   ", dataset, done, total,
               100.0 * static_cast<double>(done) / static_cast<double>(std::max<int64_t>(total, 1)),
               duration(elapsed), duration(eta));
    if (done == total) fmt::print(stderr, "\n");
  };
}

// One command-line word as a value of `spec`: numbers parsed whole, lists split at commas.
// Throws ConfigError "cli.bad_value" naming the flag and what it expects.
OptionValue value_of(const OptionSpec& spec, const std::string& text, const OptionSchema& schema) {
  const std::string flag = "--" + flag_of(spec.name);
  const auto bad = [&](const std::string& why) {
    return ConfigError("cli.bad_value", fmt::format("{} {}: {}", flag, text, why));
  };
  // The whole word as a number (std::stoll / std::stod), or the error naming the flag.
  const auto number = [&](const std::string& word, auto parse) {
    size_t used = 0;
    decltype(parse(word, &used)) v{};
    try {
      v = parse(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != word.size()) throw bad(fmt::format("expects {}", describe(spec.type)));
    return v;
  };
  const auto integer = [&](const std::string& w) {
    return number(w, [](const std::string& x, size_t* n) { return static_cast<int64_t>(std::stoll(x, n)); });
  };
  const auto real = [&](const std::string& w) {
    return number(w, [](const std::string& x, size_t* n) { return std::stod(x, n); });
  };
  OptionValue raw;
  switch (spec.type) {
    case OptionType::boolean:
      if (text != "true" && text != "false") throw bad("expects true or false");
      raw = text == "true";
      break;
    case OptionType::integer: raw = integer(text); break;
    case OptionType::real: raw = real(text); break;
    case OptionType::string: raw = text; break;
    case OptionType::string_list: raw = split_list(text); break;
    case OptionType::integer_list:
    case OptionType::integer_pair: {
      std::vector<int64_t> v;
      for (const auto& w : split_list(text)) v.push_back(integer(w));
      raw = spec.type == OptionType::integer_pair && v.size() == 1 ? OptionValue{v[0]} : OptionValue{v};
      break;
    }
    case OptionType::real_list: {
      std::vector<double> v;
      for (const auto& w : split_list(text)) v.push_back(real(w));
      raw = v;
      break;
    }
  }
  auto checked = schema.check(spec, raw);
  if (const auto* why = std::get_if<std::string>(&checked)) throw bad(*why);
  return std::get<OptionValue>(checked);
}

std::vector<const RegistryEntry*> generating(const Registry& registry) {
  std::vector<const RegistryEntry*> out;
  for (const auto* e : registry.entries(PluginKind::dataset)) {
    if (e->dataset_generator) out.push_back(e);
  }
  return out;
}

std::string names_of(const std::vector<const RegistryEntry*>& entries) {
  std::vector<std::string> names;
  for (const auto* e : entries) names.push_back(e->name());
  return names.empty() ? std::string("(none)") : fmt::format("{}", fmt::join(names, ", "));
}

void print_generator_options(const OptionSchema& schema) {
  for (const auto& s : schema.specs()) {
    const std::string left = fmt::format("--{} {}", flag_of(s.name),
                                         s.type == OptionType::string_list ? "a,b,c" : "VALUE");
    const std::string def = s.default_value ? to_toml(*s.default_value) : "required";
    fmt::print("  {:<26} {} (default {})\n", left, s.help, def);
  }
}

// `patchbay data --help` and `patchbay data NAME --help`.
void print_help(const Registry& registry, const RegistryEntry* entry, const po::options_description& common) {
  if (entry == nullptr) {
    fmt::print("{}\n\nDatasets that generate:\n", kUsage);
    for (const auto* e : generating(registry)) fmt::print("  {:<14} {}\n", e->name(), e->description.help);
  } else {
    fmt::print("Usage: patchbay data {} --out DIR [--force] [options]\n\n{}\n\nOptions of 'data {}':\n",
               entry->name(), entry->dataset_generator.usage, entry->name());
    print_generator_options(entry->dataset_generator.options);
  }
  std::cout << "\n" << common << "\n";
}

// The entry `patchbay data NAME` generates; ConfigError "cli.unknown_dataset" otherwise.
const RegistryEntry& generator_entry(const Registry& registry, const std::string& name) {
  const auto* entry = registry.find(PluginKind::dataset, name);
  if (entry != nullptr && entry->dataset_generator) return *entry;
  const std::string can = names_of(generating(registry));
  if (entry != nullptr) {
    throw ConfigError("cli.unknown_dataset",
                      fmt::format("dataset '{}' reads data it cannot make (from {}); 'data' "
                                  "generates: {}", name, entry->origin.file, can));
  }
  throw ConfigError("cli.unknown_dataset",
                    fmt::format("'data' cannot generate '{}'; available: {} (a plugin of your own: "
                                "add --plugin-dir DIR)", name, can));
}

// The generator's options from the command line: defaults, then every --flag given, each
// checked; a flag of another generator is named as such.
Options generator_options(const Parsed& p, const RegistryEntry& entry, const Registry& registry) {
  const OptionSchema& schema = entry.dataset_generator.options;
  Options o = Options::defaults(schema);
  for (const auto* other : generating(registry)) {
    for (const auto& spec : other->dataset_generator.options.specs()) {
      const std::string flag = flag_of(spec.name);
      if (!p.vm.count(flag) || p.vm[flag].defaulted()) continue;
      const OptionSpec* own = schema.find(spec.name);
      if (own == nullptr) {
        throw po::error(fmt::format("--{} is an option of 'data {}', not of 'data {}'", flag,
                                    other->name(), entry.name()));
      }
      o.set(own->name, value_of(*own, p.vm[flag].as<std::string>(), schema));
    }
  }
  for (const auto& spec : schema.specs()) {
    if (!o.contains(spec.name)) {
      throw po::error(fmt::format("'data {}' needs --{}", entry.name(), flag_of(spec.name)));
    }
  }
  return o;
}

}  // namespace

int run_data(const std::vector<std::string>& args) {
  po::options_description common("patchbay data options");
  common.add_options()("help,h", "show this help")(
      "out,o", po::value<std::string>(), "the folder to write the dataset into")(
      "force", "replace an earlier dataset of the same kind in --out")(
      "plugin-dir", po::value<std::vector<std::string>>()->composing(),
      "also load plugins from this folder (repeatable)");
  // First only --plugin-dir: which generators exist, and so which options, depends on it.
  po::options_description early_desc(common);
  early_desc.add_options()("positional", po::value<std::vector<std::string>>(), "");
  po::positional_options_description positional;
  positional.add("positional", -1);
  po::variables_map early;
  po::store(po::command_line_parser(args).options(early_desc).positional(positional).allow_unregistered().run(),
            early);
  Registry registry;
  load_plugins(registry, Parsed{early, {}});

  po::options_description all(common);
  std::set<std::string> flags;
  for (const auto* e : generating(registry)) {
    for (const auto& spec : e->dataset_generator.options.specs()) {
      const std::string flag = flag_of(spec.name);
      if (!flags.insert(flag).second) continue;
      auto* value = po::value<std::string>();
      if (spec.type == OptionType::boolean) value->implicit_value("true");
      all.add_options()(flag.c_str(), value, spec.help.c_str());
    }
  }
  const auto p = parse(args, all);
  if (p.vm.count("help")) {
    print_help(registry, p.positional.empty() ? nullptr : &generator_entry(registry, p.positional[0]), common);
    return kExitOk;
  }
  if (p.positional.empty()) {
    throw po::error(fmt::format("expects a dataset name: {}", names_of(generating(registry))));
  }
  const RegistryEntry& entry = generator_entry(registry, p.positional[0]);
  if (p.positional.size() > 1) throw po::error(fmt::format("unexpected argument '{}'", p.positional[1]));
  const Options options = generator_options(p, entry, registry);
  if (!p.vm.count("out")) throw po::error("--out DIR is required");
  GenerateRequest request;
  request.out = p.vm["out"].as<std::string>();
  request.overwrite = p.vm.count("force") > 0;
  request.progress = progress_printer(entry.name());
  std::string summary;
  try {
    summary = entry.dataset_generator.generate(options, request);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw PluginError("plugin.failed", fmt::format("dataset '{}' ({}) failed to generate: {}",
                                                   entry.name(), entry.origin.file, without_backtrace(e.what())));
  }
  fmt::print("{}", summary);
  if (!summary.empty() && summary.back() != '\n') fmt::print("\n");
  return kExitOk;
}

}  // namespace patchbay::cli

// Experiment files: parse, apply command-line overrides, validate, resolve.
//
// An experiment file is TOML with the tables [experiment], [dataset], [frontend],
// [patcher], [masker], [backbone], [train] and [sweep]. The four slot tables name a plugin
// (`plugin = "fftp"`) plus that plugin's options; the framework tables have schemas of their
// own (frontend_schema(), train_schema(), experiment_schema()). `key=value` overrides
// (`patcher.stride=4`, `dataset.root=/data/sc`) apply to the file before anything else; a
// value that is not valid TOML is taken as a string.
//
//   auto exp = patchbay::load_experiment("experiments/quickstart.toml", {"train.epochs=2"}, registry);
//   for (const auto& run : exp.runs) fmt::print("{} {}\n", run.id, run.slug);
//
// Errors: everything wrong is collected first and thrown as one ConfigError whose message has
// one line per problem, "FILE:LINE:COLUMN: what is wrong; what to do", and whose id is the
// first problem's: config.syntax, config.unknown_section, config.unknown_key,
// config.wrong_type, config.out_of_range, config.bad_choice, config.missing_value,
// config.unknown_plugin, config.missing_plugin, config.bad_override, config.sweep_unsupported.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "patchbay/export.hpp"
#include "patchbay/options.hpp"
#include "patchbay/registry.hpp"

namespace patchbay {

// The schemas of the framework's own tables.
PATCHBAY_API const OptionSchema& experiment_schema();
PATCHBAY_API const OptionSchema& frontend_schema();
PATCHBAY_API const OptionSchema& train_schema();

// The tables of an experiment file, in the order the resolved text lists them.
inline constexpr const char* kSections[] = {"experiment", "dataset",  "frontend", "patcher",
                                            "masker",     "backbone", "train",    "sweep"};

struct SlotConfig {
  std::string plugin;          // registry name
  std::string plugin_version;  // version of the library that provides it
  Options options;             // validated, defaults filled in
};

// One run's configuration, fully validated and resolved.
struct PATCHBAY_API ResolvedConfig {
  Options experiment, frontend, train;
  SlotConfig dataset, patcher, masker, backbone;

  // Canonical TOML: tables in kSections order, keys sorted, every default written out, slot
  // tables with plugin and plugin_version first. Two configurations that run the same are
  // the same text.
  std::string to_toml() const;
  // First 8 hex digits of the 64-bit FNV-1a hash of to_toml().
  std::string hash() const;
};

struct PlannedRun {
  std::string id;    // "<hash>-<slug>"
  std::string slug;  // readable swept values ("base" for a file without [sweep])
  std::vector<std::pair<std::string, OptionValue>> axes;  // swept key -> value
  ResolvedConfig config;
};

struct Experiment {
  std::filesystem::path file;
  std::string name;                    // [experiment] name, or the file's stem
  std::string text;                    // the file as given
  std::vector<std::string> overrides;  // as given
  std::vector<PlannedRun> runs;
};

// Reads, overrides, validates and expands `file`. Throws ConfigError.
PATCHBAY_API Experiment load_experiment(const std::filesystem::path& file,
                                        const std::vector<std::string>& overrides,
                                        const Registry& registry);
// Same, from text; `source_name` stands for the file in messages and relative paths.
PATCHBAY_API Experiment load_experiment_text(const std::string& text, const std::string& source_name,
                                             const std::vector<std::string>& overrides,
                                             const Registry& registry);

}  // namespace patchbay

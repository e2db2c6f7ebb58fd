// Experiment files: parse, apply command-line overrides, validate, expand the sweep, resolve.
//
// An experiment file is TOML with the tables [experiment], [dataset], [frontend],
// [patcher], [masker], [token_dropper], [backbone], [train] and [sweep]. The five slot tables
// name a plugin
// (`plugin = "fftp"`) plus that plugin's options; the framework tables have schemas of their
// own (frontend_schema(), train_schema(), experiment_schema()). `key=value` overrides
// (`patcher.stride=4`, `dataset.root=/data/sc`) apply to the file before anything else; a
// value that is not valid TOML is taken as a string.
//
//   auto exp = patchbay::load_experiment("experiments/quickstart.toml", {"train.epochs=2"}, registry);
//   for (const auto& run : exp.runs) fmt::print("{} {}\n", run.id, run.slug);
//
// [sweep] turns the file (the base, after the overrides) into many runs. Every form at once
// (a real file sweeps each key in one place only):
//
//   [sweep]
//   seeds = [0, 1, 2]                  # repeats every point; sets train.seed; slug ends "_s0"
//   "patcher.stride" = [1, 2, 4, 8]    # an axis: "<table>.<key>" -> a list of values
//   "masker.budget" = [0, 1024]        # axes combine as a grid (cartesian product)
//   "patcher" = [{plugin = "square"}, {plugin = "fftp", stride = 4}]  # a slot table set whole
//
//   [sweep.zip.geometry]               # a named zip group: lists of equal length, paired
//   "patcher.plugin" = ["square", "fftp"]    # element-wise; the group is one axis of the grid
//   "patcher.stride" = [[10, 10], 4]
//
//   [[sweep.rows]]                     # explicit points; all rows together are one more axis
//   patcher = { plugin = "square", patch_size = [16, 16], stride = [10, 10] }
//   [[sweep.rows]]
//   "patcher.stride" = 4               # a row sets single values (not lists)
//
// - Keys: "<table>.<key>" (quoted), or the same as TOML dotted keys / sub-tables
//   (`patcher.stride = [1, 2]`, `[sweep.patcher]`), for every table but [experiment] (which
//   does not change what runs). A list-valued option is swept as a list of lists
//   (`"patcher.stride" = [[10, 10], [4, 4]]`).
// - A slot table (dataset, patcher, masker, token_dropper, backbone) named without a key takes a table
//   value that replaces the base table whole, so options of another plugin do not leak in.
//   In a row that value must be written inline (`patcher = { ... }`); dotted keys in a row
//   (`patcher.stride = 4`) set single options. `"<slot>.plugin"` alone keeps the base
//   table's other options (which must then fit the new plugin). Within a point, whole
//   tables are applied before single options, so `"patcher"` and `"patcher.stride"` may be
//   two axes of one grid.
// - Order: the grid's axes (plain axes, zip groups, the rows) in file order, the last axis
//   varying fastest; seeds are the OUTERMOST loop, so a first complete pass over every point
//   (seed 0) exists before any point is repeated.
// - Every point is validated like a base file; its problems name the run's slug and point
//   at the sweep key (FILE:LINE:COLUMN) that set the value.
// - Slug: the point's values joined by "_": "<key><value>" for single options, key being
//   the option name (or "table-key" when two swept keys share a name), values as written
//   (1e-3 -> 0.001, [10, 10] -> 10x10, strings as they are, true/false); a "<slot>.plugin"
//   value is the plugin name alone; a table value is its plugin plus its other keys,
//   sorted ("fftp-stride4"); an empty row is "base"; the seed
//   comes last as "s<N>". Characters outside [A-Za-z0-9.-] become '-'; a slug longer than
//   80 characters is cut and ends in a hash. A file without [sweep] has the one slug "base".
// - A command-line override of a key that the sweep sets in every run is refused (it would
//   have no effect): config.sweep_conflict.
//
// Errors: everything wrong is collected first and thrown as one ConfigError whose message has
// one line per problem, "FILE:LINE:COLUMN: what is wrong; what to do", and whose id is the
// first problem's: config.syntax, config.unknown_section, config.unknown_key,
// config.wrong_type, config.out_of_range, config.bad_choice, config.missing_value,
// config.unknown_plugin, config.missing_plugin, config.bad_override, config.sweep_syntax
// (a malformed [sweep]: not a list, an empty list, a key without a table, an unknown table,
// nested sweeps, bad seeds), config.sweep_zip_length (a zip group's lists differ in length),
// config.sweep_conflict (a key swept in two places, or overridden and swept),
// config.sweep_duplicate (two points resolve to the same configuration, or a value repeats).
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
inline constexpr const char* kSections[] = {"experiment", "dataset",       "frontend",
                                            "patcher",    "masker",        "token_dropper",
                                            "backbone",   "train",         "sweep"};

struct SlotConfig {
  std::string plugin;          // registry name
  std::string plugin_version;  // version of the library that provides it
  Options options;             // validated, defaults filled in
};

// One run's configuration, fully validated and resolved.
struct PATCHBAY_API ResolvedConfig {
  Options experiment, frontend, train;
  // token_dropper is "none" when the file has no [token_dropper] (as masker without [masker]).
  SlotConfig dataset, patcher, masker, token_dropper, backbone;

  // Canonical TOML: tables in kSections order, keys sorted, every default written out, slot
  // tables with plugin and plugin_version first; [token_dropper] only when it is not "none". Two configurations that run the same are
  // the same text.
  std::string to_toml() const;
  // to_toml() without [experiment] and the execution-only keys (train.threads,
  // train.loader_threads, train.checkpoint_every_s, frontend.cache_dir): what decides what a
  // run computes. Two runs with the same identity text are the same run.
  std::string identity_text() const;
  // First 8 hex digits of the 64-bit FNV-1a hash of identity_text().
  std::string hash() const;
};

struct PlannedRun {
  std::string id;    // "<hash>-<slug>"; the hash covers train.seed, so seeds differ in id
  std::string slug;  // readable swept values ("base" for a file without [sweep])
  // The point's swept key -> value, in the order of Experiment::axes: "patcher.stride" -> 4,
  // a whole slot table "patcher" -> its compact form as a string ("fftp-stride4"), seeds as
  // "train.seed". Values as written in the sweep (not widened). Empty without [sweep]; rows
  // that set different keys give runs that lack some of the experiment's axis keys.
  std::vector<std::pair<std::string, OptionValue>> axes;
  ResolvedConfig config;
};

// One swept key and the values its runs take: the dimensions of summary grids.
struct SweepAxis {
  std::string key;                  // as in PlannedRun::axes
  std::vector<OptionValue> values;  // distinct, in the order the runs first take them
};

struct Experiment {
  std::filesystem::path file;
  std::string name;                    // [experiment] name, or the file's stem
  std::string text;                    // the file as given
  std::vector<std::string> overrides;  // as given
  std::vector<PlannedRun> runs;  // seeds outermost, then the grid (last axis fastest)
  std::vector<SweepAxis> axes;   // every swept key, grid axes in file order, train.seed last;
                                 // empty without [sweep]
};

// Reads, overrides, validates and expands `file`. Validation includes each run's patch grid
// against its input, masker and token dropper (point_grid.hpp), so a patch longer than the
// input is refused here. Throws ConfigError (its id the first problem's: "shape.patch_geometry"
// for that one), every problem of the file in one message, each at its line.
PATCHBAY_API Experiment load_experiment(const std::filesystem::path& file,
                                        const std::vector<std::string>& overrides,
                                        const Registry& registry);
// Same, from text; `source_name` stands for the file in messages and relative paths.
PATCHBAY_API Experiment load_experiment_text(const std::string& text, const std::string& source_name,
                                             const std::vector<std::string>& overrides,
                                             const Registry& registry);

}  // namespace patchbay

#include "patchbay/config.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <tuple>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "patchbay/device.hpp"
#include "patchbay/error.hpp"
#include "patchbay/fbank.hpp"
#include "patchbay/hash.hpp"
#include "patchbay/point_grid.hpp"
#include "config_internal.hpp"
#include "patchbay/registry.hpp"
#include "sweep_grammar.hpp"
#include "train/averaging.hpp"
#include "text_util.hpp"

namespace fs = std::filesystem;

namespace patchbay {
using namespace config_internal;

namespace {

// TOML++ parses dotted keys, nested arrays and inline tables recursively: a table header of
// 50,000 dotted parts overflowed the stack (issue "faults" 7). No experiment needs more than
// a few levels, so deeper input is refused before parsing. Throws ConfigError
// "config.too_deep" naming the line.
constexpr int kMaxTomlDepth = 64;

void check_toml_depth(const std::string& text, const std::string& source) {
  int line = 1, depth = 0, parts = 1;
  bool in_key = true;  // before a line's '=' (or in a [table] header): dots separate key parts
  const auto refuse = [&](const std::string& what) {
    throw ConfigError("config.too_deep",
                      fmt::format("{}:{}: {} (more than {}); an experiment needs a few levels: "
                                  "shorten the key or flatten the value", source, line, what, kMaxTomlDepth));
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n') {
      ++line;
      in_key = depth == 0;
      parts = 1;
    } else if (c == '#') {
      while (i + 1 < text.size() && text[i + 1] != '\n') ++i;
    } else if (c == '"' || c == '\'') {
      const bool triple = text.compare(i, 3, std::string(3, c)) == 0;
      const std::string close = triple ? std::string(3, c) : std::string(1, c);
      size_t j = i + close.size();
      while (j < text.size() && text.compare(j, close.size(), close) != 0) {
        if (text[j] == '\\' && c == '"') ++j;  // an escaped character in a basic string
        if (j < text.size() && text[j] == '\n') ++line;
        ++j;
      }
      i = std::min(text.size(), j + close.size()) - 1;
    } else if (c == '=') {
      in_key = false;
    } else if (c == '.' && in_key && ++parts > kMaxTomlDepth) {
      refuse(fmt::format("a key of {} dotted parts", parts));
    } else if ((c == '[' || c == '{') && ++depth > kMaxTomlDepth) {
      refuse(fmt::format("arrays or tables nested {} deep", depth));
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

// experiment.name names the results file (results/<name>.h5) and the Slurm job: a name that
// is a path ("../../x", "a/b") would write outside results/. Throws ConfigError
// "config.bad_name".
void check_experiment_name(const std::string& name, const std::string& source) {
  const bool control = std::any_of(name.begin(), name.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
  if (name.empty() || name == "." || name == ".." || name.front() == '.' || control ||
      name.find_first_of("/\\") != std::string::npos) {
    throw ConfigError("config.bad_name",
                      fmt::format("{}: experiment.name = \"{}\" is not a plain file name (it names "
                                  "results/<name>.h5): use letters, digits, '-', '_' and '.', with no "
                                  "'/' and not starting with '.'; --results R.h5 writes elsewhere",
                                  source, name));
  }
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

// train.device and train.precision: the text of the device is checked here, before anything
// runs; whether a CUDA device exists is asked where the run starts (trainer.cpp), since a
// sweep may be planned on a machine without the GPUs it runs on (a Slurm login node).
void check_device(const Options& train, const TableView& view, const Locator& where, Diagnostics& diags) {
  const std::string& name = train.get_string("device");
  const auto at_key = [&](const char* key) {
    const toml::node* node = view.get(key);
    return node ? where.at(std::string("train.") + key, node->source()) : where.file();
  };
  c10::Device device(c10::DeviceType::CPU);
  try {
    device = device_of(name);
  } catch (const ConfigError& e) {
    diags.add(at_key("device"), e.id(), e.what());
    return;
  }
  if (device.is_cpu() && train.get_string("precision") == "fp16") {
    diags.add(at_key("precision"), "config.unsupported_precision",
              "train.precision = \"fp16\" needs a CUDA device (LibTorch has no fp16 autocast on the CPU); "
              "use \"bf16\" on the CPU, or \"fp32\", or set train.device = \"cuda\"");
  }
}

// Checks that need two options, made here so that `plan` and `run` refuse them before
// anything trains, at the file's line, instead of every run of a sweep failing one by one:
// train.average_epochs within train.epochs, and the [frontend] as the front end checks it
// (the mel range within Nyquist, a whole-sample frame shift, ...: Fbank's own checks), and
// the patch grid against the input, the masker and the token dropper.
void check_average_epochs(const Options& train, const TableView& view, const Locator& where, Diagnostics& diags) {
  const std::string problem = average_epochs_problem(train.get_int_pair("average_epochs"), train.get_int("epochs"));
  if (problem.empty()) return;
  const toml::node* node = view.get("average_epochs");
  diags.add(node ? where.at("train.average_epochs", node->source()) : where.file(), "config.average_epochs", problem);
}

// Where a two-option problem is reported: at the value of the key of `view` that the message
// names first (a whole word: "stride" is not found in "strides"), else at the table, else at
// the file.
std::string where_named(const TableView& view, const std::string& section, const std::string& message,
                        const Locator& where) {
  const auto word_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  const auto first_use = [&](const std::string& key) {
    for (size_t at = message.find(key); at != std::string::npos; at = message.find(key, at + 1)) {
      const size_t end = at + key.size();
      if ((at == 0 || !word_char(message[at - 1])) && (end == message.size() || !word_char(message[end]))) return at;
    }
    return std::string::npos;
  };
  size_t best = std::string::npos;
  std::string named;
  for (const auto& [key, entry] : view.entries) {
    const size_t at = key == kSlotPlugin ? std::string::npos : first_use(key);
    if (at < best) {
      best = at;
      named = key;
    }
  }
  if (!named.empty()) return where.at(section + "." + named, view.get(named)->source());
  return view.present ? where.at(section, view.region) : where.file();
}

void check_frontend(const Options& frontend, const TableView& view, const Locator& where, Diagnostics& diags) {
  try {
    FbankOptions::from(frontend).validate();
  } catch (const ConfigError& e) {
    diags.add(where_named(view, "frontend", e.what(), where), e.id(), e.what());
  }
}

// The input's size is the front end's (num_mel_bins x target_frames): where the file or the
// command line sets the side a patch does not fit (PatchGrid::make's "taller" and "longer"),
// the refusal says so, since the fix may be there.
std::string input_size_note(const std::string& message, const ResolvedConfig& cfg, const TableView& frontend,
                            const Locator& where) {
  const char* key = message.find("longer than the input") != std::string::npos  ? "target_frames"
                    : message.find("taller than the input") != std::string::npos ? "num_mel_bins"
                                                                                  : nullptr;
  const toml::node* node = key ? frontend.get(key) : nullptr;
  if (!node) return "";
  return fmt::format("; the input's {} is frontend.{} = {}, set at {}",
                     std::string(key) == "target_frames" ? "length" : "height", key, cfg.frontend.get_int(key),
                     where.at(std::string("frontend.") + key, node->source()));
}

// The run's patch grid and the masker's and token dropper's checks against it (point_grid.hpp),
// reported at the refusing table's key: "patcher.patch_frames = 400" is found here, at its
// line, instead of when the run's model is built.
void check_point_grid(const ResolvedConfig& cfg, const Views& views, const Registry& registry,
                      const Locator& where, Diagnostics& diags) {
  GridStage stage = GridStage::patcher;
  try {
    point_grid(cfg, registry, &stage);
  } catch (const Error& e) {
    const std::string section = section_of(stage);
    std::string message = e.what();
    if (stage == GridStage::patcher) message += input_size_note(message, cfg, views.at("frontend"), where);
    diags.add(where_named(views.at(section), section, e.what(), where), e.id(), message);
  }
}

ResolvedConfig resolve_point(const Views& views, const Registry& registry, const Locator& where,
                             Diagnostics& diags) {
  ResolvedConfig cfg;
  const size_t first_problem = diags.items().size();
  cfg.experiment = resolve_table(views.at("experiment"), "experiment", experiment_schema(),
                                 "[experiment]", where, diags);
  const size_t frontend_problems = diags.items().size();
  cfg.frontend = resolve_table(views.at("frontend"), "frontend", frontend_schema(), "[frontend]",
                               where, diags);
  const size_t train_problems = diags.items().size();
  cfg.train = resolve_table(views.at("train"), "train", train_schema(), "[train]", where, diags);
  const bool train_clean = diags.items().size() == train_problems;
  check_device(cfg.train, views.at("train"), where, diags);
  // A value the schema refused is its default here: checked against it, the message would
  // quote a number the user never wrote.
  if (train_clean) check_average_epochs(cfg.train, views.at("train"), where, diags);
  if (train_problems == frontend_problems) check_frontend(cfg.frontend, views.at("frontend"), where, diags);
  cfg.dataset = resolve_slot(views.at("dataset"), "dataset", PluginKind::dataset, registry, where, diags);
  cfg.patcher = resolve_slot(views.at("patcher"), "patcher", PluginKind::patcher, registry, where, diags);
  cfg.masker = resolve_slot(views.at("masker"), "masker", PluginKind::masker, registry, where, diags);
  cfg.token_dropper = resolve_slot(views.at("token_dropper"), "token_dropper", PluginKind::token_dropper,
                                   registry, where, diags);
  cfg.backbone = resolve_slot(views.at("backbone"), "backbone", PluginKind::backbone, registry,
                              where, diags);
  if (diags.items().size() == first_problem) check_point_grid(cfg, views, registry, where, diags);
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
    if (identity && std::string(section) == "train" &&
        ((k == "init_weights" && v == OptionValue{std::string()}) ||
         (k == "init_strict" && v == OptionValue{false}) ||
         (k == "init_exclude" && v == OptionValue{std::string()}) ||
         (k == "precision" && v == OptionValue{std::string("fp32")}) ||
         (k == "early_stop_patience" && v == OptionValue{int64_t{0}}) ||
         (k == "sampler" && v == OptionValue{std::string("shuffle")}) ||
         (k == "epoch_size" && v == OptionValue{int64_t{0}}) ||
         (k == "ema_decay" && v == OptionValue{0.0}) ||
         (k == "average_epochs" && v == OptionValue{std::vector<int64_t>{0, 0}}))) {
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
  // Added after runs existed: without token dropping a run's text (so its id, and what
  // --reuse compares) stays as it was; an absent [token_dropper] reads back as "none".
  if (c.token_dropper.plugin != "none") {
    write_table(out, "token_dropper", c.token_dropper.options, &c.token_dropper, identity);
    sep();
  }
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
  check_toml_depth(text, source_name);
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
    sweep = parse_sweep(*table, where, diags);
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
  check_experiment_name(exp.name, source_name);

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
  std::error_code ec;
  if (fs::is_directory(file, ec)) {
    std::vector<std::string> tomls;
    for (const auto& e : fs::directory_iterator(file, ec)) {
      if (e.path().extension() == ".toml") tomls.push_back(e.path().filename().string());
    }
    std::sort(tomls.begin(), tomls.end());
    throw ConfigError("config.is_directory",
                      fmt::format("'{}' is a folder, not an experiment file; name a .toml file{}",
                                  file.string(), tomls.empty() ? std::string(" (examples are in experiments/)")
                                                               : fmt::format(" in it: {}", join(tomls, ", "))));
  }
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

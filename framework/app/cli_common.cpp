#include "cli_common.hpp"

#include <malloc.h>
#include <sched.h>

#include <climits>
#include <cstdlib>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "exit_codes.hpp"
#include "patchbay/error.hpp"
#include "patchbay/loader.hpp"
#include "patchbay/point_grid.hpp"
#include "patchbay/results.hpp"
#include "text_util.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace patchbay::cli {

int guarded(const std::string& command, const std::function<int()>& body) {
  try {
    return body();
  } catch (const po::error& e) {
    fmt::print(stderr, "patchbay {}: {}; run 'patchbay {} --help'\n", command, e.what(), command);
    return kExitUsage;
  } catch (const Error& e) {
    fmt::print(stderr, "patchbay {}: error [{}]: {}\n", command, e.id(), e.what());
    // A missing argument (cli.missing_*) is a wrong command line, not refused input.
    return e.id().rfind("cli.missing", 0) == 0 ? kExitUsage : kExitError;
  } catch (const std::exception& e) {
    fmt::print(stderr, "patchbay {}: internal error: {}\n", command, without_backtrace(e.what()));
    return kExitError;
  }
}

// glibc returns large freed blocks to the kernel (munmap, trim) and the next training step
// faults the same activation memory back in: bench/ast_train_bench.cpp measured ~10 % of an
// AST step's CPU time in those page faults (bench/README.md). Keep freed memory mapped
// instead; peak RSS is unchanged (the peak is reached either way), only the memory is not
// handed back between steps. PATCHBAY_MALLOC_DEFAULT=1 keeps glibc's defaults.
void prepare_compute_process() {
  if (const char* keep = std::getenv("PATCHBAY_MALLOC_DEFAULT"); keep != nullptr && *keep == '1') return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's ceiling for this setting on 64-bit
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
}

Parsed parse(const std::vector<std::string>& args, const po::options_description& desc) {
  po::options_description all(desc);
  all.add_options()("positional", po::value<std::vector<std::string>>(), "");
  po::positional_options_description pos;
  pos.add("positional", -1);
  Parsed p;
  po::store(po::command_line_parser(args).options(all).positional(pos).run(), p.vm);
  po::notify(p.vm);
  if (p.vm.count("positional")) p.positional = p.vm["positional"].as<std::vector<std::string>>();
  return p;
}

bool wants_help(const Parsed& p, const std::string& usage, const po::options_description& desc) {
  if (!p.vm.count("help")) return false;
  std::cout << usage << "\n\n" << desc << "\n";
  return true;
}

po::options_description common_options(const char* title, bool offers_json) {
  po::options_description desc(title);
  desc.add_options()("help,h", "show this help");
  if (offers_json) desc.add_options()("json", "print JSON on stdout (and nothing else)");
  desc.add_options()("plugin-dir", po::value<std::vector<std::string>>()->composing(),
                     "also load plugins from this folder (repeatable)");
  return desc;
}

void load_plugins(Registry& registry, const Parsed& p) {
  PluginLoader loader(registry);
  auto dirs = PluginLoader::default_search_path();
  if (p.vm.count("plugin-dir")) {
    for (const auto& d : p.vm["plugin-dir"].as<std::vector<std::string>>()) {
      std::error_code ec;
      if (!fs::is_directory(d, ec)) {
        throw ConfigError("cli.plugin_dir",
                          fmt::format("--plugin-dir '{}' is not a folder{}; name the folder that "
                                      "holds the plugin's lib<name>.so", d,
                                      fs::exists(d, ec) ? "" : " (it does not exist)"));
      }
      dirs.emplace_back(d);
    }
  }
  loader.load_directories(dirs);
}

Experiment plan_from(const Parsed& p, const Registry& registry, const std::string& command) {
  if (p.positional.empty()) {
    throw ConfigError("cli.missing_file", fmt::format("which experiment? usage: patchbay {} FILE "
                                                      "[key=value...]", command));
  }
  std::vector<std::string> overrides(p.positional.begin() + 1, p.positional.end());
  return load_experiment(p.positional[0], overrides, registry);
}

std::string changed_lines(const std::string& before, const std::string& after) {
  const auto lines = [](const std::string& text) {
    std::vector<std::string> out;
    std::stringstream ss(text);
    std::string line;
    while (std::getline(ss, line)) out.push_back(line);
    return out;
  };
  const auto a = lines(before), b = lines(after);
  const std::multiset<std::string> sa(a.begin(), a.end()), sb(b.begin(), b.end());
  std::string out;
  int shown = 0;
  for (const auto& l : a) {
    if (!sb.count(l) && shown++ < 8) out += "\n  - " + l;
  }
  for (const auto& l : b) {
    if (!sa.count(l) && shown++ < 16) out += "\n  + " + l;
  }
  return out;
}

// The cores this process may use, split between --jobs. The affinity mask follows a cpuset
// or `taskset`; under Slurm a task is entitled to its --cpus-per-task only, which the mask
// does not show when the cluster does not bind tasks (TaskPlugin=task/none): a 2-CPU array
// task on a 64-core node would otherwise start 64 threads and fight its neighbours.
int usable_cores() {
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) cores = CPU_COUNT(&set);
  if (const char* slurm = std::getenv("SLURM_CPUS_PER_TASK")) {
    const int granted = std::atoi(slurm);
    if (granted > 0) cores = std::min(cores, granted);
  }
  return cores;
}

void refuse_changed_experiment(const ResultsStore& store, const ExperimentRecord& record) {
  const auto previous = store.read_experiment();
  if (!previous) return;
  // The runs decide: a run's id hashes every option, so an edit or override that leaves the
  // ids the same (a comment, train.threads=1) plans the same runs.
  if (previous->run_ids == record.run_ids) {
    if (previous->text != record.text) {
      fmt::print(stderr, "patchbay run: {} was edited since {} was written, but plans the same runs; recording "
                         "the edited text\n",
                 record.file, store.file().string());
    }
    return;
  }
  std::string what = changed_lines(previous->text, record.text);
  if (previous->text == record.text && previous->overrides == record.overrides) {
    what += "\n  (the file is the same: a plugin's version or a default changed, so its runs' ids did)";
  }
  if (previous->overrides != record.overrides) {
    what += fmt::format("\n  overrides were [{}], now [{}]", fmt::join(previous->overrides, " "),
                        fmt::join(record.overrides, " "));
  }
  const std::string whose =
      previous->name == record.name
          ? fmt::format("the experiment changed since '{}' was written", store.file().string())
          : fmt::format("'{}' holds experiment '{}', not '{}'", store.file().string(), previous->name, record.name);
  throw ConfigError("results.changed",
                    fmt::format("{}:{}\nrun with --force to replace its plan with this one (runs both plans have "
                                "are kept; the earlier plan's other runs leave the table, their files stay in "
                                "{}/), or use another --results file",
                                whose, what, store.runs_dir().filename().string()));
}

void note_replaced_plan(const ResultsStore& store, const ExperimentRecord& record, const std::string& command) {
  const auto previous = store.read_experiment();
  if (!previous) return;
  const std::set<std::string> planned(record.run_ids.begin(), record.run_ids.end());
  size_t left = 0;
  std::error_code ec;
  for (const auto& id : previous->run_ids) left += planned.count(id) == 0 && fs::exists(store.run_dir(id) / "run.h5", ec);
  if (left == 0) return;
  fmt::print(stderr, "patchbay {}: --force: {} run{} of the earlier plan {} not in this one: {} the table of {}; "
                     "{} files stay in {}/, and running the earlier plan again brings {} back\n",
             command, left, left == 1 ? "" : "s", left == 1 ? "is" : "are", left == 1 ? "it leaves" : "they leave",
             store.file().string(), left == 1 ? "its" : "their", store.runs_dir().string(),
             left == 1 ? "it" : "them");
}

ResultsLock open_results_for_run(const ResultsStore& store, const ExperimentRecord& record, bool force,
                                 const std::string& command) {
  store.refuse_foreign();  // before R.lock is created beside a folder or someone else's file
  ResultsLock lock = store.lock();
  const std::string results = store.file().string();
  if (const auto aside = store.set_aside_unreadable()) {
    // The runs' own files are what counts: R is rebuilt from them by the caller's publish.
    fmt::print(stderr, "patchbay {}: results file '{}' could not be read; moved it to '{}' and "
                       "rebuilding it from the run files in '{}'\n",
               command, results, aside->string(), store.runs_dir().string());
  }
  if (const size_t restored = store.restore_run_files()) {
    fmt::print(stderr, "patchbay {}: {} run{} in '{}' had no file in '{}' (a results file copied without its runs "
                       "folder?); restored from the results file\n",
               command, restored, restored == 1 ? "" : "s", results, store.runs_dir().string());
  }
  if (!force) refuse_changed_experiment(store, record);
  else note_replaced_plan(store, record, command);
  return lock;
}

PatchGrid grid_of(const ResolvedConfig& c, const Registry& registry) { return point_grid(c, registry); }

// The resolved TOML carries each plugin's version (a record of what ran); an experiment
// file has no such key, so it is dropped before the text is loaded again.
std::string without_plugin_versions(const std::string& toml) {
  std::istringstream in(toml);
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.rfind("plugin_version =", 0) == 0) continue;
    out += line + "\n";
  }
  return out;
}

}  // namespace patchbay::cli

// Helpers shared by the CLI's subcommands: argument parsing, help, plugin loading, planning.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "patchbay/config.hpp"
#include "patchbay/registry.hpp"
#include "patchbay/results.hpp"

namespace patchbay::cli {

struct Parsed {
  boost::program_options::variables_map vm;
  std::vector<std::string> positional;  // words that are not options, in order
};

// Parses `args` against `desc`; positional words are collected in order. Throws
// boost::program_options::error for unknown options (main() prints it with the command).
Parsed parse(const std::vector<std::string>& args,
             const boost::program_options::options_description& desc);

// When --help was given, prints `usage` and the options and returns true.
bool wants_help(const Parsed& p, const std::string& usage,
                const boost::program_options::options_description& desc);

// --help, --plugin-dir and, where the command prints something a script reads, --json (a
// command without JSON output does not offer it: accepted and ignored, it would mislead).
boost::program_options::options_description common_options(const char* title, bool offers_json = true);

// Loads the default plugin search path plus the --plugin-dir folders.
void load_plugins(Registry& registry, const Parsed& p);

// The experiment named by the first positional word, the rest being key=value overrides.
Experiment plan_from(const Parsed& p, const Registry& registry, const std::string& command);

// The lines of `after` not in `before` and the reverse ("\n  - old", "\n  + new"; at most
// 8 removed and 16 lines in all): what changed in an experiment file.
std::string changed_lines(const std::string& before, const std::string& after);

// Throws ConfigError "results.changed" (with the changed lines) when `store`'s published
// experiment plans other runs than `record`'s: `run` and `run-dist` without --force. An edit
// that plans the same runs (a comment, the layout: run ids hash every option) is accepted
// with a note on stderr; the caller then records the edited text.
void refuse_changed_experiment(const ResultsStore& store, const ExperimentRecord& record);
// With --force: says on stderr how many of the earlier plan's started runs `record` leaves out
// of the table (their run files stay, so nothing is lost). Call it before the publish.
void note_replaced_plan(const ResultsStore& store, const ExperimentRecord& record, const std::string& command);
// What `run` and `run-dist` (rank 0) do to R before a sweep touches it: refuse a path that is
// not patchbay's results (before R.lock exists beside it), take the lock, set aside an
// unreadable R and restore the run files R has and R.runs/ lacks (each said on stderr), then
// refuse_changed_experiment, or note_replaced_plan with --force. Returns the lock; `command`
// names the caller in the messages.
ResultsLock open_results_for_run(const ResultsStore& store, const ExperimentRecord& record, bool force,
                                 const std::string& command);

// The cores this process may use: its affinity mask, capped by $SLURM_CPUS_PER_TASK (see
// the definition).
int usable_cores();

// A run record's resolved TOML (RunRecord::config_toml) without its plugin_version lines,
// loadable again with load_experiment_text() (an experiment file has no such key).
std::string without_plugin_versions(const std::string& toml);

// The patch grid of a run: builds its patcher for the front end's input shape (cheap), so bad
// geometry is reported before anything runs (ShapeError naming the options and the shape),
// and checks the masker and the token dropper against it (Masker::check, TokenDropper::check:
// ConfigError, e.g. a budget too large, more time columns dropped than the grid has).
PatchGrid grid_of(const ResolvedConfig& config, const Registry& registry);

// Runs one subcommand body and turns what it throws into the CLI's message and exit code
// (usage errors 2, refused input 1), as main() does for every command; worker processes
// forked by `patchbay run` use it too.
int guarded(const std::string& command, const std::function<int()>& body);

// Process-wide settings for a process that trains or measures: glibc keeps freed memory
// mapped (see the definition). Called by main() for computing commands and by forked workers.
void prepare_compute_process();

}  // namespace patchbay::cli

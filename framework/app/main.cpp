// patchbay: the command-line host. Parses the command, loads plugins, runs the subcommand.
#include <unistd.h>


#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli_common.hpp"
#include "commands.hpp"
#include "passive_openmp.hpp"
#include "patchbay/log.hpp"
#include "patchbay/error.hpp"
#include "patchbay/version.hpp"

namespace {

constexpr const char* kUsage = R"(patchbay - spectrogram-patching experiments for audio classification

Usage:
  patchbay <command> [options]

Commands:
  plugins                 list the plugins found, with their options and defaults
  plan FILE [key=value]   validate an experiment file and print the runs it expands to
  run FILE [key=value]    train, validate, test and measure every planned run into one
                          HDF5 results file (resumes; --jobs N runs side by side;
                          --shard K/N only shard K, K = 0..N-1, of N)
  run-dist FILE --dist-rank R --dist-world-size N
                          train ONE planned run on N processes (data-parallel, Gloo;
                          one command per rank, on one machine or several)
  merge OUT.h5 IN.h5...   combine the results files of shards into one
  slurm FILE --shards N   write Slurm scripts: a job array of N shards, then the merge
  report RESULTS.h5       Markdown tables and gnuplot plots of a results file, with
                          bootstrap confidence intervals and paired comparisons
  compare RESULTS.h5 A B  is sweep point A better than B? The paired bootstrap of the
                          difference on their common test clips
  cost FILE [key=value]   build the planned model and report tokens, parameters, MACs and
                          CPU latency (no data needed)
  fbank IN --out OUT.npy  write the log-mel features of one audio file as a NumPy file
  mask FILE --out M.png   apply the experiment's masker to one clip and draw it over the
                          spectrogram and the patch grid
  data keywords --out DIR generate the built-in keywords dataset (Speech Commands V2
                          layout, espeak-ng voices) into DIR
  data instruments --out DIR
                          generate the built-in multi-label instruments dataset (AudioSet
                          layout, General MIDI instruments rendered with libfluidsynth)
  weights export RUN_DIR --out W.h5
                          a run's trained weights as HDF5, named as the original AST / AuM
                          code names them (`weights list W.h5` shows a file)

Options:
  -h, --help              this text; `patchbay <command> --help` explains one command
  --version               version, build (compiler, LibTorch) and thread count

Plugins are looked up in the build's plugins/ folder, then in PATCHBAY_PLUGIN_PATH
(colon-separated folders). Logging goes to stderr; set PATCHBAY_LOG=debug for more.

Examples:
  patchbay plugins
  patchbay plan experiments/quickstart/quickstart.toml patcher.stride=2
  patchbay cost experiments/quickstart/quickstart.toml --json
  patchbay slurm experiments/examples/sweep.toml --shards 4 --time 02:00:00
)";

// Normally the launcher (build/patchbay, launcher.cpp) has set the policy before this
// program loaded libgomp. Started directly (build/patchbay-main), a compute command without
// a policy re-executes itself once with OMP_WAIT_POLICY=PASSIVE (passive_openmp.hpp says
// why). Set OMP_WAIT_POLICY=ACTIVE on a machine of your own to skip this.
void ensure_passive_openmp(const std::string& command, char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || !patchbay::cli::wants_passive_openmp(command)) return;
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  patchbay::log::debug("re-executing {} with OMP_WAIT_POLICY=PASSIVE", command);
  ::execv("/proc/self/exe", argv);  // returns only on failure: then go on as we are
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? patchbay::cli::kExitUsage : patchbay::cli::kExitOk;
  }
  if (args[0] == "--version") {
    fmt::print("{}\n", patchbay::build_summary());
    return patchbay::cli::kExitOk;
  }
  const std::string command = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  ensure_passive_openmp(command, argv);
  patchbay::log::debug("BLAS: {}", patchbay::blas_summary());
  if (command == "run-worker" || command == "run-dist" || command == "cost") patchbay::cli::prepare_compute_process();
  return patchbay::cli::guarded(command, [&]() -> int {
    if (command == "plugins") return patchbay::cli::run_plugins(rest);
    if (command == "plan") return patchbay::cli::run_plan(rest);
    if (command == "cost") return patchbay::cli::run_cost(rest);
    if (command == "fbank") return patchbay::cli::run_fbank(rest);
    if (command == "mask") return patchbay::cli::run_mask(rest);
    if (command == "data") return patchbay::cli::run_data(rest);
    if (command == "report") return patchbay::cli::run_report(rest);
    if (command == "compare") return patchbay::cli::run_compare(rest);
    if (command == "weights") return patchbay::cli::run_weights(rest);
    if (command == "run") return patchbay::cli::run_run(rest);
    if (command == "merge") return patchbay::cli::run_merge(rest);
    if (command == "slurm") return patchbay::cli::run_slurm(rest);
    if (command == "run-dist") return patchbay::cli::run_dist(rest);
    if (command == "run-worker") return patchbay::cli::run_worker(rest);
    fmt::print(stderr, "patchbay: unknown command '{}'; run 'patchbay --help' for the commands\n",
               command);
    return patchbay::cli::kExitUsage;
  });
}

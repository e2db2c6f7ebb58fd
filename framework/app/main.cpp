// patchbay: the command-line host. Parses the command, loads plugins, runs the subcommand.
#include <unistd.h>


#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
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

constexpr const char* kUsageHead = R"(patchbay - spectrogram-patching experiments for audio classification

Usage:
  patchbay <command> [options]

Commands:
)";

constexpr const char* kUsageTail = R"(
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

// The command list of `patchbay --help`, from the command table: each synopsis in a 24-column
// field (alone on its line when longer), its summary wrapped beside it.
std::string usage() {
  constexpr size_t kColumn = 26, kWidth = 90;
  std::string out = kUsageHead;
  for (const auto& c : patchbay::cli::kCommands) {
    const std::string synopsis = c.synopsis;
    if (synopsis.empty()) continue;
    std::string line = "  " + synopsis;
    if (line.size() + 1 > kColumn) {
      out += line + "\n";
      line.clear();
    }
    std::istringstream words(c.summary);
    for (std::string word; words >> word;) {
      if (line.size() < kColumn) line.resize(kColumn, ' ');
      else if (line.size() + 1 + word.size() > kWidth) {
        out += line + "\n";
        line = std::string(kColumn, ' ');
      } else {
        line += ' ';
      }
      line += word;
    }
    out += line + "\n";
  }
  return out + kUsageTail;
}

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
    std::fputs(usage().c_str(), args.empty() ? stderr : stdout);
    return args.empty() ? patchbay::cli::kExitUsage : patchbay::cli::kExitOk;
  }
  if (args[0] == "--version") {
    fmt::print("{}\n", patchbay::build_summary());
    return patchbay::cli::kExitOk;
  }
  const std::string command = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  const patchbay::cli::Command* found = nullptr;
  for (const auto& c : patchbay::cli::kCommands) {
    if (command == c.name) found = &c;
  }
  if (found == nullptr) {
    fmt::print(stderr, "patchbay: unknown command '{}'; run 'patchbay --help' for the commands\n",
               command);
    return patchbay::cli::kExitUsage;
  }
  ensure_passive_openmp(command, argv);
  patchbay::log::debug("BLAS: {}", patchbay::blas_summary());
  if (found->compute == patchbay::cli::kTraining) patchbay::cli::prepare_compute_process();
  return patchbay::cli::guarded(command, [&]() -> int { return found->run(rest); });
}

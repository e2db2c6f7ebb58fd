// The patchbay CLI's subcommands. Each returns the process exit code; errors are thrown
// as patchbay::Error and printed by main().
#pragma once
#include <string>
#include <vector>

namespace patchbay::cli {

int run_plugins(const std::vector<std::string>& args);
int run_plan(const std::vector<std::string>& args);
int run_cost(const std::vector<std::string>& args);
int run_fbank(const std::vector<std::string>& args);
int run_mask(const std::vector<std::string>& args);
int run_data(const std::vector<std::string>& args);
int run_run(const std::vector<std::string>& args);
int run_report(const std::vector<std::string>& args);
int run_compare(const std::vector<std::string>& args);  // paired bootstrap of two sweep points
int run_weights(const std::vector<std::string>& args);
int run_merge(const std::vector<std::string>& args);
int run_slurm(const std::vector<std::string>& args);
int run_dist(const std::vector<std::string>& args);   // one run on several processes (Gloo)
int run_worker(const std::vector<std::string>& args);  // internal: one run, started by run_run

// Exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // the input was refused (bad file, option, plugin)
inline constexpr int kExitUsage = 2;  // the command line itself was wrong

}  // namespace patchbay::cli

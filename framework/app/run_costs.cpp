// Planned runs' costs for the sweep's ETA (contract in run_costs.hpp).
#include "run_costs.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "cli_common.hpp"

namespace patchbay::cli {
namespace {

std::string slot_text(const SlotConfig& slot) {
  std::string text = slot.plugin;
  for (const auto& [k, v] : slot.options.values()) text += " " + k + "=" + to_toml(v);
  return text;
}

std::string family_of(const ResolvedConfig& c) {
  std::string text = "dataset " + slot_text(c.dataset) + "\nbackbone " + slot_text(c.backbone) + "\nfrontend";
  for (const auto& [k, v] : c.frontend.values()) text += " " + k + "=" + to_toml(v);
  return text + "\nbatch " + std::to_string(c.train.get_int("batch_size"));
}

// In the child: each run's tokens, one line each, to `out`.
void write_tokens(const std::vector<const PlannedRun*>& runs, const Registry& registry, std::FILE* out) {
  for (const PlannedRun* run : runs) {
    long long tokens = 1;
    try {
      tokens = std::max<long long>(1, grid_of(run->config, registry).tokens());
    } catch (...) {
    }
    std::fprintf(out, "%lld\n", tokens);
  }
  std::fflush(out);
}

}  // namespace

std::vector<RunCost> run_costs(const std::vector<const PlannedRun*>& runs, const Registry& registry) {
  std::vector<RunCost> costs;
  for (const PlannedRun* run : runs) {
    RunCost c;
    c.family = family_of(run->config);
    c.epochs = static_cast<double>(std::max<int64_t>(1, run->config.train.get_int("epochs")));
    costs.push_back(c);
  }
  if (runs.empty()) return costs;
  int fds[2];
  if (::pipe(fds) != 0) return costs;
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return costs;
  }
  if (pid == 0) {
    ::close(fds[0]);
    std::FILE* out = ::fdopen(fds[1], "w");
    if (out != nullptr) write_tokens(runs, registry, out);
    std::_Exit(0);  // not exit(): the host's atexit handlers and static objects are not ours
  }
  ::close(fds[1]);
  std::FILE* in = ::fdopen(fds[0], "r");
  std::vector<double> tokens;
  for (long long t = 0; in != nullptr && tokens.size() < costs.size() && std::fscanf(in, "%lld", &t) == 1;) {
    tokens.push_back(static_cast<double>(std::max<long long>(1, t)));
  }
  if (in != nullptr) std::fclose(in); else ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  // All or nothing: some runs' tokens beside others' placeholder 1 would skew the fit.
  if (tokens.size() == costs.size()) {
    for (size_t i = 0; i < costs.size(); ++i) costs[i].tokens = tokens[i];
  }
  return costs;
}

}  // namespace patchbay::cli

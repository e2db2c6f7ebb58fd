// Which commands run tensor code and so want OpenMP's passive wait policy; shared by the
// launcher (build/patchbay, launcher.cpp) and the real CLI (build/patchbay-main, main.cpp),
// both reading the command table (commands.def).
//
// Why: OpenMP threads that spin while waiting collapse when the cores are shared (measured
// here: a batch-1 forward pass took 1.9 s instead of 11 ms while two compilers ran). libgomp
// reads OMP_WAIT_POLICY once, when the process loads it with LibTorch, so the policy has to
// be in the environment before patchbay-main starts. `run` is included: its workers are
// forked from it and inherit the policy.
#pragma once
#include <string_view>

#include "command_kinds.hpp"

namespace patchbay::cli {

struct CommandCost {
  std::string_view name;
  CommandCompute compute;
};

inline constexpr CommandCost kCommandCosts[] = {
#define PATCHBAY_COMMAND(name, function, compute, synopsis, summary) {name, compute},
#include "commands.def"
#undef PATCHBAY_COMMAND
};

inline CommandCompute compute_of(std::string_view command) {
  for (const auto& c : kCommandCosts) {
    if (c.name == command) return c.compute;
  }
  return kNoCompute;
}

inline bool wants_passive_openmp(std::string_view command) { return compute_of(command) >= kTensors; }

}  // namespace patchbay::cli

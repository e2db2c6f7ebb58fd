// The patchbay CLI's subcommands, one per row of commands.def. Each takes the words after
// its name and returns the process exit code (exit_codes.hpp); errors are thrown as
// patchbay::Error and printed by guarded() (cli_common.hpp).
#pragma once
#include <string>
#include <vector>

#include "command_kinds.hpp"
#include "exit_codes.hpp"

namespace patchbay::cli {

#define PATCHBAY_COMMAND(name, function, compute, synopsis, summary) \
  int function(const std::vector<std::string>& args);
#include "commands.def"
#undef PATCHBAY_COMMAND

struct Command {
  const char* name;
  int (*run)(const std::vector<std::string>& args);
  CommandCompute compute;
  const char* synopsis;  // empty: internal, not in the help
  const char* summary;
};

inline constexpr Command kCommands[] = {
#define PATCHBAY_COMMAND(name, function, compute, synopsis, summary) \
  {name, &function, compute, synopsis, summary},
#include "commands.def"
#undef PATCHBAY_COMMAND
};

}  // namespace patchbay::cli

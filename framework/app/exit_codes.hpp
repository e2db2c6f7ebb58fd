// The exit codes of every patchbay command.
#pragma once

namespace patchbay::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // the input was refused (bad file, option, plugin)
inline constexpr int kExitUsage = 2;  // the command line itself was wrong

}  // namespace patchbay::cli

// patchbay's own version and build facts, as recorded in results and printed by --version.
#pragma once
#include <string>

#include "patchbay/export.hpp"

namespace patchbay {
PATCHBAY_API const char* version();          // "0.1.0"
PATCHBAY_API const char* git_revision();     // at configure time; "unknown" outside git
PATCHBAY_API std::string build_summary();    // compiler, LibTorch, BLAS, threads
}  // namespace patchbay

// patchbay's own version and build facts, as recorded in results and printed by --version.
#pragma once
#include <string>

#include "patchbay/export.hpp"

namespace patchbay {
PATCHBAY_API const char* version();          // "0.1.0"
PATCHBAY_API const char* git_revision();     // at configure time; "unknown" outside git
PATCHBAY_API std::string build_summary();    // compiler, LibTorch, BLAS, threads
// The BLAS in use: "OpenBLAS 0.3.21 DYNAMIC_ARCH ...; core Haswell; 2 threads (why that core:
// PATCHBAY_BLAS_CHOICE, set by the launcher)"; recorded in every run's results.
PATCHBAY_API std::string blas_summary();
}  // namespace patchbay

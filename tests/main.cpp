// The one doctest main of patchbay's test binary. It first makes the same OpenBLAS core
// choice as build/patchbay's launcher (framework/app/blas_core.hpp), re-executing itself
// when that changes the core, so the tests check the kernels the product runs.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <unistd.h>

#include "../framework/app/blas_core.hpp"

int main(int argc, char** argv) {
  if (patchbay::cli::apply_openblas_core_choice()) ::execv("/proc/self/exe", argv);  // returns only on failure
  return doctest::Context(argc, argv).run();
}

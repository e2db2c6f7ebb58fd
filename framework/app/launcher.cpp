// build/patchbay: a launcher in front of the real CLI, build/patchbay-main (main.cpp).
//
// It sets OMP_WAIT_POLICY=PASSIVE for the commands that compute (passive_openmp.hpp) unless
// the user chose a policy, then replaces itself with patchbay-main from its own folder,
// arguments unchanged. Why a separate program: patchbay-main loads LibTorch (0.5 s, 325
// shared libraries here) and libgomp with it, which reads the policy at load time; without
// the launcher patchbay-main has to re-execute itself to change it and pays that start-up
// twice. This file links nothing but the C++ runtime, so it starts in a millisecond (plus
// ~0.1 s where it loads OpenBLAS, below).
//
// For the same commands and --version it also chooses OpenBLAS's kernels when the user has
// not (OPENBLAS_CORETYPE unset) and the OpenBLAS build would run older ones than the CPU
// can (blas_core.hpp): it loads OpenBLAS, asks which core it detected, and sets
// OPENBLAS_CORETYPE before patchbay-main loads it for real. PATCHBAY_BLAS_CHOICE tells patchbay-main what was decided and why
// (`patchbay --version`, the debug log, every run's results).
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "blas_core.hpp"
#include "passive_openmp.hpp"


int main(int argc, char** argv) {
  if (argc > 1 && std::getenv("OMP_WAIT_POLICY") == nullptr &&
      patchbay::cli::wants_passive_openmp(argv[1])) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  }
  // Only where matrix products run (and --version, which reports the choice): the check
  // loads OpenBLAS, ~0.1 s that `plan` or `report` need not pay.
  if (argc > 1 && (patchbay::cli::wants_passive_openmp(argv[1]) || std::string(argv[1]) == "--version")) {
    patchbay::cli::apply_openblas_core_choice();
  }
  std::string self(4096, '\0');
  const ssize_t n = ::readlink("/proc/self/exe", self.data(), self.size() - 1);
  if (n <= 0) {
    std::fprintf(stderr, "patchbay: cannot find this program's path (/proc/self/exe: %s)\n",
                 std::strerror(errno));
    return 127;
  }
  self.resize(static_cast<size_t>(n));
  const std::string real = self.substr(0, self.rfind('/') + 1) + "patchbay-main";
  ::execv(real.c_str(), argv);
  std::fprintf(stderr,
               "patchbay: cannot start '%s' (%s); it is built beside this launcher: rebuild with "
               "`cmake --build build` (or ./setup.sh)\n",
               real.c_str(), std::strerror(errno));
  return 127;
}

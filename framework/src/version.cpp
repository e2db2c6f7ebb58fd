#include "patchbay/version.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <thread>

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include "patchbay/plugin_abi.hpp"
#include "version_info.hpp"  // generated: PATCHBAY_VERSION, PATCHBAY_GIT_REVISION

#ifndef PATCHBAY_VERSION
#define PATCHBAY_VERSION "0.0.0"
#endif
#ifndef PATCHBAY_GIT_REVISION
#define PATCHBAY_GIT_REVISION "unknown"
#endif

namespace patchbay {

const char* version() { return PATCHBAY_VERSION; }
const char* git_revision() { return PATCHBAY_GIT_REVISION; }

std::string blas_summary() {
  // OpenBLAS's introspection, looked up in the process (LibTorch loaded it); absent for
  // another BLAS.
  using Text = char* (*)();
  using Count = int (*)();
  const auto corename = reinterpret_cast<Text>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const auto config = reinterpret_cast<Text>(::dlsym(RTLD_DEFAULT, "openblas_get_config"));
  const auto threads = reinterpret_cast<Count>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (corename == nullptr || config == nullptr) return "not OpenBLAS (no openblas_get_corename)";
  std::string out = fmt::format("{}; core {}", config(), corename());
  if (threads != nullptr) out += fmt::format("; {} threads", threads());
  if (const char* why = std::getenv("PATCHBAY_BLAS_CHOICE")) out += fmt::format(" ({})", why);
  return out;
}

std::string build_summary() {
  return fmt::format("patchbay {} ({})\nbuild: {}\nintra-op threads: {} (hardware: {})\nBLAS: {}", version(),
                     git_revision(), PATCHBAY_BUILD_ID, at::get_num_threads(),
                     std::thread::hardware_concurrency(), blas_summary());
}

}  // namespace patchbay

#include "patchbay/version.hpp"

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

std::string build_summary() {
  return fmt::format("patchbay {} ({})\nbuild: {}\nintra-op threads: {} (hardware: {})", version(),
                     git_revision(), PATCHBAY_BUILD_ID, at::get_num_threads(),
                     std::thread::hardware_concurrency());
}

}  // namespace patchbay

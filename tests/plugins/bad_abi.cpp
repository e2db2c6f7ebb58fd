// A plugin that reports an ABI version the host does not speak. The host must refuse it
// before calling its register function (which would abort the test if it ran).
#include <cstdlib>

#include "patchbay/plugin_abi.hpp"

static int must_not_run(void*, char*, size_t) { std::abort(); }

extern "C" __attribute__((visibility("default"))) const PatchbayPluginInfo* patchbay_plugin_entry(void) {
  static const PatchbayPluginInfo info = {999, sizeof(PatchbayPluginInfo), PATCHBAY_BUILD_ID,
                                          "bad_abi", "0.0.1", &must_not_run};
  return &info;
}

// A plugin whose build id says another compiler / LibTorch built it.
#include <cstdlib>

#include "patchbay/plugin_abi.hpp"

static int must_not_run(void*, char*, size_t) { std::abort(); }

extern "C" __attribute__((visibility("default"))) const PatchbayPluginInfo* patchbay_plugin_entry(void) {
  static const PatchbayPluginInfo info = {PATCHBAY_PLUGIN_ABI_VERSION, sizeof(PatchbayPluginInfo),
                                          "gcc 4.8.5; cxx11abi 0; libtorch 1.4.0; patchbay abi 1",
                                          "bad_build", "0.0.1", &must_not_run};
  return &info;
}

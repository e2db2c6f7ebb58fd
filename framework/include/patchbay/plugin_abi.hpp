// The binary handshake between the host and a plugin library.
//
// A plugin library exports exactly one C symbol, `patchbay_plugin_entry`, returning a
// pointer to a static PatchbayPluginInfo. The host checks abi_version, struct_size and
// build_id before it calls anything else, then calls register_plugin with its Registrar.
// cmake's patchbay_add_plugin() generates the entry point with PATCHBAY_DEFINE_PLUGIN_ENTRY,
// so plugin sources only define `void register_x(patchbay::Registrar&)`.
//
// The build id names the compiler, the C++ ABI and LibTorch's version: C++ objects
// (tensors, modules, std::function) cross this boundary, which is only sound when both
// sides were built alike. A different build id is refused with "rebuild it".
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>

#include <cstdio>

#include <torch/version.h>

#include "patchbay/error.hpp"
#include "patchbay/registrar.hpp"

// 2: Dataset::skip_bad_clips() added (a new virtual: plugins built before it must be refused).
// 3: Patcher::original_names(), Backbone::original_names() and original_patcher_prefix()
//    added (new virtuals: the weights exchange names tensors as the original code does).
// 4: Masker::apply takes a MaskContext (grid + normalisation) and MaskResult has `mask`.
// 5: Backbone::init_patcher(Patcher&) added.
// 6: the SDK split from the host (patchbay/registrar.hpp); Registrar::add_dataset takes a
//    DatasetGenerator (a new virtual signature); Masker::check(MaskContext) added.
// 7: the TokenDropper kind (Registrar::add_token_dropper) and Backbone::drops_tokens() /
//    forward_kept() added (new virtuals).
// 8: Backbone::weight_layout() added (loading weights trained on another geometry).
#define PATCHBAY_PLUGIN_ABI_VERSION 8
#define PATCHBAY_PLUGIN_ENTRY_SYMBOL "patchbay_plugin_entry"

#define PATCHBAY_STRINGIFY_IMPL(x) #x
#define PATCHBAY_STRINGIFY(x) PATCHBAY_STRINGIFY_IMPL(x)
#define PATCHBAY_BUILD_ID                                                       \
  "gcc " __VERSION__ "; cxx11abi " PATCHBAY_STRINGIFY(_GLIBCXX_USE_CXX11_ABI) \
  "; libtorch " TORCH_VERSION "; patchbay abi " PATCHBAY_STRINGIFY(PATCHBAY_PLUGIN_ABI_VERSION)

extern "C" {
// Returns 0 on success; otherwise writes a NUL-terminated reason into `error`.
typedef int (*PatchbayRegisterFn)(void* registrar, char* error, size_t error_size);

struct PatchbayPluginInfo {
  uint32_t abi_version;   // PATCHBAY_PLUGIN_ABI_VERSION the plugin was built with
  uint32_t struct_size;   // sizeof(PatchbayPluginInfo) on the plugin's side
  const char* build_id;   // PATCHBAY_BUILD_ID on the plugin's side
  const char* name;       // library name, e.g. "fftp"
  const char* version;    // library version, e.g. "0.1.0"
  PatchbayRegisterFn register_plugin;
};

typedef const PatchbayPluginInfo* (*PatchbayPluginEntryFn)(void);
}

namespace patchbay::detail {
// Runs a plugin's register function, turning any exception into an error text so that no
// exception has to unwind through the C entry point.
inline int call_register(void (*fn)(Registrar&), void* registrar, char* error, size_t size) {
  try {
    fn(*static_cast<Registrar*>(registrar));
    return 0;
  } catch (const patchbay::Error& e) {
    std::snprintf(error, size, "[%s] %s", e.id().c_str(), e.what());
  } catch (const std::exception& e) {
    std::snprintf(error, size, "%s", e.what());
  } catch (...) {
    std::snprintf(error, size, "unknown exception");
  }
  return 1;
}
}  // namespace patchbay::detail

#define PATCHBAY_DEFINE_PLUGIN_ENTRY(NAME, VERSION, REGISTER)                                  \
  static int patchbay_register_trampoline(void* registrar, char* error, size_t size) {         \
    return ::patchbay::detail::call_register(&REGISTER, registrar, error, size);               \
  }                                                                                           \
  extern "C" __attribute__((visibility("default"))) const PatchbayPluginInfo*                 \
  patchbay_plugin_entry(void) {                                                               \
    static const PatchbayPluginInfo info = {PATCHBAY_PLUGIN_ABI_VERSION,                      \
                                            sizeof(PatchbayPluginInfo), PATCHBAY_BUILD_ID,    \
                                            NAME, VERSION, &patchbay_register_trampoline};    \
    return &info;                                                                             \
  }

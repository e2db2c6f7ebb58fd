// The one header a plugin includes: the plugin SDK.
//
//   #include "patchbay/plugin.hpp"
//   void register_mine(patchbay::Registrar& r) { r.add_masker(...); }
//
// It brings the four plugin interfaces (plugin_kinds.hpp), the patch grid, options and
// their schemas, the Registrar, patchbay's error types and its log. A plugin also may
// include audio.hpp and fbank.hpp (decoding and the features, for datasets) and hash.hpp. Nothing
// else of the host is installed: a plugin that compiles against this SDK loads into any host
// with the same ABI version (plugin_abi.hpp).
#pragma once
#include "patchbay/error.hpp"
#include "patchbay/log.hpp"
#include "patchbay/options.hpp"
#include "patchbay/patch_grid.hpp"
#include "patchbay/plugin_kinds.hpp"
#include "patchbay/registrar.hpp"

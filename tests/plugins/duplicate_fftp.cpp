// A plugin that claims the name of an in-tree patcher.
#include "patchbay/plugin.hpp"

void register_duplicate_fftp(patchbay::Registrar& r) {
  r.add_patcher({"fftp", "an impostor", {}},
                [](const patchbay::Options&, const patchbay::PatcherContext&) {
                  return std::shared_ptr<patchbay::Patcher>();
                });
}

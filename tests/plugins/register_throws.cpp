// A plugin whose register function fails half-way: the registry must keep nothing of it.
#include "patchbay/error.hpp"
#include "patchbay/plugin.hpp"

namespace {
class Unused final : public patchbay::Masker {
 public:
  patchbay::MaskResult apply(const at::Tensor& s, const patchbay::MaskContext&, at::Generator&) const override {
    return {s, s, {}};
  }
};
}  // namespace

void register_throws(patchbay::Registrar& r) {
  r.add_masker({"half_registered", "registered before the failure", {}},
               [](const patchbay::Options&) { return std::make_shared<Unused>(); });
  throw patchbay::ConfigError("test.register", "this plugin always fails to register");
}

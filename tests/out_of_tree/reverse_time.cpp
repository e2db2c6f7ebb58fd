// An out-of-tree masker: reverses the time axis (a toy augmentation, but a real plugin).
#include <ATen/ATen.h>

#include "patchbay/registry.hpp"

namespace {
class ReverseTime final : public patchbay::Masker {
 public:
  patchbay::MaskResult apply(const at::Tensor& spec, const patchbay::MaskContext&,
                             at::Generator&) const override {
    return {spec.flip({2}), at::zeros({spec.size(0)}, spec.options().dtype(at::kLong)), {}};
  }
};
}  // namespace

void register_reverse_time(patchbay::Registrar& r) {
  patchbay::OptionSchema s;
  s.add_bool("enabled", true, "reverse the time axis");
  r.add_masker({"reverse_time", "reverses the time axis (out-of-tree example)", s},
               [](const patchbay::Options&) { return std::make_shared<ReverseTime>(); });
}

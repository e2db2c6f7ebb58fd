// `none`: the masker of runs without masking. Returns the input unchanged and counts 0 cells.
#include <ATen/ATen.h>

#include "patchbay/plugin.hpp"

namespace {

class NoMasker final : public patchbay::Masker {
 public:
  patchbay::MaskResult apply(const at::Tensor& spec, const patchbay::MaskContext&,
                             at::Generator&) const override {
    return {spec, at::zeros({spec.size(0)}, spec.options().dtype(at::kLong)),
            at::zeros(spec.sizes(), spec.options().dtype(at::kBool))};
  }
};

}  // namespace

void register_none_masker(patchbay::Registrar& registrar) {
  registrar.add_masker({"none", "no masking (the spectrogram passes through)", {}},
                       [](const patchbay::Options&) { return std::make_shared<NoMasker>(); });
}

// An out-of-tree masker, the README's and CONTRIBUTING.md's example verbatim (keep them
// equal): reverses time, per example with probability p.
#include <ATen/ATen.h>

#include "patchbay/plugin.hpp"  // the plugin SDK: all a plugin includes

namespace {
class Flip final : public patchbay::Masker {
 public:
  explicit Flip(double p) : p_(p) {}
  patchbay::MaskResult apply(const at::Tensor& spec, const patchbay::MaskContext&,
                             at::Generator& generator) const override {
    const auto flip = at::rand({spec.size(0), 1, 1}, generator, spec.options()) < p_;
    const auto none = at::zeros({spec.size(0)}, spec.options().dtype(at::kLong));
    return {at::where(flip, spec.flip({2}), spec), none, {}};  // masks no cell
  }

 private:
  double p_;
};
}  // namespace

void register_flip(patchbay::Registrar& r) {
  patchbay::OptionSchema s;
  s.add_real("p", 0.5, "probability of reversing an example", patchbay::Range::between(0, 1));
  r.add_masker({"flip", "reverses time", s},
               [](const patchbay::Options& o) { return std::make_shared<Flip>(o.get_real("p")); });
}

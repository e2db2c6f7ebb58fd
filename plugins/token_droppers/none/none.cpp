// `none`: the token dropper of runs without token dropping: every token reaches the backbone.
// The host never calls it (a run with "none" takes the backbone's plain forward); it exists
// so that [token_dropper] plugin = "none" can be written and swept like any other value.
#include <ATen/ATen.h>

#include "patchbay/plugin.hpp"

namespace {

class NoTokenDropper final : public patchbay::TokenDropper {
 public:
  int64_t kept(const patchbay::PatchGrid& grid) const override { return grid.tokens(); }
  at::Tensor keep(const patchbay::PatchGrid& grid, at::Generator&) const override {
    return at::arange(grid.tokens(), at::kLong);
  }
};

}  // namespace

void register_none_token_dropper(patchbay::Registrar& registrar) {
  registrar.add_token_dropper({"none", "no token dropping (the backbone sees every token)", {}},
                              [](const patchbay::Options&) { return std::make_shared<NoTokenDropper>(); });
}

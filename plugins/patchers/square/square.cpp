// `square`: AST's patch embedding, a Conv2d with kernel (pf, pt) and stride (sf, st) over the
// [1, F, T] log-mel input. Default 16 x 16 with stride 10: 12 x 101 = 1212 tokens on
// 128 x 1024, 12 x 12 = 144 on 128 x 128.
#include <fmt/format.h>

#include "patchbay/plugin.hpp"
#include "patchbay_plugins/conv_patcher.hpp"

void register_square(patchbay::Registrar& registrar) {
  using namespace patchbay;
  OptionSchema s;
  s.add_int_pair("patch_size", {16, 16},
                 "patch height (mel bins) and length (frames): n or [freq, time]", Range::at_least(1));
  s.add_int_pair("stride", {10, 10}, "hop between patches: n or [freq, time]", Range::at_least(1));
  registrar.add_patcher(
      {"square", "AST's square patches: Conv2d with kernel patch_size and stride stride", s},
      [](const Options& o, const PatcherContext& c) {
        const auto size = o.get_int_pair("patch_size");
        const auto stride = o.get_int_pair("stride");
        const auto grid = plugins::make_grid_or_explain(
            fmt::format("patcher 'square' (patch_size = [{}, {}], stride = [{}, {}])", size[0],
                        size[1], stride[0], stride[1]),
            c, size[0], size[1], stride[0], stride[1]);
        return std::make_shared<plugins::ConvPatcher>("square", grid, c.embed_dim);
      });
}

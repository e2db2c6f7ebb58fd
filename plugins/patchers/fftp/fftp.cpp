// `fftp`: full-frequency temporal patching (FFTP paper, docs/reference.md §1). A Conv2d with
// kernel (F, Tp) and stride (F, st): every token spans all mel bins and Tp frames, giving
// one row of N = floor((T - Tp) / st) + 1 tokens.
#include <fmt/format.h>

#include "patchbay/plugin.hpp"
#include "patchbay_plugins/conv_patcher.hpp"

void register_fftp(patchbay::Registrar& registrar) {
  using namespace patchbay;
  OptionSchema s;
  s.add_int("patch_frames", 16, "frames per patch (Tp); each patch spans every mel bin",
            Range::at_least(1));
  s.add_int("stride", 4, "hop between patches in frames (st)", Range::at_least(1));
  registrar.add_patcher(
      {"fftp", "full-frequency temporal patches: kernel (F, patch_frames), stride (F, stride)", s},
      [](const Options& o, const PatcherContext& c) {
        const int64_t tp = o.get_int("patch_frames");
        const int64_t st = o.get_int("stride");
        const auto grid = plugins::make_grid_or_explain(
            fmt::format("patcher 'fftp' (patch_frames = {}, stride = {})", tp, st), c, c.freq_bins,
            tp, c.freq_bins, st);
        return std::make_shared<plugins::ConvPatcher>("fftp", grid, c.embed_dim);
      });
}

// `specmask`: patch-aligned masking with a fixed budget of spectrogram cells per example
// (FFTP paper, docs/reference.md §1). Part of the budget masks full-frequency time bands (every
// mel bin of a few frames), the rest masks localized time-frequency rectangles.
//
// How the budget is quantized (F bins, T frames, budget b, share s, rectangle rf x rt):
//   1. Full-frequency frames: n = the whole number of frames nearest to s * b / F (at most T
//      and at most floor(b / F)), masking n * F cells, split into min(full_frequency_masks, n)
//      bands whose widths differ by at most one frame. At b = 1,024 on 128 bins and s = 0.7:
//      5.6 -> 6 frames = 768 cells (75 %); flooring would give 5 frames (62.5 %). The realised
//      share is what runs record (full_frequency_cells_per_example).
//   2. The rest, L = b - n * F cells (this absorbs step 1's rounding), goes to rectangles:
//      floor(L / (rf * rt)) rectangles of rf x rt, then, if at least rf cells remain, one
//      narrower rectangle of rf x floor(rest / rf). Fewer than rf cells stay unmasked.
//   So without overlaps an example has between b - rf + 1 and b cells masked. A budget of
//   F * T cells or more masks the whole spectrogram; check() refuses such a run.
// Alignment (align = true): time starts are multiples of the patcher's time stride; rectangle
//   frequency starts are multiples of its frequency stride when the grid has several rows
//   (square patches) and free when it has one (FFTP: each token already spans every bin).
// Overlaps: each mask tries up to 32 random aligned positions to find one that covers no
//   masked cell; if none is free it takes the last position tried and overlaps. The reported
//   count is the number of distinct cells masked, so overlaps show up as a lower count.
// Fill: the example's mean before masking (the paper), 0 (the normalised
//   dataset mean), or fill_value.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "patchbay/error.hpp"
#include "patchbay/plugin.hpp"
#include "patchbay_plugins/draw.hpp"

namespace {

using patchbay::plugins::Draw;

constexpr int kPlacementTries = 32;

struct Rect {
  int64_t f0, f1, t0, t1;  // half-open
};

class SpecMask final : public patchbay::Masker {
 public:
  explicit SpecMask(const patchbay::Options& o)
      : budget_(o.get_int("budget")), share_(o.get_real("full_frequency_share")),
        bands_(o.get_int("full_frequency_masks")), rect_(o.get_int_pair("rect_size")),
        align_(o.get_bool("align")), fill_(o.get_string("fill")), fill_value_(o.get_real("fill_value")) {}

  // A budget of the whole spectrogram or more masks every cell: the model would only ever
  // see the fill value. apply() would do it (the quantization above); a run is refused.
  void check(const patchbay::MaskContext& context) const override {
    const int64_t cells = context.grid.freq_bins * context.grid.frames;
    if (budget_ >= cells) {
      throw patchbay::ConfigError(
          "specmask.budget",
          fmt::format("masker 'specmask': budget = {} cells is the whole {} x {} spectrogram ({} cells) "
                      "or more, so every cell would be masked; use a budget below {} (the paper: "
                      "1,024 for 128 x 128, 25,600 for 128 x 1,024)",
                      budget_, context.grid.freq_bins, context.grid.frames, cells, cells));
    }
  }

  patchbay::MaskResult apply(const at::Tensor& spec, const patchbay::MaskContext& context,
                             at::Generator& generator) const override {
    const patchbay::PatchGrid& grid = context.grid;
    if (spec.dim() != 3) {
      throw patchbay::ShapeError("shape.masker_input",
                                 fmt::format("masker 'specmask' expects [B, F, T], got [{}]",
                                             fmt::join(spec.sizes(), ", ")));
    }
    const int64_t batch = spec.size(0), bins = spec.size(1), frames = spec.size(2);
    if (grid.freq_bins != bins || grid.frames != frames) {
      throw patchbay::ShapeError(
          "shape.masker_grid",
          fmt::format("masker 'specmask' got a {} x {} spectrogram but a patch grid for {} x {}",
                      bins, frames, grid.freq_bins, grid.frames));
    }
    const Plan plan = plan_for(bins, frames);
    const int64_t time_step = align_ ? grid.stride_time : 1;
    const int64_t freq_step = align_ && grid.rows > 1 ? grid.stride_freq : 1;

    auto mask = at::zeros({batch, bins, frames}, at::kBool);
    bool* cells = mask.data_ptr<bool>();
    {
      Draw draw(generator);
      for (int64_t b = 0; b < batch; ++b) {
        bool* m = cells + b * bins * frames;
        if (plan.everything) {
          std::fill(m, m + bins * frames, true);
          continue;
        }
        for (int64_t w : plan.band_widths) {
          place(draw, m, bins, frames, bins, w, bins, time_step);  // every bin: frequency step moot
        }
        for (const auto& [h, w] : plan.rects) place(draw, m, bins, frames, h, w, freq_step, time_step);
      }
    }
    const auto on_device = mask.to(spec.device());
    at::Tensor fill;
    if (fill_ == "example_mean") {
      fill = spec.mean({1, 2}, /*keepdim=*/true);
    } else {
      fill = at::full({}, fill_ == "zero" ? 0.0 : fill_value_, spec.options());
    }
    return {at::where(on_device, fill, spec), on_device.flatten(1).sum(1), on_device};
  }

  struct Plan {
    bool everything = false;                           // budget >= F * T
    std::vector<int64_t> band_widths;                  // full-frequency bands, in frames
    std::vector<std::pair<int64_t, int64_t>> rects;   // (bins, frames)
  };

  // The quantization described at the top of the file.
  Plan plan_for(int64_t bins, int64_t frames) const {
    Plan plan;
    plan.everything = budget_ >= bins * frames;
    const int64_t budget = std::min(budget_, bins * frames);
    const int64_t nearest = std::llround(share_ * static_cast<double>(budget) / static_cast<double>(bins));
    const int64_t ff_frames = std::min({frames, budget / bins, nearest});
    const int64_t n_bands = std::min(bands_, ff_frames);
    for (int64_t i = 0; i < n_bands; ++i) {
      plan.band_widths.push_back(ff_frames / n_bands + (i < ff_frames % n_bands ? 1 : 0));
    }
    const int64_t rf = std::min(rect_[0], bins), rt = std::min(rect_[1], frames);
    int64_t local = budget - ff_frames * bins;
    for (; local >= rf * rt; local -= rf * rt) plan.rects.emplace_back(rf, rt);
    if (local >= rf) plan.rects.emplace_back(rf, local / rf);
    return plan;
  }

 private:
  // Places one h x w mask at a random aligned position, preferring one that covers no masked
  // cell.
  static void place(Draw& draw, bool* m, int64_t bins, int64_t frames, int64_t h, int64_t w,
                    int64_t freq_step, int64_t time_step) {
    const int64_t f_slots = (bins - h) / freq_step + 1;
    const int64_t t_slots = (frames - w) / time_step + 1;
    Rect r{};
    for (int tries = 0; tries < kPlacementTries; ++tries) {
      r.f0 = draw.below(f_slots) * freq_step;
      r.t0 = draw.below(t_slots) * time_step;
      r.f1 = r.f0 + h;
      r.t1 = r.t0 + w;
      if (is_free(m, frames, r)) break;
    }
    for (int64_t f = r.f0; f < r.f1; ++f) std::fill(m + f * frames + r.t0, m + f * frames + r.t1, true);
  }

  static bool is_free(const bool* m, int64_t frames, const Rect& r) {
    for (int64_t f = r.f0; f < r.f1; ++f) {
      for (int64_t t = r.t0; t < r.t1; ++t) {
        if (m[f * frames + t]) return false;
      }
    }
    return true;
  }

  int64_t budget_;
  double share_;
  int64_t bands_;
  std::array<int64_t, 2> rect_;
  bool align_;
  std::string fill_;
  double fill_value_;
};

}  // namespace

void register_specmask(patchbay::Registrar& registrar) {
  using namespace patchbay;
  OptionSchema s;
  s.add_int("budget", 1024, "cells masked per example (1024 for 128 x 128 inputs, 25600 for "
            "AudioSet-length ones)", Range::at_least(0));
  s.add_real("full_frequency_share", 0.7, "share of the budget for full-frequency time bands; "
             "the rest goes to rectangles", Range::between(0, 1));
  s.add_int("full_frequency_masks", 2, "number of full-frequency bands the share is split into",
            Range::at_least(1));
  s.add_int_pair("rect_size", {16, 16}, "rectangle height (bins) and width (frames): n or [f, t]",
                 Range::at_least(1));
  s.add_bool("align", true, "snap mask starts to the patcher's grid (its strides)");
  s.add_choice("fill", "example_mean", {"example_mean", "zero", "value"},
               "masked cells take the example's mean, 0 (the normalised dataset mean) or fill_value");
  s.add_real("fill_value", 0.0, "value of masked cells when fill = \"value\"");
  registrar.add_masker(
      {"specmask", "patch-aligned masking with a fixed cell budget: full-frequency bands + rectangles", s},
      [](const Options& o) { return std::make_shared<SpecMask>(o); });
}

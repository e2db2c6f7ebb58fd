// `specaugment`: the SpecAugment baseline as AST applies it (docs/reference.md §5), per example:
// `freq_masks` frequency masks and `time_masks` time masks. As torchaudio's mask_along_axis:
// v = U[0, 1) * max_width, width = floor(v), start = floor(U[0, 1) * (size - v)), so the width
// is uniform in [0, max_width) and the mask stays inside the spectrogram.
//
// The fill: AST (YuanGongND/ast src/dataloader.py, __getitem__) masks the log-mel *before*
// normalising, with 0, which becomes (0 - norm_mean) / (2 norm_std) after it (about 0.615
// with AST's Speech Commands statistics). patchbay masks the normalised spectrogram, so
// fill = "raw_zero" (the default) puts that value there, from the run's normalisation
// (MaskContext); "value" puts fill_value (0 is the normalised dataset mean), and
// "example_mean" each example's mean.
#include <ATen/ATen.h>
#include <fmt/format.h>

#include "patchbay/error.hpp"
#include "patchbay/plugin.hpp"
#include "patchbay_plugins/draw.hpp"

namespace {

using patchbay::plugins::Draw;

class SpecAugment final : public patchbay::Masker {
 public:
  explicit SpecAugment(const patchbay::Options& o)
      : freq_masks_(o.get_int("freq_masks")), time_masks_(o.get_int("time_masks")),
        max_freq_(o.get_int("max_freq")), max_time_(o.get_int("max_time")),
        fill_(o.get_string("fill")), fill_value_(o.get_real("fill_value")) {}

  patchbay::MaskResult apply(const at::Tensor& spec, const patchbay::MaskContext& context,
                             at::Generator& generator) const override {
    if (spec.dim() != 3) {
      throw patchbay::ShapeError("shape.masker_input",
                                 fmt::format("masker 'specaugment' expects [B, F, T], got [{}]",
                                             fmt::join(spec.sizes(), ", ")));
    }
    const int64_t batch = spec.size(0), bins = spec.size(1), frames = spec.size(2);
    auto freq = at::zeros({batch, bins}, at::kBool);
    auto time = at::zeros({batch, frames}, at::kBool);
    {
      Draw draw(generator);
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t k = 0; k < freq_masks_; ++k) mask_along(draw, freq[b], bins, max_freq_);
        for (int64_t k = 0; k < time_masks_; ++k) mask_along(draw, time[b], frames, max_time_);
      }
    }
    const auto mask = (freq.unsqueeze(2) | time.unsqueeze(1)).to(spec.device());
    at::Tensor fill;
    if (fill_ == "example_mean") {
      fill = spec.mean({1, 2}, /*keepdim=*/true);
    } else {
      fill = at::full({}, fill_ == "raw_zero" ? context.normalised(0.0) : fill_value_, spec.options());
    }
    return {at::where(mask, fill, spec), mask.flatten(1).sum(1), mask};
  }

 private:
  static void mask_along(Draw& draw, at::Tensor row, int64_t size, int64_t max_width) {
    const double v = draw.uniform() * static_cast<double>(std::min(max_width, size));
    const auto start = static_cast<int64_t>(draw.uniform() * (static_cast<double>(size) - v));
    const auto width = static_cast<int64_t>(v);
    if (width > 0) row.slice(0, start, start + width).fill_(true);
  }

  int64_t freq_masks_, time_masks_, max_freq_, max_time_;
  std::string fill_;
  double fill_value_;
};

}  // namespace

void register_specaugment(patchbay::Registrar& registrar) {
  using namespace patchbay;
  OptionSchema s;
  s.add_int("freq_masks", 1, "frequency masks per example", Range::at_least(0));
  s.add_int("time_masks", 1, "time masks per example", Range::at_least(0));
  s.add_int("max_freq", 48, "frequency mask width is uniform in [0, max_freq) bins (AST: 48)",
            Range::at_least(0));
  s.add_int("max_time", 48, "time mask width is uniform in [0, max_time) frames (AST: 48 for "
            "Speech Commands, 192 for AudioSet)", Range::at_least(0));
  s.add_choice("fill", "raw_zero", {"raw_zero", "value", "example_mean"},
               "masked cells take raw log-mel 0 after normalisation (AST's SpecAugment, "
               "(0 - mean) / (2 std)), fill_value, or the example's mean");
  s.add_real("fill_value", 0.0, "value of masked cells when fill = \"value\" (on the normalised "
             "spectrogram: 0 is the dataset mean)");
  registrar.add_masker({"specaugment", "AST's SpecAugment: random frequency and time bands", s},
                       [](const Options& o) { return std::make_shared<SpecAugment>(o); });
}

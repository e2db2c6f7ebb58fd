// Interim implementation of features.hpp without the cache (the cached one replaces it).
#include "patchbay/features.hpp"

#include <ATen/ATen.h>

#include "patchbay/error.hpp"

namespace patchbay {

FeatureSet load_features(const std::vector<Clip>& clips, const FeatureRequest& request) {
  const Fbank fbank(request.frontend);
  FeatureSet out;
  std::vector<at::Tensor> rows;
  for (size_t i = 0; i < clips.size(); ++i) {
    try {
      const auto wave = read_audio(clips[i].path, request.frontend.sample_rate);
      rows.push_back(pad_or_crop(fbank.compute(wave), request.frontend.target_frames));
      out.clip_index.push_back(i);
    } catch (const DataError& e) {
      if (!request.skip_bad_clips) throw;
      out.skipped.push_back({clips[i].path.string(), e.what()});
    }
    if (request.progress && (i % 64 == 0 || i + 1 == clips.size())) request.progress(i + 1, clips.size());
  }
  out.computed = rows.size();
  out.features = rows.empty() ? at::zeros({0, request.frontend.target_frames, request.frontend.num_mel_bins})
                              : at::stack(rows).contiguous();
  return out;
}

FeatureStats feature_stats(const at::Tensor& features) {
  FeatureStats s;
  if (features.numel() == 0) return s;
  const auto d = features.to(at::kDouble);
  s.mean = d.mean().item<double>();
  s.std = d.std(/*unbiased=*/false).item<double>();
  return s;
}

}  // namespace patchbay

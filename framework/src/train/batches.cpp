#include "train/batches.hpp"

#include <algorithm>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "patchbay/error.hpp"

namespace patchbay {

SplitData load_split(const Dataset& dataset, Split split, const FeatureRequest& request, int64_t num_classes) {
  const auto clips = dataset.clips(split);
  FeatureSet fs = load_features(clips, request);
  SplitData d;
  d.features = fs.features;
  d.skipped = fs.skipped;
  const auto n = static_cast<int64_t>(fs.clip_index.size());
  d.labels = at::zeros({n}, at::kLong);
  d.multi_hot = at::zeros({n, num_classes});
  auto labels = d.labels.accessor<int64_t, 1>();
  auto hot = d.multi_hot.accessor<float, 2>();
  for (int64_t i = 0; i < n; ++i) {
    const Clip& clip = clips[fs.clip_index[static_cast<size_t>(i)]];
    if (clip.labels.empty()) {
      throw DataError("data.no_label",
                      fmt::format("clip '{}' has no label; fix the dataset's label list", clip.path.string()));
    }
    labels[i] = clip.labels.front();
    d.ids.push_back(clip.id);
    d.paths.push_back(clip.path);
    for (int64_t l : clip.labels) {
      if (l < 0 || l >= num_classes) {
        throw DataError("data.bad_label", fmt::format("clip '{}' has label index {} outside 0..{}",
                                                      clip.path.string(), l, num_classes - 1));
      }
      hot[i][l] = 1.0f;
    }
  }
  return d;
}

std::vector<MixDraw> draw_mixup(int64_t examples, int64_t split_size, double p, double alpha,
                                at::Generator& generator) {
  std::vector<MixDraw> draws(static_cast<size_t>(examples));
  if (p <= 0.0 || examples == 0) return draws;
  // Three vectorised draws in a fixed order: coins, partners, the Beta's two gammas.
  const auto coins = at::rand({examples}, generator, at::kDouble);
  const auto partners = at::randint(split_size, {examples}, generator, at::kLong);
  const auto gammas = at::_standard_gamma(at::full({examples, 2}, alpha, at::kDouble), generator);
  const auto lambdas = gammas.select(1, 0) / gammas.sum(1);
  const auto c = coins.accessor<double, 1>();
  const auto z = partners.accessor<int64_t, 1>();
  const auto l = lambdas.accessor<double, 1>();
  for (int64_t i = 0; i < examples; ++i) {
    if (c[i] < p) draws[static_cast<size_t>(i)] = {z[i], l[i]};
  }
  return draws;
}

BatchMaker::BatchMaker(const SplitData& data, Normaliser norm, MixupMode mode, FbankOptions fbank)
    : data_(data), norm_(norm), mode_(mode), fbank_options_(fbank), fbank_(fbank) {}

at::Tensor BatchMaker::mixed_waveform_features(int64_t row, const MixDraw& draw) const {
  // As AST's _wav2fbank: each waveform's mean removed, the partner zero-padded or cut to the
  // example's length, then mixed (the fbank removes the mixture's mean again).
  const auto decode = [&](int64_t r) {
    at::Tensor w = read_audio(data_.paths[static_cast<size_t>(r)], fbank_options_.sample_rate, fbank_options_.channel).samples;
    return w - w.mean();
  };
  const at::Tensor a = decode(row);
  at::Tensor z = decode(draw.partner);
  const int64_t len = a.size(0);
  z = z.size(0) >= len ? z.slice(0, 0, len) : at::constant_pad_nd(z, {0, len - z.size(0)});
  Waveform mixed;
  mixed.samples = (draw.lambda * a + (1.0 - draw.lambda) * z).contiguous();
  mixed.sample_rate = fbank_options_.sample_rate;
  mixed.source = data_.paths[static_cast<size_t>(row)].string();
  return pad_or_crop(fbank_.compute(mixed), fbank_options_.target_frames);
}

Batch BatchMaker::make(const std::vector<int64_t>& rows, const std::vector<MixDraw>& draws) const {
  Batch b;
  b.rows = at::tensor(rows, at::kLong);
  at::Tensor features = data_.features.index_select(0, b.rows);  // [B, T, F], a copy
  b.targets = data_.multi_hot.index_select(0, b.rows);
  b.labels = data_.labels.index_select(0, b.rows);
  for (size_t i = 0; i < draws.size(); ++i) {
    const MixDraw& d = draws[i];
    if (d.partner < 0) continue;
    const auto at_i = static_cast<int64_t>(i);
    if (mode_ == MixupMode::waveform) {
      features[at_i].copy_(mixed_waveform_features(rows[i], d));
    } else {
      features[at_i].mul_(d.lambda).add_(data_.features[d.partner], 1.0 - d.lambda);
    }
    b.targets[at_i].mul_(d.lambda).add_(data_.multi_hot[d.partner], 1.0 - d.lambda);
  }
  b.spec = ((features.transpose(1, 2) - norm_.mean) / norm_.scale).contiguous();
  return b;
}

Prefetcher::Prefetcher(const BatchMaker& maker, std::vector<int64_t> order, std::vector<MixDraw> draws,
                       int64_t batch_size, int threads)
    : maker_(maker), order_(std::move(order)), draws_(std::move(draws)), batch_size_(batch_size),
      depth_(threads <= 0 ? 0 : static_cast<size_t>(2 * threads)) {
  batches_ = (static_cast<int64_t>(order_.size()) + batch_size_ - 1) / batch_size_;
  fill();
}

Prefetcher::~Prefetcher() {
  for (auto& f : pending_) f.wait();
}

Batch Prefetcher::next() {
  Batch b;
  if (depth_ == 0) {
    b = make(next_);
  } else {
    auto future = std::move(pending_.front());
    pending_.pop_front();
    b = future.get();
  }
  ++next_;
  fill();
  return b;
}

Batch Prefetcher::make(int64_t index) const {
  const auto begin = static_cast<size_t>(index * batch_size_);
  const auto end = std::min(begin + static_cast<size_t>(batch_size_), order_.size());
  const std::vector<int64_t> rows(order_.begin() + static_cast<std::ptrdiff_t>(begin),
                                  order_.begin() + static_cast<std::ptrdiff_t>(end));
  std::vector<MixDraw> draws;
  if (!draws_.empty()) {
    draws.assign(draws_.begin() + static_cast<std::ptrdiff_t>(begin), draws_.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return maker_.make(rows, draws);
}

void Prefetcher::fill() {
  if (depth_ == 0) return;
  while (pending_.size() < depth_ && issued_ < batches_) {
    const int64_t index = issued_++;
    pending_.push_back(std::async(std::launch::async, [this, index] { return make(index); }));
  }
}

}  // namespace patchbay

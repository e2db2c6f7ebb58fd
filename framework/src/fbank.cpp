// Kaldi-compatible log-mel filterbank, matching torchaudio.compliance.kaldi.fbank.
//
// The frame preparation (DC removal, pre-emphasis, window, zero padding) is one pass in
// plain C++ straight into a [T, fft_size] buffer; pocketfft's real FFT (ATen) transforms all
// frames at once; the power spectrum and the mel projection are one fused pass over each
// frame using the sparse filters; ATen's vectorised log finishes.
// Small tensors that torchaudio builds with float32 ops (window, mel filters) are built here
// with the same ATen ops in the same order, so the filters agree bit for bit.
#include <cfloat>
#include <cmath>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "patchbay/error.hpp"
#include "patchbay/fbank.hpp"
#include "patchbay/options.hpp"

namespace patchbay {
namespace {

FbankWindow parse_window(const std::string& name) {
  if (name == "hanning") return FbankWindow::hanning;
  if (name == "hamming") return FbankWindow::hamming;
  if (name == "povey") return FbankWindow::povey;
  if (name == "rectangular") return FbankWindow::rectangular;
  if (name == "blackman") return FbankWindow::blackman;
  throw ConfigError("frontend.options", fmt::format("frontend window '{}' is unknown; use one of "
                                                    "hanning, hamming, povey, rectangular, blackman",
                                                    name));
}

Normalization parse_normalization(const std::string& name) {
  if (name == "train_split") return Normalization::train_split;
  if (name == "fixed") return Normalization::fixed;
  if (name == "none") return Normalization::none;
  throw ConfigError("frontend.options", fmt::format("frontend normalize '{}' is unknown; use one "
                                                    "of train_split, fixed, none",
                                                    name));
}

[[noreturn]] void bad_options(const std::string& what) {
  throw ConfigError("frontend.options", fmt::format("[frontend] {}", what));
}

double mel_scale(double hz) { return 1127.0 * std::log(1.0 + hz / 700.0); }

at::Tensor make_window(const FbankOptions& o) {
  const int64_t n = o.window_length();
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  switch (o.window) {
    case FbankWindow::hanning: return at::hann_window(n, /*periodic=*/false, f32);
    case FbankWindow::hamming: return at::hamming_window(n, false, 0.54, 0.46, f32);
    case FbankWindow::povey: return at::hann_window(n, false, f32).pow(0.85);
    case FbankWindow::rectangular: return at::ones({n}, f32);
    case FbankWindow::blackman: {
      constexpr double kCoeff = 0.42;  // Kaldi's blackman_coeff
      const double a = 2.0 * M_PI / static_cast<double>(n - 1);
      const at::Tensor i = at::arange(n, f32);
      return (kCoeff - 0.5 * at::cos(i * a)) + (0.5 - kCoeff) * at::cos(i * (2.0 * a));
    }
  }
  return {};
}

// Triangular filters [fft_size / 2 + 1, F]: rows are FFT bins, the Nyquist row is zero.
at::Tensor make_mel_banks(const FbankOptions& o) {
  const int64_t bins = o.num_mel_bins;
  const int64_t fft = o.fft_size();
  const double nyquist = 0.5 * static_cast<double>(o.sample_rate);
  const double high = o.high_freq <= 0.0 ? o.high_freq + nyquist : o.high_freq;
  const double fft_bin_width = static_cast<double>(o.sample_rate) / static_cast<double>(fft);
  const double mel_low = mel_scale(o.low_freq);
  const double mel_high = mel_scale(high);
  const double delta = (mel_high - mel_low) / static_cast<double>(bins + 1);

  // float32 throughout, as torchaudio computes them (int64 index x double scalar -> float32).
  const at::Tensor bin = at::arange(bins, at::kLong).unsqueeze(1);
  const at::Tensor left = mel_low + bin * delta;
  const at::Tensor center = mel_low + (bin + 1.0) * delta;
  const at::Tensor right = mel_low + (bin + 2.0) * delta;
  const at::Tensor freq = fft_bin_width * at::arange(fft / 2, at::kFloat);
  const at::Tensor mel = (1127.0 * (1.0 + freq / 700.0).log()).unsqueeze(0);  // [1, fft/2]
  const at::Tensor up = (mel - left) / (center - left);
  const at::Tensor down = (right - mel) / (right - center);
  const at::Tensor banks = at::clamp_min(at::min(up, down), 0.0);  // [F, fft/2]
  // Kaldi has no filter weight on the Nyquist bin. Kept [F, K] in memory and handed out as
  // its transposed view: the layout of torchaudio's banks.T, for callers who project a
  // spectrum with a dense torch.mm as torchaudio does.
  return at::constant_pad_nd(banks, {0, 1}, 0.0).contiguous().t();
}

}  // namespace

FbankOptions FbankOptions::from(const Options& f) {
  FbankOptions o;
  o.sample_rate = f.get_int("sample_rate");
  o.num_mel_bins = f.get_int("num_mel_bins");
  o.target_frames = f.get_int("target_frames");
  o.frame_length_ms = f.get_real("frame_length_ms");
  o.frame_shift_ms = f.get_real("frame_shift_ms");
  o.low_freq = f.get_real("low_freq");
  o.high_freq = f.get_real("high_freq");
  o.preemphasis = f.get_real("preemphasis");
  o.dither = f.get_real("dither");
  o.window = parse_window(f.get_string("window"));
  o.normalize = parse_normalization(f.get_string("normalize"));
  o.norm_mean = f.get_real("norm_mean");
  o.norm_std = f.get_real("norm_std");
  o.channel = f.get_string("channel") == "mean" ? ChannelMix::mean : ChannelMix::first;
  return o;
}

// Same expression and evaluation order as torchaudio (rate * ms * 0.001, truncated), so
// rates like 22050 Hz give the same frame sizes.
int64_t FbankOptions::window_length() const {
  return static_cast<int64_t>(static_cast<double>(sample_rate) * frame_length_ms * 0.001);
}

int64_t FbankOptions::window_shift() const {
  return static_cast<int64_t>(static_cast<double>(sample_rate) * frame_shift_ms * 0.001);
}

int64_t FbankOptions::fft_size() const {
  const int64_t n = window_length();
  if (!round_to_power_of_two) return n;
  int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

int64_t FbankOptions::num_frames(int64_t samples) const {
  const int64_t n = window_length();
  const int64_t shift = window_shift();
  if (samples < n || shift <= 0) return 0;
  return 1 + (samples - n) / shift;
}

void FbankOptions::validate() const {
  const FbankOptions& o = *this;
  const double nyquist = 0.5 * static_cast<double>(o.sample_rate);
  const double high = o.high_freq <= 0.0 ? o.high_freq + nyquist : o.high_freq;
  if (o.sample_rate <= 0) bad_options(fmt::format("sample_rate = {} must be positive", o.sample_rate));
  if (o.window_length() < 2) {
    bad_options(fmt::format("frame_length_ms = {} gives a {}-sample window at {} Hz; it needs "
                            "at least 2 samples",
                            o.frame_length_ms, o.window_length(), o.sample_rate));
  }
  if (o.window_shift() < 1) {
    bad_options(fmt::format("frame_shift_ms = {} gives no whole sample at {} Hz; raise it",
                            o.frame_shift_ms, o.sample_rate));
  }
  if (o.fft_size() % 2 != 0) {
    bad_options(fmt::format("the FFT size {} is odd; choose a frame_length_ms giving an even "
                            "number of samples",
                            o.fft_size()));
  }
  if (o.num_mel_bins < 4) bad_options(fmt::format("num_mel_bins = {} must be at least 4", o.num_mel_bins));
  if (!(o.low_freq >= 0.0 && o.low_freq < nyquist && high > 0.0 && high <= nyquist &&
        o.low_freq < high)) {
    bad_options(fmt::format("the mel range low_freq = {} .. high_freq = {} (i.e. {} Hz) must lie "
                            "within 0 .. {} Hz (Nyquist at sample_rate {}) with low < high",
                            o.low_freq, o.high_freq, high, nyquist, o.sample_rate));
  }
  if (o.preemphasis < 0.0 || o.preemphasis > 1.0) {
    bad_options(fmt::format("preemphasis = {} must be within 0 .. 1", o.preemphasis));
  }
}

Fbank::Fbank(FbankOptions options) : options_(std::move(options)) {
  options_.validate();
  const auto& o = options_;
  window_ = make_window(o).contiguous();
  mel_banks_ = make_mel_banks(o);  // [K, F] view of a contiguous [F, K]

  // The nonzero span of every filter row (the weights are exactly those of mel_banks_).
  const at::Tensor rows = mel_banks_.t().contiguous();  // [F, K]
  const int64_t bins = rows.size(1);
  const float* w = rows.data_ptr<float>();
  filter_offset_.push_back(0);
  for (int64_t f = 0; f < o.num_mel_bins; ++f) {
    const float* row = w + f * bins;
    int64_t first = 0;
    while (first < bins && row[first] == 0.0f) ++first;
    int64_t last = bins;
    while (last > first && row[last - 1] == 0.0f) --last;
    filter_first_bin_.push_back(static_cast<int32_t>(first));
    filter_weights_.insert(filter_weights_.end(), row + first, row + last);
    filter_offset_.push_back(static_cast<int32_t>(filter_weights_.size()));
  }
}

at::Tensor Fbank::compute(const Waveform& wave) const {
  const auto& o = options_;
  const std::string name = wave.source.empty() ? std::string("waveform") : "'" + wave.source + "'";
  if (!wave.samples.defined() || wave.samples.dim() != 1) {
    throw ShapeError("shape.waveform",
                     fmt::format("fbank of {} expects mono samples [n], got {} dimensions", name,
                                 wave.samples.defined() ? wave.samples.dim() : 0));
  }
  if (wave.sample_rate != o.sample_rate) {
    throw ConfigError("frontend.sample_rate",
                      fmt::format("fbank of {}: the waveform is at {} Hz but the front end runs at "
                                  "{} Hz; decode with read_audio(file, {}) to resample",
                                  name, wave.sample_rate, o.sample_rate, o.sample_rate));
  }
  const int64_t n = wave.samples.size(0);
  const int64_t frames = o.num_frames(n);
  const int64_t len = o.window_length();
  const int64_t shift = o.window_shift();
  const int64_t fft = o.fft_size();
  if (frames == 0) {
    throw DataError("data.too_short",
                    fmt::format("audio {}: {} samples ({:.1f} ms at {} Hz) is shorter than one "
                                "{}-sample analysis frame; remove the clip or pad it",
                                name, n, 1000.0 * static_cast<double>(n) / o.sample_rate,
                                o.sample_rate, len));
  }

  at::Tensor x = wave.samples.to(at::kFloat).contiguous();
  // AST's loader: waveform - waveform.mean(), with the same float32 reduction.
  if (o.subtract_mean) x = x - x.mean();

  // Frames as a strided view of the samples, [T, len]; with dither they become a copy.
  at::Tensor view = x.as_strided({frames, len}, {shift, 1});
  if (o.dither != 0.0) view = view + at::randn({frames, len}, at::kFloat) * o.dither;
  // Per-frame means through ATen's own float reduction on the same strided view: near the
  // log floor the features are rounding noise, and only the same summation order reproduces
  // torchaudio's values there.
  at::Tensor row_means;
  if (o.remove_dc_offset) row_means = view.mean(1);
  // Read the frames in place: frame t starts view.stride(0) samples after frame t - 1 (the
  // hop, or the window length for the dithered copy).
  const float* frame_data = view.data_ptr<float>();
  const int64_t frame_step = view.stride(0);
  const float* means = row_means.defined() ? row_means.data_ptr<float>() : nullptr;

  at::Tensor strided = at::zeros({frames, fft}, at::kFloat);
  float* dst = strided.data_ptr<float>();
  const float* win = window_.data_ptr<float>();
  const float coeff = static_cast<float>(o.preemphasis);
  std::vector<float> frame(static_cast<size_t>(len));
  for (int64_t t = 0; t < frames; ++t) {
    const float* in = frame_data + t * frame_step;
    const float mean = means != nullptr ? means[t] : 0.0f;
    for (int64_t j = 0; j < len; ++j) frame[j] = in[j] - mean;
    float* row = dst + t * fft;
    if (coeff != 0.0f) {
      // y[j] = x[j] - c x[j-1], with x[-1] = x[0] (Kaldi's replicate padding).
      row[0] = (frame[0] - coeff * frame[0]) * win[0];
      for (int64_t j = 1; j < len; ++j) row[j] = (frame[j] - coeff * frame[j - 1]) * win[j];
    } else {
      for (int64_t j = 0; j < len; ++j) row[j] = frame[j] * win[j];
    }
    // row[len .. fft) stays zero: the FFT's zero padding.
  }

  // Power spectrum and mel projection in one pass per frame over the complex FFT output:
  // |X_k|^2 = re^2 + im^2 (torchaudio: abs(X)^2, the same value to within an ulp), then each
  // filter sums its few bins. All terms are non-negative, so any summation order agrees with
  // torchaudio's dense GEMM to float rounding (relative ~1e-7, i.e. ~1e-7 in the log).
  const at::Tensor spectrum = at::fft_rfft(strided).contiguous();  // complex [T, fft/2 + 1]
  const int64_t bins = spectrum.size(1);
  const float* spec = reinterpret_cast<const float*>(spectrum.data_ptr());
  const int64_t num_filters = o.num_mel_bins;
  at::Tensor mel = at::empty({frames, num_filters}, at::kFloat);
  float* mel_data = mel.data_ptr<float>();
  std::vector<float> power(static_cast<size_t>(bins));
  const float* weights = filter_weights_.data();
  for (int64_t t = 0; t < frames; ++t) {
    const float* row = spec + 2 * t * bins;
    for (int64_t k = 0; k < bins; ++k) power[k] = row[2 * k] * row[2 * k] + row[2 * k + 1] * row[2 * k + 1];
    float* out = mel_data + t * num_filters;
    for (int64_t f = 0; f < num_filters; ++f) {
      const float* p = power.data() + filter_first_bin_[f];
      const int32_t begin = filter_offset_[f], end = filter_offset_[f + 1];
      float sum = 0.0f;
      for (int32_t i = begin; i < end; ++i) sum += weights[i] * p[i - begin];
      out[f] = sum;
    }
  }
  // log(max(energy, FLT_EPSILON)) with ATen's vectorised log, as torchaudio: silence lands on
  // log(FLT_EPSILON) exactly.
  return mel.clamp_min_(FLT_EPSILON).log_();
}

at::Tensor pad_or_crop(const at::Tensor& features, int64_t target_frames) {
  if (features.dim() != 2) {
    throw ShapeError("shape.features", fmt::format("pad_or_crop expects features [T, F], got {} "
                                                   "dimensions",
                                                   features.dim()));
  }
  if (target_frames < 1) {
    throw ConfigError("frontend.options",
                      fmt::format("target_frames = {} must be at least 1", target_frames));
  }
  const int64_t t = features.size(0);
  if (t == target_frames) return features;
  if (t > target_frames) return features.narrow(0, 0, target_frames).contiguous();
  return at::constant_pad_nd(features, {0, 0, 0, target_frames - t}, 0.0);
}

at::Tensor normalize(const at::Tensor& features, double mean, double std) {
  if (!(std > 0.0) || !std::isfinite(std) || !std::isfinite(mean)) {
    throw ConfigError("frontend.options",
                      fmt::format("normalisation needs a finite mean and a positive std, got mean "
                                  "{} and std {}",
                                  mean, std));
  }
  return (features - mean) / (std * 2.0);
}

}  // namespace patchbay

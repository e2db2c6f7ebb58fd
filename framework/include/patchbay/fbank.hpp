// Kaldi-compatible log-mel filterbank features of a decoded clip (audio.hpp), padded or cropped
// to a fixed length and normalised: the front end every model is fed by.
//
//   const auto opts = FbankOptions::from(config.frontend);       // [frontend] table
//   const Fbank fbank(opts);                                      // precomputes window + mel
//   const Waveform wave = read_audio("clip.flac", opts.sample_rate);
//   at::Tensor x = fbank.compute(wave);                           // [T, F] float32 log-mel
//   x = pad_or_crop(x, opts.target_frames);                       // [target_frames, F]
//   x = normalize(x, opts.norm_mean, opts.norm_std);              // (x - mean) / (2 std)
//
// The features are those of torchaudio.compliance.kaldi.fbank with AST's arguments
// (docs/reference.md §4): htk_compat, no energy, snip_edges, DC removal per frame, pre-emphasis,
// FFT size rounded up to a power of two, triangular mel filters on 1127 ln(1 + f / 700),
// log(max(energy, FLT_EPSILON)). Like AST's data loader, the waveform's mean is removed
// first (FbankOptions::subtract_mean). tests/golden/ holds the reference outputs.
//
// Tensors: CPU, float32, contiguous. Features are 2-D [T, F] (frames x mel bins), time
// first, as AST's loader returns them (the model input is their transpose, [F, T]).
//
// Errors: "data.too_short" (a clip shorter than one analysis frame, DataError); impossible
// options (e.g. a mel range above Nyquist) throw ConfigError "frontend.options".
// Implemented in framework/src/fbank.cpp.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "patchbay/audio.hpp"
#include "patchbay/export.hpp"

namespace patchbay {

class Options;

enum class FbankWindow { hanning, hamming, povey, rectangular, blackman };
enum class Normalization { train_split, fixed, none };

// Every parameter of the fbank; the defaults are AST's (and the [frontend] schema's).
struct PATCHBAY_API FbankOptions {
  int64_t sample_rate = 16000;
  int64_t num_mel_bins = 128;
  int64_t target_frames = 128;
  double frame_length_ms = 25.0;
  double frame_shift_ms = 10.0;
  double low_freq = 20.0;
  double high_freq = 0.0;          // <= 0: offset from Nyquist
  double preemphasis = 0.97;
  double dither = 0.0;             // Gaussian noise amplitude added per frame (0: none)
  FbankWindow window = FbankWindow::hanning;
  bool subtract_mean = true;       // remove the waveform's mean first, as AST's loader does
  bool remove_dc_offset = true;    // remove each frame's mean (Kaldi's default)
  bool round_to_power_of_two = true;
  Normalization normalize = Normalization::train_split;
  double norm_mean = -6.845978;    // AST's Speech Commands statistics
  double norm_std = 5.5654526;
  ChannelMix channel = ChannelMix::first;  // how a multi-channel clip becomes mono

  // Reads the [frontend] options (frontend_schema() in builtin_schemas.cpp); the fields
  // without an option there keep AST's values. Throws ConfigError for an unknown choice.
  static FbankOptions from(const Options& frontend);

  // Throws ConfigError "frontend.options" for options the algorithm cannot honour (fewer than
  // 4 mel bins, low_freq >= high_freq, a band above Nyquist, a window shorter than 2 samples).
  // Scalar checks only, allocating nothing: the config loader calls it for every sweep point,
  // where building the front end would cost a window and a filter bank of fft_size each.
  void validate() const;

  // Derived sizes, computed as Kaldi/torchaudio do (truncating rate * ms / 1000).
  int64_t window_length() const;   // samples per frame: 400 at 16 kHz / 25 ms
  int64_t window_shift() const;    // samples between frames: 160 at 16 kHz / 10 ms
  int64_t fft_size() const;        // 512: window_length rounded up to a power of two
  // Frames for n samples: 1 + (n - window_length) / window_shift, or 0 when n is shorter
  // than one frame.
  int64_t num_frames(int64_t samples) const;
};

// The fbank computation with its window and mel filters computed once; cheap to reuse,
// safe to call from several threads (compute() is const and keeps no state).
class PATCHBAY_API Fbank {
 public:
  // Throws what options.validate() throws.
  explicit Fbank(FbankOptions options);

  // Log-mel features [T, F] of a waveform at options().sample_rate, T = num_frames(n).
  // The input is not modified. Throws DataError "data.too_short" when the clip is shorter
  // than one frame, ShapeError "shape.waveform" for a tensor that is not 1-D, and
  // ConfigError "frontend.sample_rate" when the waveform's rate is not the configured one.
  at::Tensor compute(const Waveform& waveform) const;

  const FbankOptions& options() const { return options_; }
  // The mel filter bank [fft_size / 2 + 1, F] (the Nyquist row is zero), peak 1 per filter;
  // a transposed view of a contiguous [F, fft_size / 2 + 1] tensor.
  const at::Tensor& mel_banks() const { return mel_banks_; }
  // The analysis window [window_length].
  const at::Tensor& window() const { return window_; }

 private:
  FbankOptions options_;
  at::Tensor window_;
  at::Tensor mel_banks_;
  // The same filters stored sparsely, for compute(): each triangle covers a few FFT bins
  // (each bin feeds at most two triangles), so the dense [T, K] x [K, F] product would
  // spend ~98 % of its multiply-adds on zeros. Filter f's weights are
  // filter_weights_[filter_offset_[f] .. filter_offset_[f + 1]) for the bins starting at
  // filter_first_bin_[f].
  std::vector<int32_t> filter_first_bin_;
  std::vector<int32_t> filter_offset_;
  std::vector<float> filter_weights_;
};

// Zero-pads at the end or cuts the end of [T, F] features to [target_frames, F] (AST's
// loader). Returns the input itself when T already equals target_frames.
PATCHBAY_API at::Tensor pad_or_crop(const at::Tensor& features, int64_t target_frames);

// (x - mean) / (2 std), AST's normalisation. Throws ConfigError "frontend.options" when std
// is not positive.
PATCHBAY_API at::Tensor normalize(const at::Tensor& features, double mean, double std);

}  // namespace patchbay

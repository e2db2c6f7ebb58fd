// The audio front end: decode a clip, compute Kaldi-compatible log-mel filterbank features,
// pad or crop them to a fixed length, normalise them.
//
//   const auto opts = FbankOptions::from(config.frontend);       // [frontend] table
//   const Fbank fbank(opts);                                      // precomputes window + mel
//   const Waveform wave = read_audio("clip.flac", opts.sample_rate);
//   at::Tensor x = fbank.compute(wave);                           // [T, F] float32 log-mel
//   x = pad_or_crop(x, opts.target_frames);                       // [target_frames, F]
//   x = normalize(x, opts.norm_mean, opts.norm_std);              // (x - mean) / (2 std)
//
// The features are those of torchaudio.compliance.kaldi.fbank with AST's arguments
// (REFERENCE.md §4): htk_compat, no energy, snip_edges, DC removal per frame, pre-emphasis,
// FFT size rounded up to a power of two, triangular mel filters on 1127 ln(1 + f / 700),
// log(max(energy, FLT_EPSILON)). Like AST's data loader, the waveform's mean is removed
// first (FbankOptions::subtract_mean). tests/golden/ holds the reference outputs.
//
// Tensors: CPU, float32, contiguous. Waveforms are 1-D [n] mono samples in [-1, 1] (float
// files may exceed it); features are 2-D [T, F] (frames x mel bins), time first, as AST's
// loader returns them (the model input is their transpose, [F, T]).
//
// Errors: every bad clip throws DataError naming the file, the reason and what to do, with
// a stable id: "data.missing" (no such file), "data.unreadable" (not audio, malformed, read
// failure), "data.unsupported_format" (an encoding libsndfile cannot decode), "data.empty"
// (no samples), "data.non_finite" (NaN or Inf samples), "data.too_short" (fewer samples than
// one analysis frame), "data.resample" (libsoxr failed). Impossible options (e.g. a mel
// range above Nyquist) throw ConfigError "frontend.options".
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "patchbay/export.hpp"

namespace patchbay {

class Options;

// One decoded clip.
struct Waveform {
  at::Tensor samples;        // [n] float32 mono
  int64_t sample_rate = 0;   // Hz
  std::string source;        // the file it came from (for error messages); may be empty
};

// How a multi-channel clip becomes mono: channel 0 (torchaudio's kaldi.fbank, so AST), or
// the mean of the channels ([frontend] channel = "first" | "mean").
enum class ChannelMix { first, mean };

// Decodes WAV / FLAC / OGG (8/16/24/32-bit integer or float samples) through libsndfile,
// takes channel 0 or averages the channels (`mix`), and resamples with libsoxr (high quality) when the file's
// rate differs from `target_rate` (target_rate <= 0: keep the file's rate). Integer samples
// are scaled to [-1, 1) as libsndfile and torchaudio do (16-bit: x / 32768).
// Throws DataError (ids above) for a missing, unreadable, empty or non-finite clip.
// Plain 16-bit PCM and 32-bit float WAV files (the built-in datasets, Speech Commands) are
// parsed directly (read_plain_wav), with the same samples libsndfile would give; every other
// file goes through libsndfile.
PATCHBAY_API Waveform read_audio(const std::filesystem::path& file, int64_t target_rate,
                                ChannelMix mix = ChannelMix::first);

// The decoder that read_audio skips libsndfile with: a RIFF/WAVE file whose format is 16-bit
// integer PCM or 32-bit IEEE float (WAVE_FORMAT_EXTENSIBLE included), any channel count,
// its data chunk complete and after the fmt chunk. Returns the clip at the file's own rate
// (averaged to mono, 16-bit scaled by 1/32768, exactly as libsndfile and read_audio do), or
// nothing for any other file (missing, unreadable, other encodings, truncated, empty, NaN or
// Inf samples), which read_audio then hands to libsndfile for decoding or a DataError.
// Little-endian hosts only; elsewhere it always returns nothing.
PATCHBAY_API std::optional<Waveform> read_plain_wav(const std::filesystem::path& file,
                                                    ChannelMix mix = ChannelMix::first);

// Resamples mono float32 samples [n] from `from_rate` to `to_rate` with libsoxr's high
// quality preset; the output has round(n * to_rate / from_rate) samples. Returns the input
// unchanged when the rates are equal. `source` names the clip in error messages.
PATCHBAY_API at::Tensor resample(const at::Tensor& samples, int64_t from_rate, int64_t to_rate,
                                 const std::string& source = "");

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
  // Throws ConfigError "frontend.options" for options the algorithm cannot honour (fewer than
  // 4 mel bins, low_freq >= high_freq, a band above Nyquist, a window shorter than 2 samples).
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

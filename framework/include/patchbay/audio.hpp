// Decoding a clip: WAV / FLAC / OGG through libsndfile (plain WAV directly), to mono, resampled
// with libsoxr. The first step of the front end (fbank.hpp computes the features).
//
//   const Waveform wave = read_audio("clip.flac", 16000);   // [n] float32 mono at 16 kHz
//
// Tensors: CPU, float32, contiguous, 1-D [n] mono samples in [-1, 1] (float files may
// exceed it).
//
// Errors: every bad clip throws DataError naming the file, the reason and what to do, with
// a stable id: "data.missing" (no such file), "data.unreadable" (not audio, malformed, read
// failure), "data.unsupported_format" (an encoding libsndfile cannot decode), "data.empty"
// (no samples), "data.non_finite" (NaN or Inf samples), "data.truncated" (a WAV whose data
// chunk the file cuts short: both frame counts), "data.resample" (libsoxr failed).
// Implemented in framework/src/audio.cpp.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "patchbay/export.hpp"

namespace patchbay {

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

}  // namespace patchbay

// Decoding (libsndfile) and resampling (libsoxr) of audio clips.
#include <sndfile.h>
#include <soxr.h>

#include <cmath>
#include <memory>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <torch/types.h>

#include "patchbay/error.hpp"
#include "patchbay/frontend.hpp"

namespace fs = std::filesystem;

namespace patchbay {
namespace {

constexpr const char* kFormats = "WAV, FLAC and OGG/Vorbis (8/16/24/32-bit integer or float)";

struct SndfileCloser {
  void operator()(SNDFILE* f) const { sf_close(f); }
};
using SndfilePtr = std::unique_ptr<SNDFILE, SndfileCloser>;

[[noreturn]] void fail(const char* id, const fs::path& file, const std::string& reason,
                       const std::string& todo) {
  throw DataError(id, fmt::format("audio file '{}': {}; {}", file.string(), reason, todo));
}

SndfilePtr open_audio(const fs::path& file, SF_INFO& info) {
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    fail("data.missing", file, "no such file",
         "check the dataset root and list files, or regenerate the dataset");
  }
  if (fs::is_directory(file, ec)) {
    fail("data.unreadable", file, "is a directory, not an audio file",
         "point the dataset at audio files");
  }
  // A zero-byte file has no header for libsndfile to recognise; it is an empty clip.
  if (fs::file_size(file, ec) == 0 && !ec) {
    fail("data.empty", file, "the file is empty (0 bytes)",
         "re-export the clip or remove it from the dataset (or set on_bad_clip = \"skip\")");
  }
  info = SF_INFO{};
  SNDFILE* handle = sf_open(file.c_str(), SFM_READ, &info);
  if (handle == nullptr) {
    const int code = sf_error(nullptr);
    const std::string why = sf_strerror(nullptr);
    if (code == SF_ERR_UNSUPPORTED_ENCODING) {
      fail("data.unsupported_format", file, fmt::format("libsndfile cannot decode its encoding ({})", why),
           fmt::format("convert it to one of {}", kFormats));
    }
    fail("data.unreadable", file, fmt::format("not a readable audio file (libsndfile: {})", why),
         fmt::format("check that it is one of {} and not truncated", kFormats));
  }
  return SndfilePtr(handle);
}

}  // namespace

Waveform read_audio(const fs::path& file, int64_t target_rate) {
  SF_INFO info;
  SndfilePtr handle = open_audio(file, info);
  if (info.channels <= 0 || info.samplerate <= 0) {
    fail("data.unsupported_format", file,
         fmt::format("the header declares {} channels at {} Hz", info.channels, info.samplerate),
         "re-export the clip with a valid header");
  }
  const int channels = info.channels;
  // Read in blocks rather than trusting info.frames: some containers (OGG) only estimate it.
  constexpr sf_count_t kBlock = 1 << 15;
  std::vector<float> interleaved;
  if (info.frames > 0 && info.frames < (sf_count_t{1} << 31)) {
    interleaved.reserve(static_cast<size_t>(info.frames) * channels);
  }
  std::vector<float> block(static_cast<size_t>(kBlock) * channels);
  for (;;) {
    const sf_count_t got = sf_readf_float(handle.get(), block.data(), kBlock);
    if (got <= 0) break;
    interleaved.insert(interleaved.end(), block.begin(), block.begin() + got * channels);
  }
  if (sf_error(handle.get()) != SF_ERR_NO_ERROR) {
    fail("data.unreadable", file,
         fmt::format("decoding failed after {} frames (libsndfile: {})",
                     interleaved.size() / channels, sf_strerror(handle.get())),
         "the file is probably truncated or corrupt; re-export it");
  }
  const int64_t frames = static_cast<int64_t>(interleaved.size()) / channels;
  if (frames == 0 && info.frames > 0) {
    fail("data.unreadable", file,
         fmt::format("the header declares {} frames but none could be decoded", info.frames),
         "the file is probably truncated or corrupt; re-export it");
  }
  if (frames == 0) {
    fail("data.empty", file, "the clip has no samples",
         "re-export the clip or remove it from the dataset (or set on_bad_clip = \"skip\")");
  }
  for (size_t i = 0; i < interleaved.size(); ++i) {
    if (!std::isfinite(interleaved[i])) {
      fail("data.non_finite", file,
           fmt::format("sample {} of channel {} is {}", i / channels, i % channels,
                       std::isnan(interleaved[i]) ? "NaN" : "infinite"),
           "the float data is corrupt; re-export the clip or remove it from the dataset");
    }
  }

  at::Tensor mono = at::empty({frames}, at::kFloat);
  float* out = mono.data_ptr<float>();
  if (channels == 1) {
    std::copy(interleaved.begin(), interleaved.end(), out);
  } else {
    const float scale = 1.0f / static_cast<float>(channels);
    for (int64_t t = 0; t < frames; ++t) {
      float sum = 0.0f;
      for (int c = 0; c < channels; ++c) sum += interleaved[t * channels + c];
      out[t] = sum * scale;
    }
  }

  Waveform wave;
  wave.source = file.string();
  wave.sample_rate = info.samplerate;
  wave.samples = mono;
  if (target_rate > 0 && target_rate != info.samplerate) {
    wave.samples = resample(mono, info.samplerate, target_rate, wave.source);
    wave.sample_rate = target_rate;
  }
  return wave;
}

at::Tensor resample(const at::Tensor& samples, int64_t from_rate, int64_t to_rate,
                    const std::string& source) {
  if (from_rate <= 0 || to_rate <= 0) {
    throw ConfigError("frontend.options", fmt::format("cannot resample '{}' from {} Hz to {} Hz: "
                                                      "rates must be positive",
                                                      source, from_rate, to_rate));
  }
  if (samples.dim() != 1) {
    throw ShapeError("shape.waveform", fmt::format("resample expects mono samples [n], got {} "
                                                   "dimensions",
                                                   samples.dim()));
  }
  if (from_rate == to_rate) return samples;
  const at::Tensor in = samples.to(at::kFloat).contiguous();
  const int64_t in_len = in.size(0);
  // Round to nearest, so a 1 s clip stays exactly one second at the new rate.
  const int64_t out_len = static_cast<int64_t>(
      std::llround(static_cast<double>(in_len) * static_cast<double>(to_rate) /
                   static_cast<double>(from_rate)));
  at::Tensor out = at::zeros({out_len}, at::kFloat);
  if (out_len == 0) return out;
  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  const soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, 0);
  size_t done = 0;
  const soxr_error_t err =
      soxr_oneshot(static_cast<double>(from_rate), static_cast<double>(to_rate), 1,
                   in.data_ptr<float>(), static_cast<size_t>(in_len), nullptr,
                   out.data_ptr<float>(), static_cast<size_t>(out_len), &done, &io, &quality,
                   nullptr);
  if (err != nullptr) {
    throw DataError("data.resample",
                    fmt::format("audio file '{}': resampling {} Hz -> {} Hz failed (libsoxr: {}); "
                                "convert the clip to {} Hz beforehand",
                                source, from_rate, to_rate, err, to_rate));
  }
  // soxr_oneshot flushes its filter, so `done` is out_len; any shortfall stays zero.
  return out;
}

}  // namespace patchbay

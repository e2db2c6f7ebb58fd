// Decoding (libsndfile, plus a direct reader for plain WAV) and resampling (libsoxr).
#include <fcntl.h>
#include <sndfile.h>
#include <soxr.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <torch/types.h>

#include "patchbay/error.hpp"
#include "patchbay/audio.hpp"

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

struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

uint16_t le16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t le32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

// Reads the whole file with plain read() calls; false on any failure.
bool read_file(const fs::path& file, std::vector<unsigned char>& bytes) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const FdCloser closer{fd};
  struct stat st {};
  // Regular files only, and not huge ones (those stream through libsndfile instead).
  constexpr off_t kMaxBytes = off_t{1} << 28;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 44 || st.st_size > kMaxBytes) {
    return false;
  }
  bytes.resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t got = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (got <= 0) return false;
    done += static_cast<size_t>(got);
  }
  return true;
}

// Mono from interleaved frames. ChannelMix::first: channel 0, as torchaudio's
// compliance.kaldi.fbank (its `channel` argument, default 0) and so AST. ChannelMix::mean: a
// float sum over the channels, then 1 / channels. The same arithmetic for every decoder, so
// the direct WAV reader matches libsndfile's path exactly.
at::Tensor to_mono(const float* interleaved, int64_t frames, int channels, ChannelMix mix) {
  at::Tensor mono = at::empty({frames}, at::kFloat);
  float* out = mono.data_ptr<float>();
  if (channels == 1) {
    std::copy(interleaved, interleaved + frames, out);
    return mono;
  }
  if (mix == ChannelMix::first) {
    for (int64_t t = 0; t < frames; ++t) out[t] = interleaved[t * channels];
    return mono;
  }
  const float scale = 1.0f / static_cast<float>(channels);
  for (int64_t t = 0; t < frames; ++t) {
    float sum = 0.0f;
    for (int c = 0; c < channels; ++c) sum += interleaved[t * channels + c];
    out[t] = sum * scale;
  }
  return mono;
}

}  // namespace

std::optional<Waveform> read_plain_wav(const fs::path& file, ChannelMix mix) {
  // Why: libsndfile's open probes the format and sets up its codec machinery, ~50 us per
  // clip, as much as the whole filterbank of a 1 s clip; a plain WAV needs one read().
  const uint16_t probe = 1;
  unsigned char first_byte = 0;
  std::memcpy(&first_byte, &probe, 1);
  if (first_byte != 1) return std::nullopt;  // big-endian host: the sample copies below assume LE
  std::vector<unsigned char> bytes;
  if (!read_file(file, bytes)) return std::nullopt;
  const unsigned char* b = bytes.data();
  const size_t size = bytes.size();
  if (std::memcmp(b, "RIFF", 4) != 0 || std::memcmp(b + 8, "WAVE", 4) != 0) return std::nullopt;

  constexpr uint16_t kPcm = 1, kFloat = 3, kExtensible = 0xFFFE;
  // The rest of the KSDATAFORMAT_SUBTYPE GUID after its 2-byte format tag.
  static const unsigned char kGuidTail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                              0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};
  uint16_t format = 0, channels = 0, bits = 0, block_align = 0;
  uint32_t rate = 0;
  size_t pos = 12;
  while (pos + 8 <= size) {
    const unsigned char* chunk = b + pos;
    const size_t chunk_size = le32(chunk + 4);
    const size_t body = pos + 8;
    if (std::memcmp(chunk, "fmt ", 4) == 0) {
      if (chunk_size < 16 || body + chunk_size > size) return std::nullopt;
      format = le16(b + body);
      channels = le16(b + body + 2);
      rate = le32(b + body + 4);
      block_align = le16(b + body + 12);
      bits = le16(b + body + 14);
      if (format == kExtensible) {
        if (chunk_size < 40 || std::memcmp(b + body + 26, kGuidTail, 14) != 0) return std::nullopt;
        format = le16(b + body + 24);
      }
    } else if (std::memcmp(chunk, "data", 4) == 0) {
      const bool int16 = format == kPcm && bits == 16;
      const bool float32 = format == kFloat && bits == 32;
      if (!(int16 || float32) || channels == 0 || rate == 0 ||
          block_align != channels * (bits / 8) || chunk_size == 0 ||
          chunk_size % block_align != 0 || body + chunk_size > size) {
        return std::nullopt;  // not ours, or truncated / empty: libsndfile decides
      }
      const int64_t frames = static_cast<int64_t>(chunk_size / block_align);
      const unsigned char* data = b + body;
      const int64_t n = frames * channels;
      std::vector<float> interleaved(static_cast<size_t>(n));
      if (int16) {
        constexpr float kScale = 1.0f / 32768.0f;  // libsndfile's int16 -> float scale
        for (int64_t i = 0; i < n; ++i) {
          int16_t v;
          std::memcpy(&v, data + 2 * i, 2);
          interleaved[i] = static_cast<float>(v) * kScale;
        }
      } else {
        std::memcpy(interleaved.data(), data, static_cast<size_t>(n) * 4);
        for (float v : interleaved) {
          if (!std::isfinite(v)) return std::nullopt;  // libsndfile's path names the sample
        }
      }
      const at::Tensor mono = to_mono(interleaved.data(), frames, channels, mix);
      Waveform wave;
      wave.source = file.string();
      wave.sample_rate = rate;
      wave.samples = mono;
      return wave;
    }
    pos = body + chunk_size + (chunk_size & 1);  // chunks are padded to an even size
  }
  return std::nullopt;
}

namespace {

// Any format libsndfile reads, at the file's own rate; DataError for a bad clip.
Waveform read_with_libsndfile(const fs::path& file, ChannelMix mix) {
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

  Waveform wave;
  wave.source = file.string();
  wave.sample_rate = info.samplerate;
  wave.samples = to_mono(interleaved.data(), frames, channels, mix);
  return wave;
}

}  // namespace

namespace {

// A RIFF/WAVE file whose data chunk declares more bytes than the file holds (a copy cut short):
// libsndfile would decode what is there as a shorter clip without a word. Throws DataError
// "data.truncated" with both frame counts; other files (not WAV, or a streaming header whose
// size is 0 or 0xFFFFFFFF, "unknown") are left to the decoder.
void refuse_truncated_wav(const fs::path& file) {
  std::vector<unsigned char> bytes;
  if (!read_file(file, bytes) || bytes.size() < 12) return;
  const unsigned char* b = bytes.data();
  if (std::memcmp(b, "RIFF", 4) != 0 || std::memcmp(b + 8, "WAVE", 4) != 0) return;
  size_t block_align = 0;
  for (size_t pos = 12; pos + 8 <= bytes.size();) {
    const size_t chunk_size = le32(b + pos + 4), body = pos + 8;
    if (std::memcmp(b + pos, "fmt ", 4) == 0 && body + 14 <= bytes.size()) block_align = le16(b + body + 12);
    if (std::memcmp(b + pos, "data", 4) == 0) {
      if (chunk_size == 0 || chunk_size == 0xFFFFFFFFu || block_align == 0) return;
      const size_t have = bytes.size() - body;
      if (have >= chunk_size) return;
      throw DataError("data.truncated",
                      fmt::format("'{}' is truncated: {} of {} frames (its data chunk declares {} bytes, "
                                  "the file ends {} bytes into it); copy or export it again, or set "
                                  "dataset.on_bad_clip = \"skip\"", file.string(), have / block_align,
                                  chunk_size / block_align, chunk_size, have));
    }
    pos = body + chunk_size + (chunk_size & 1);
  }
}

}  // namespace

Waveform read_audio(const fs::path& file, int64_t target_rate, ChannelMix mix) {
  std::optional<Waveform> plain = read_plain_wav(file, mix);
  if (!plain) refuse_truncated_wav(file);  // the plain reader refuses truncated files too
  Waveform wave = plain ? std::move(*plain) : read_with_libsndfile(file, mix);
  if (target_rate > 0 && target_rate != wave.sample_rate) {
    wave.samples = resample(wave.samples, wave.sample_rate, target_rate, wave.source);
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

// Helpers shared by the generators of the built-in datasets (keywords, instruments):
// seeded random streams that give the same numbers with every standard library, 16 kHz
// 16-bit WAV and text writers, and the guard that keeps a generator from writing into (or
// clearing) a folder that does not hold its own earlier output.
// Header-only; the including library links libsndfile (PkgConfig::SNDFILE).
#pragma once
#include <sndfile.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "patchbay/error.hpp"
#include "patchbay/hash.hpp"

namespace patchbay::datasets {

// SplitMix64's finaliser: mixes a seed and a stream id into an independent stream seed.
inline uint64_t mix_seed(uint64_t a, uint64_t b) {
  uint64_t z = a + 0x9E3779B97F4A7C15ULL * (b + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Draws built on the raw mt19937_64 output only: std::uniform_real_distribution and
// std::normal_distribution are implementation-defined, which would make the bytes depend on
// the standard library.
class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  uint64_t below(uint64_t n) { return engine_() % n; }  // n is small: the bias is negligible
  double gaussian() {                                   // Box-Muller
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }
  bool chance(double p) { return uniform() < p; }
  // An element of a non-empty vector, uniformly.
  template <class T>
  const T& pick(const std::vector<T>& v) { return v[below(v.size())]; }

 private:
  std::mt19937_64 engine_;
};

// The independent stream of (seed, what, index): every random draw of a generator comes
// from one of these, so a clip's content depends only on the seed and the clip's identity.
inline Rng random_stream(uint64_t seed, const std::string& what, uint64_t index = 0) {
  return Rng(mix_seed(mix_seed(seed, stable_hash(what)), index));
}

// Writes mono samples in [-1, 1) as 16-bit PCM WAV at `rate` (rounded, clamped).
// DataError "<generator>.write" when the file cannot be written.
inline void write_wav16(const std::filesystem::path& file, const std::vector<float>& x, int rate,
                        const std::string& generator) {
  std::vector<short> pcm(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const long q = std::lround(double(x[i]) * 32768.0);
    pcm[i] = static_cast<short>(std::clamp(q, -32768L, 32767L));
  }
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = 1;
  info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
  SNDFILE* f = sf_open(file.c_str(), SFM_WRITE, &info);
  if (f == nullptr) {
    throw DataError(generator + ".write",
                    fmt::format("cannot write '{}': {}; check the folder is writable and the disk "
                                "not full", file.string(), sf_strerror(nullptr)));
  }
  const sf_count_t wrote = sf_write_short(f, pcm.data(), static_cast<sf_count_t>(pcm.size()));
  const int closed = sf_close(f);
  if (wrote != static_cast<sf_count_t>(pcm.size()) || closed != 0) {
    throw DataError(generator + ".write",
                    fmt::format("writing '{}' failed; check the disk is not full", file.string()));
  }
}

// DataError "<generator>.write" when the file cannot be written.
inline void write_text_file(const std::filesystem::path& file, const std::string& text,
                            const std::string& generator) {
  std::ofstream out(file, std::ios::binary);
  out << text;
  out.flush();
  if (!out) {
    throw DataError(generator + ".write", fmt::format("cannot write '{}'; check the folder is "
                                                      "writable", file.string()));
  }
}

// Makes `out` ready for a generator's output. An empty (or missing) folder is used as is;
// an earlier output of the same generator (README.txt starting with `readme_first_line`) is
// cleared when `overwrite` is set; anything else is refused, so a typo cannot wipe unrelated
// files. DataError "<generator>.out_not_empty".
inline void prepare_generator_out_dir(const std::filesystem::path& out, bool overwrite,
                                      const std::string& generator,
                                      const std::string& readme_first_line) {
  namespace fs = std::filesystem;
  if (fs::exists(out) && !fs::is_directory(out)) {
    throw DataError(generator + ".out_not_empty",
                    fmt::format("'{}' is a file; give a folder for the dataset", out.string()));
  }
  if (fs::exists(out) && !fs::is_empty(out)) {
    std::string first;
    std::getline(std::ifstream(out / "README.txt"), first);
    const bool ours = first.rfind(readme_first_line, 0) == 0;
    if (!overwrite || !ours) {
      throw DataError(
          generator + ".out_not_empty",
          fmt::format("'{}' is not empty; {}", out.string(),
                      ours ? fmt::format("pass --force (overwrite) to replace the earlier {} "
                                         "dataset in it, or choose an empty folder", generator)
                           : fmt::format("it does not hold a {} dataset (no README.txt from the "
                                         "generator), so choose an empty folder", generator)));
    }
    for (const auto& entry : fs::directory_iterator(out)) fs::remove_all(entry.path());
  }
  fs::create_directories(out);
}

}  // namespace patchbay::datasets

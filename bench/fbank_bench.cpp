// Front-end throughput: clips/s of decode + fbank + pad/crop through load_features
// (use_cache = false, its worker threads) against a plain loop over read_audio +
// Fbank::compute + pad_or_crop (split over the same number of std::threads), plus reading
// the same rows back from a warm feature cache. AST's arguments: 16 kHz, 128 mel bins,
// 25 ms / 10 ms hanning frames, 128 target frames.
//
// Usage: patchbay_bench_fbank [--clips N] [--seconds S] [--threads 1,2] [--repeats R]
//                             [--write-clips DIR] [--clips-dir DIR]
//   --write-clips DIR  write N generated clips (16-bit WAV, 16 kHz, S s) into DIR and exit
//   --clips-dir DIR    time the *.wav files of DIR (default: generate N clips in a temp folder)
// Prints one line per thread count:
//   threads T load_features <clips/s> direct <clips/s> cached <clips/s>
// bench/run_fbank.sh compares it with torchaudio.compliance.kaldi.fbank on the same files.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "bench_args.hpp"
#include "patchbay/features.hpp"
#include "patchbay/log.hpp"

namespace fs = std::filesystem;
using namespace patchbay;

namespace {

// A tone sweep plus noise, 16-bit mono PCM WAV at 16 kHz.
void write_clip(const fs::path& file, int index, double seconds) {
  const uint32_t rate = 16000;
  const auto n = static_cast<uint32_t>(rate * seconds);
  std::mt19937 rng(static_cast<uint32_t>(index));
  std::normal_distribution<double> noise(0.0, 0.05);
  std::ofstream out(file, std::ios::binary);
  const auto u32 = [&](uint32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); };
  const auto u16 = [&](uint16_t v) { out.write(reinterpret_cast<const char*>(&v), 2); };
  out.write("RIFF", 4);
  u32(36 + n * 2);
  out.write("WAVEfmt ", 8);
  u32(16);
  u16(1);
  u16(1);
  u32(rate);
  u32(rate * 2);
  u16(2);
  u16(16);
  out.write("data", 4);
  u32(n * 2);
  const double f0 = 120.0 + 17.0 * (index % 50), f1 = f0 * 4.0;
  double phase = 0.0;
  for (uint32_t i = 0; i < n; ++i) {
    const double t = static_cast<double>(i) / n;
    phase += 2.0 * M_PI * (f0 + (f1 - f0) * t) / rate;
    const double x = 0.4 * std::sin(phase) + noise(rng);
    u16(static_cast<uint16_t>(static_cast<int16_t>(std::clamp(x, -1.0, 1.0) * 32767.0)));
  }
}

std::vector<int> parse_list(const std::string& text) {
  std::vector<int> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    out.push_back(std::atoi(text.substr(start, comma - start).c_str()));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Seconds of the fastest half: the median of `repeats` timings of f.
template <typename F>
double time_median(int repeats, F&& f) {
  std::vector<double> s;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return median(s);
}

}  // namespace

int main(int argc, char** argv) {
  int clips_n = 200, repeats = 5;
  double seconds = 1.0;
  std::vector<int> thread_counts{1, 2};
  std::string write_dir, clips_dir;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&] { return patchbay::bench::next_value(argc, argv, i); };
    if (a == "--clips") clips_n = std::atoi(value().c_str());
    else if (a == "--seconds") seconds = std::atof(value().c_str());
    else if (a == "--threads") thread_counts = parse_list(value());
    else if (a == "--repeats") repeats = std::atoi(value().c_str());
    else if (a == "--write-clips") write_dir = value();
    else if (a == "--clips-dir") clips_dir = value();
    else {
      std::fprintf(stderr,
                   "usage: %s [--clips N] [--seconds S] [--threads 1,2] [--repeats R] "
                   "[--write-clips DIR] [--clips-dir DIR]\n",
                   argv[0]);
      return 2;
    }
  }

  if (!write_dir.empty()) {
    fs::create_directories(write_dir);
    for (int i = 0; i < clips_n; ++i) write_clip(fs::path(write_dir) / fmt::format("clip{:04d}.wav", i), i, seconds);
    std::printf("wrote %d clips of %.2f s to %s\n", clips_n, seconds, write_dir.c_str());
    return 0;
  }

  fs::path temp;
  if (clips_dir.empty()) {
    temp = fs::temp_directory_path() / fmt::format("patchbay-fbank-bench-{}", ::getpid());
    fs::create_directories(temp);
    for (int i = 0; i < clips_n; ++i) write_clip(temp / fmt::format("clip{:04d}.wav", i), i, seconds);
    clips_dir = temp.string();
  }
  std::vector<Clip> clips;
  for (const auto& e : fs::directory_iterator(clips_dir)) {
    if (e.path().extension() == ".wav") clips.push_back(Clip{e.path().filename().string(), fs::absolute(e.path()), {0}});
  }
  std::sort(clips.begin(), clips.end(), [](const Clip& a, const Clip& b) { return a.path < b.path; });
  if (clips.empty()) {
    std::fprintf(stderr, "no .wav files in %s\n", clips_dir.c_str());
    return 2;
  }
  const double n = static_cast<double>(clips.size());
  log::set_level(log::Level::warn);

  const FbankOptions opts;  // AST's defaults
  const Fbank fbank(opts);
  const fs::path cache_dir = fs::temp_directory_path() / fmt::format("patchbay-fbank-bench-cache-{}", ::getpid());
  for (int threads : thread_counts) {
    FeatureRequest req;
    req.frontend = opts;
    req.use_cache = false;
    req.threads = threads;
    at::Tensor via_load;
    load_features(clips, req);  // warm-up (page cache, allocator)
    const double t_load = time_median(repeats, [&] { via_load = load_features(clips, req).features; });

    at::Tensor out = at::empty({static_cast<int64_t>(clips.size()), opts.target_frames, opts.num_mel_bins});
    const auto direct_range = [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) {
        out[static_cast<int64_t>(i)].copy_(
            pad_or_crop(fbank.compute(read_audio(clips[i].path, opts.sample_rate)), opts.target_frames));
      }
    };
    const double t_direct = time_median(repeats, [&] {
      std::vector<std::thread> pool;
      const size_t per = (clips.size() + threads - 1) / threads;
      for (int t = 1; t < threads; ++t) {
        pool.emplace_back(direct_range, std::min(clips.size(), t * per), std::min(clips.size(), (t + 1) * per));
      }
      direct_range(0, std::min(clips.size(), per));
      for (auto& t : pool) t.join();
    });
    if (!at::equal(out, via_load)) {
      std::fprintf(stderr, "load_features and the direct loop disagree\n");
      return 1;
    }

    FeatureRequest cached = req;
    cached.use_cache = true;
    cached.cache_dir = cache_dir;
    load_features(clips, cached);  // fills the cache
    const double t_cached = time_median(repeats, [&] { load_features(clips, cached); });

    std::printf("threads %d load_features %.1f direct %.1f cached %.1f\n", threads, n / t_load, n / t_direct,
                n / t_cached);
    std::fflush(stdout);
  }
  std::error_code ec;
  fs::remove_all(cache_dir, ec);
  if (!temp.empty()) fs::remove_all(temp, ec);
  return 0;
}

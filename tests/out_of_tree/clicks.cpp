// An out-of-tree dataset that makes its own data: clips of one or two clicks in noise, in a
// folder per class (<root>/<class>/<n>.wav, 16 kHz 16-bit mono). A real plugin built against
// the installed SDK only: `patchbay data clicks --out DIR --per-class N` generates it, and
// an experiment reads it with [dataset] plugin = "clicks", root = "DIR".
#include <cmath>
#include <cstdint>
#include <fstream>
#include <random>

#include <fmt/format.h>

#include "patchbay/plugin.hpp"

namespace {

namespace fs = std::filesystem;

const std::vector<std::string>& classes() {
  static const std::vector<std::string> names = {"one", "two"};
  return names;
}

// A plain 16-bit PCM WAV file: the 44-byte RIFF header, then the samples.
void write_wav(const fs::path& file, const std::vector<int16_t>& pcm) {
  std::ofstream out(file, std::ios::binary);
  const auto u32 = [&](uint32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); };
  const auto u16 = [&](uint16_t v) { out.write(reinterpret_cast<const char*>(&v), 2); };
  const uint32_t bytes = static_cast<uint32_t>(pcm.size() * 2);
  out.write("RIFF", 4);
  u32(36 + bytes);
  out.write("WAVEfmt ", 8);
  u32(16);
  u16(1);      // PCM
  u16(1);      // mono
  u32(16000);  // samples per second
  u32(32000);  // bytes per second
  u16(2);      // bytes per frame
  u16(16);     // bits per sample
  out.write("data", 4);
  u32(bytes);
  out.write(reinterpret_cast<const char*>(pcm.data()), bytes);
  if (!out) {
    throw patchbay::DataError("clicks.write", fmt::format("cannot write '{}'", file.string()));
  }
}

std::string generate(const patchbay::Options& o, const patchbay::GenerateRequest& request) {
  const int64_t per_class = o.get_int("per_class");
  std::error_code ec;
  if (fs::exists(request.out, ec) && !fs::is_empty(request.out, ec) && !request.overwrite) {
    throw patchbay::DataError("clicks.not_empty",
                              fmt::format("'{}' is not empty; choose an empty folder or add --force",
                                          request.out.string()));
  }
  std::mt19937 rng(static_cast<uint32_t>(o.get_int("seed")));
  std::uniform_real_distribution<float> noise(-0.01f, 0.01f);
  const int64_t total = per_class * static_cast<int64_t>(classes().size());
  int64_t done = 0;
  for (size_t c = 0; c < classes().size(); ++c) {
    fs::create_directories(request.out / classes()[c]);
    for (int64_t n = 0; n < per_class; ++n) {
      std::vector<int16_t> pcm(8000);  // 0.5 s
      for (auto& x : pcm) x = static_cast<int16_t>(noise(rng) * 32767.0f);
      for (size_t k = 0; k <= c; ++k) {  // one click, or two
        const size_t at = 1000 + k * 3000;
        for (size_t i = 0; i < 200; ++i) pcm[at + i] = static_cast<int16_t>(20000.0 * std::exp(-0.02 * i));
      }
      write_wav(request.out / classes()[c] / fmt::format("{}.wav", n), pcm);
      if (request.progress) request.progress(++done, total);
    }
  }
  return fmt::format("clicks: {} clips in {}\n", total, request.out.string());
}

class Clicks final : public patchbay::Dataset {
 public:
  explicit Clicks(fs::path root) : root_(std::move(root)) {}
  const std::vector<std::string>& class_names() const override { return classes(); }
  bool multi_label() const override { return false; }
  // Clip n of each class: test when n % 10 == 9, validation when 8, train otherwise.
  std::vector<patchbay::Clip> clips(patchbay::Split split) const override {
    std::vector<patchbay::Clip> out;
    for (size_t c = 0; c < classes().size(); ++c) {
      for (int64_t n = 0;; ++n) {
        const fs::path file = root_ / classes()[c] / fmt::format("{}.wav", n);
        if (!fs::exists(file)) break;
        const auto s = n % 10 == 9 ? patchbay::Split::test
                                   : n % 10 == 8 ? patchbay::Split::valid : patchbay::Split::train;
        if (s == split) out.push_back({classes()[c] + "/" + std::to_string(n), file, {static_cast<int64_t>(c)}});
      }
    }
    return out;
  }

 private:
  fs::path root_;
};

}  // namespace

void register_clicks(patchbay::Registrar& r) {
  patchbay::OptionSchema reader;
  reader.add_required_string("root", "folder written by `patchbay data clicks`");
  patchbay::OptionSchema maker;
  maker.add_int("per_class", 10, "clips per class", patchbay::Range::between(1, 1000));
  maker.add_int("seed", 0, "noise seed", patchbay::Range::at_least(0));
  r.add_dataset(
      {"clicks", "one or two clicks in noise (out-of-tree example that generates)", reader},
      [](const patchbay::Options& o, const patchbay::DatasetContext& c) {
        fs::path root = o.get_string("root");
        if (root.is_relative()) root = c.base_dir / root;
        return std::make_shared<Clicks>(root);
      },
      {},
      {"Clips of 0.5 s: one click (class 'one') or two (class 'two') in faint noise, in a folder\n"
       "per class. Read it with [dataset] plugin = \"clicks\", root = \"DIR\".",
       maker, &generate});
}

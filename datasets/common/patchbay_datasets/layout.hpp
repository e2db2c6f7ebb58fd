// Helpers shared by the dataset plugins (header-only: plugins share nothing but the core).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "patchbay/error.hpp"
#include "patchbay/hash.hpp"
#include "patchbay/options.hpp"
#include "patchbay/plugin_kinds.hpp"

namespace patchbay::datasets {

namespace fs = std::filesystem;

// Split of a clip by a stable hash of `key` (a relative path or a speaker group):
// the first valid_percent % of hash buckets are validation, the next test_percent % test.
inline Split hashed_split(const std::string& key, double valid_percent, double test_percent) {
  const double bucket = static_cast<double>(stable_hash(key) % 10000) / 100.0;  // [0, 100)
  if (bucket < valid_percent) return Split::valid;
  if (bucket < valid_percent + test_percent) return Split::test;
  return Split::train;
}

// Non-empty lines of a text file, trailing whitespace and CR removed; empty set when absent.
inline std::set<std::string> read_lines(const fs::path& file) {
  std::set<std::string> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    if (!line.empty()) out.insert(line);
  }
  return out;
}

// `root` resolved against the experiment's folder; DataError when it is not a folder.
inline fs::path resolve_root(const std::string& dataset, const std::string& root,
                             const DatasetContext& ctx, const std::string& layout_hint) {
  fs::path p(root);
  if (p.is_relative()) p = ctx.base_dir / p;
  std::error_code ec;
  if (!fs::is_directory(p, ec)) {
    // A relative root is read from the experiment file's folder, also on the command line
    // (dataset.root=data/x): the run then means the same wherever it is started from.
    const std::string relative =
        fs::path(root).is_relative()
            ? fmt::format(" (the relative root '{}' is read from the experiment file's folder, {})", root,
                          ctx.base_dir.string())
            : "";
    throw DataError("data.root_missing",
                    fmt::format("dataset '{}': root '{}' is not a folder{}; set dataset.root to {}",
                                dataset, p.string(), relative, layout_hint));
  }
  return p;
}

// Sub-folders of `root` that are classes: not hidden, not starting with '_'; sorted.
inline std::vector<std::string> class_folders(const fs::path& root) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(root)) {
    const auto name = entry.path().filename().string();
    if (entry.is_directory() && !name.empty() && name[0] != '_' && name[0] != '.') names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Files under `dir` (recursively) with one of `extensions` (".wav"), sorted.
inline std::vector<fs::path> audio_files(const fs::path& dir, const std::set<std::string>& extensions) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file() && extensions.count(entry.path().extension().string())) {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

// The `on_bad_clip` option every dataset plugin declares (Dataset::skip_bad_clips()).
inline void add_on_bad_clip_option(OptionSchema& schema) {
  schema.add_choice("on_bad_clip", "error", {"error", "skip"},
                    "a clip that is missing or cannot be decoded (unreadable, empty, too short, "
                    "NaN/Inf): \"error\" stops the run with the clip's error; \"skip\" leaves "
                    "it out and the run lists it with the reason");
}

// Base of datasets that list their clips once, at construction: names_ and splits_ filled by
// the derived constructor. Holds the on_bad_clip policy and the clips skipped at listing.
class ListedDataset : public Dataset {
 public:
  ListedDataset(bool multi_label, const Options& options)
      : multi_label_(multi_label), skip_bad_(options.get_string("on_bad_clip") == "skip") {}
  const std::vector<std::string>& class_names() const override { return names_; }
  bool multi_label() const override { return multi_label_; }
  std::vector<Clip> clips(Split split) const override { return splits_[static_cast<int>(split)]; }
  std::vector<std::string> skipped_clips() const override { return skipped_; }
  bool skip_bad_clips() const override { return skip_bad_; }

 protected:
  std::vector<Clip>& split(Split s) { return splits_[static_cast<int>(s)]; }
  std::vector<std::string> names_;
  bool multi_label_;
  bool skip_bad_;
  std::vector<std::string> skipped_;  // paths left out at listing (on_bad_clip = "skip")

 private:
  std::vector<Clip> splits_[3];
};

// A 16 kHz, 16-bit mono PCM WAV of a sine tone, for the example layouts the conformance
// suite reads.
inline void write_tone_wav(const fs::path& file, double hz, double seconds) {
  const uint32_t rate = 16000;
  const auto n = static_cast<uint32_t>(rate * seconds);
  std::ofstream out(file, std::ios::binary);
  const auto u32 = [&](uint32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); };
  const auto u16 = [&](uint16_t v) { out.write(reinterpret_cast<const char*>(&v), 2); };
  out.write("RIFF", 4);
  u32(36 + n * 2);
  out.write("WAVEfmt ", 8);
  u32(16);
  u16(1);  // PCM
  u16(1);  // mono
  u32(rate);
  u32(rate * 2);
  u16(2);
  u16(16);
  out.write("data", 4);
  u32(n * 2);
  for (uint32_t i = 0; i < n; ++i) {
    u16(static_cast<uint16_t>(static_cast<int16_t>(8000 * std::sin(2 * M_PI * hz * i / rate))));
  }
}

}  // namespace patchbay::datasets

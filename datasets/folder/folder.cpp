// `folder`: the plain folder-per-class layout (ESC-50 style): <root>/<class>/<clip>.<ext>.
// Classes are the sub-folders, sorted by name. Splits come either from list files
// (validation_list.txt / testing_list.txt with paths relative to root, as Speech Commands
// does) or, when those are absent, from a stable hash of each clip's relative path, so a
// clip never changes split when files are added.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <set>

#include <fmt/format.h>

#include "patchbay/error.hpp"
#include "patchbay/registry.hpp"

namespace fs = std::filesystem;

namespace {

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::set<std::string> read_list(const fs::path& file) {
  std::set<std::string> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) out.insert(line);
  }
  return out;
}

class FolderDataset final : public patchbay::Dataset {
 public:
  FolderDataset(const patchbay::Options& o, const patchbay::DatasetContext& ctx) {
    using patchbay::DataError;
    root_ = fs::path(o.get_string("root"));
    if (root_.is_relative()) root_ = ctx.base_dir / root_;
    std::error_code ec;
    if (!fs::is_directory(root_, ec)) {
      throw DataError("data.root_missing",
                      fmt::format("dataset 'folder': root '{}' is not a folder; set dataset.root "
                                  "to the folder holding one sub-folder per class", root_.string()));
    }
    std::set<std::string> extensions;
    for (const auto& e : o.get_string_list("extensions")) extensions.insert("." + e);
    valid_percent_ = o.get_real("valid_percent");
    test_percent_ = o.get_real("test_percent");

    std::vector<fs::path> class_dirs;
    for (const auto& entry : fs::directory_iterator(root_)) {
      const auto name = entry.path().filename().string();
      if (entry.is_directory() && !name.empty() && name[0] != '_' && name[0] != '.') {
        class_dirs.push_back(entry.path());
      }
    }
    std::sort(class_dirs.begin(), class_dirs.end());
    if (class_dirs.empty()) {
      throw DataError("data.no_classes",
                      fmt::format("dataset 'folder': '{}' has no class sub-folders; put each "
                                  "class's clips in <root>/<class name>/", root_.string()));
    }
    const auto valid_list = read_list(root_ / "validation_list.txt");
    const auto test_list = read_list(root_ / "testing_list.txt");
    use_lists_ = fs::exists(root_ / "validation_list.txt") || fs::exists(root_ / "testing_list.txt");

    for (size_t label = 0; label < class_dirs.size(); ++label) {
      names_.push_back(class_dirs[label].filename().string());
      std::vector<fs::path> files;
      for (const auto& entry : fs::recursive_directory_iterator(class_dirs[label])) {
        if (entry.is_regular_file() && extensions.count(entry.path().extension().string())) {
          files.push_back(entry.path());
        }
      }
      std::sort(files.begin(), files.end());
      for (const auto& f : files) {
        patchbay::Clip clip;
        clip.id = fs::relative(f, root_).generic_string();
        clip.path = fs::absolute(f);
        clip.labels = {static_cast<int64_t>(label)};
        splits_[static_cast<int>(split_of(clip.id, valid_list, test_list))].push_back(clip);
      }
    }
    size_t total = 0;
    for (const auto& s : splits_) total += s.size();
    if (total == 0) {
      throw DataError("data.no_clips",
                      fmt::format("dataset 'folder': no audio files with extensions {} under '{}'; "
                                  "check dataset.extensions", fmt::join(extensions, " "),
                                  root_.string()));
    }
  }

  const std::vector<std::string>& class_names() const override { return names_; }
  bool multi_label() const override { return false; }
  std::vector<patchbay::Clip> clips(patchbay::Split split) const override {
    return splits_[static_cast<int>(split)];
  }

 private:
  patchbay::Split split_of(const std::string& id, const std::set<std::string>& valid,
                           const std::set<std::string>& test) const {
    if (use_lists_) {
      if (valid.count(id)) return patchbay::Split::valid;
      if (test.count(id)) return patchbay::Split::test;
      return patchbay::Split::train;
    }
    const double bucket = static_cast<double>(fnv1a(id) % 10000) / 100.0;  // [0, 100)
    if (bucket < valid_percent_) return patchbay::Split::valid;
    if (bucket < valid_percent_ + test_percent_) return patchbay::Split::test;
    return patchbay::Split::train;
  }

  fs::path root_;
  double valid_percent_ = 10, test_percent_ = 10;
  bool use_lists_ = false;
  std::vector<std::string> names_;
  std::vector<patchbay::Clip> splits_[3];
};

// A 16 kHz, 16-bit mono PCM WAV of a sine tone; enough for layout tests.
void write_tone_wav(const fs::path& file, double hz, double seconds) {
  const uint32_t rate = 16000;
  const uint32_t n = static_cast<uint32_t>(rate * seconds);
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

}  // namespace

void register_folder_dataset(patchbay::Registrar& registrar) {
  using namespace patchbay;
  OptionSchema s;
  s.add_required_string("root", "folder with one sub-folder of clips per class (relative to the "
                                "experiment file)");
  s.add({"extensions", OptionType::string_list,
         OptionValue{std::vector<std::string>{"wav", "flac", "ogg"}},
         "file extensions that count as clips", {}, {}});
  s.add_real("valid_percent", 10.0, "share of clips in the validation split (without list files)",
             Range::between(0, 100));
  s.add_real("test_percent", 10.0, "share of clips in the test split (without list files)",
             Range::between(0, 100));
  registrar.add_dataset(
      {"folder", "one folder per class; splits from list files or a stable hash of the path", s},
      [](const Options& o, const DatasetContext& c) { return std::make_shared<FolderDataset>(o, c); },
      [](const fs::path& dir) {
        const char* classes[] = {"high", "low", "mid"};
        const double tones[] = {2000.0, 250.0, 800.0};
        for (int c = 0; c < 3; ++c) {
          fs::create_directories(dir / classes[c]);
          for (int i = 0; i < 12; ++i) {
            write_tone_wav(dir / classes[c] / fmt::format("clip{:02d}.wav", i), tones[c] * (1 + 0.02 * i), 0.25);
          }
        }
        return std::map<std::string, OptionValue>{{"root", dir.string()}};
      });
}

// `folder`: the plain folder-per-class layout (ESC-50 style): <root>/<class>/<clip>.<ext>.
// Classes are the sub-folders (not starting with '_' or '.'), sorted by name. Splits come
// from list files when present (validation_list.txt / testing_list.txt, paths relative to
// root, as Speech Commands does), otherwise from a stable hash of each clip's relative path,
// so a clip never changes split when files are added.
#include <fmt/format.h>

#include "patchbay/registry.hpp"
#include "patchbay_datasets/layout.hpp"

namespace {

namespace fs = std::filesystem;
using namespace patchbay;
using namespace patchbay::datasets;

class FolderDataset final : public ListedDataset {
 public:
  FolderDataset(const Options& o, const DatasetContext& ctx) : ListedDataset(false) {
    const fs::path root = resolve_root("folder", o.get_string("root"), ctx,
                                       "the folder holding one sub-folder per class");
    std::set<std::string> extensions;
    for (const auto& e : o.get_string_list("extensions")) extensions.insert("." + e);
    names_ = class_folders(root);
    if (names_.empty()) {
      throw DataError("data.no_classes",
                      fmt::format("dataset 'folder': '{}' has no class sub-folders; put each "
                                  "class's clips in <root>/<class name>/", root.string()));
    }
    const bool lists = fs::exists(root / "validation_list.txt") || fs::exists(root / "testing_list.txt");
    const auto valid = read_lines(root / "validation_list.txt");
    const auto test = read_lines(root / "testing_list.txt");
    const double valid_percent = o.get_real("valid_percent"), test_percent = o.get_real("test_percent");
    size_t total = 0;
    for (size_t label = 0; label < names_.size(); ++label) {
      for (const auto& f : audio_files(root / names_[label], extensions)) {
        Clip clip;
        clip.id = fs::relative(f, root).generic_string();
        clip.path = fs::absolute(f);
        clip.labels = {static_cast<int64_t>(label)};
        Split where = Split::train;
        if (lists) {
          where = valid.count(clip.id) ? Split::valid : test.count(clip.id) ? Split::test : Split::train;
        } else {
          where = hashed_split(clip.id, valid_percent, test_percent);
        }
        split(where).push_back(std::move(clip));
        ++total;
      }
    }
    if (total == 0) {
      throw DataError("data.no_clips",
                      fmt::format("dataset 'folder': no audio files with extensions {} under '{}'; "
                                  "check dataset.extensions", fmt::join(extensions, " "), root.string()));
    }
  }
};

}  // namespace

void register_folder_dataset(patchbay::Registrar& registrar) {
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

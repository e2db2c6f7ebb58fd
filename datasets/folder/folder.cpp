// `folder`: the plain folder-per-class layout (ESC-50 style): <root>/<class>/<clip>.<ext>.
// Classes are the sub-folders (not starting with '_' or '.'), sorted by name. Splits come
// from list files when present (validation_list.txt / testing_list.txt, paths relative to
// root, as Speech Commands does), otherwise from a stable hash of each clip's relative path,
// so a clip never changes split when files are added.
// Or a CSV manifest (option `manifest`) with lines `path,labels[,split]`: paths relative to
// the manifest's folder, labels separated by ';' (several make the dataset multi-label),
// split one of train / valid / test (empty or absent: the stable hash). A header line
// starting with "path" is skipped; class names are the labels seen, sorted.
// on_bad_clip = "skip" leaves out manifest lines whose file is missing (skipped_clips()) and
// clips the front end cannot decode; "error" stops on either.
#include <fmt/format.h>

#include "patchbay/plugin.hpp"
#include "patchbay_datasets/layout.hpp"

namespace {

namespace fs = std::filesystem;
using namespace patchbay;
using namespace patchbay::datasets;

class FolderDataset final : public ListedDataset {
 public:
  FolderDataset(const Options& o, const DatasetContext& ctx) : ListedDataset(false, o) {
    valid_percent_ = o.get_real("valid_percent");
    test_percent_ = o.get_real("test_percent");
    if (!o.get_string("manifest").empty()) {
      read_manifest(o.get_string("manifest"), ctx);
      return;
    }
    if (o.get_string("root").empty()) {
      throw DataError("data.root_missing", "dataset 'folder' needs dataset.root (a folder with one "
                                           "sub-folder per class) or dataset.manifest (a CSV of "
                                           "path,labels[,split])");
    }
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
          where = hashed_split(clip.id, valid_percent_, test_percent_);
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

 private:
  void read_manifest(const std::string& name, const DatasetContext& ctx) {
    fs::path file(name);
    if (file.is_relative()) file = ctx.base_dir / file;
    std::ifstream in(file);
    if (!in) {
      throw DataError("data.missing", fmt::format("dataset 'folder': cannot read manifest '{}'; check "
                                                  "dataset.manifest", file.string()));
    }
    struct Row {
      fs::path path;
      std::vector<std::string> labels;
      std::string split;
    };
    std::vector<Row> rows;
    std::set<std::string> classes;
    std::vector<std::string> missing;
    std::string line;
    for (int64_t number = 1; std::getline(in, line); ++number) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (line.empty() || (number == 1 && line.rfind("path", 0) == 0)) continue;
      std::vector<std::string> cells;
      for (size_t start = 0;;) {
        const size_t comma = line.find(',', start);
        cells.push_back(line.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      if (cells.size() < 2 || cells.size() > 3 || cells[0].empty() || cells[1].empty()) {
        throw DataError("data.malformed", fmt::format("{}:{}: expected path,labels[,split], got '{}'",
                                                      file.string(), number, line));
      }
      Row row;
      row.path = fs::path(cells[0]).is_relative() ? file.parent_path() / cells[0] : fs::path(cells[0]);
      for (size_t start = 0;;) {
        const size_t semi = cells[1].find(';', start);
        auto label = cells[1].substr(start, semi == std::string::npos ? std::string::npos : semi - start);
        if (!label.empty()) {
          row.labels.push_back(label);
          classes.insert(label);
        }
        if (semi == std::string::npos) break;
        start = semi + 1;
      }
      row.split = cells.size() == 3 ? cells[2] : "";
      if (!row.split.empty() && row.split != "train" && row.split != "valid" && row.split != "test") {
        throw DataError("data.malformed", fmt::format("{}:{}: split '{}' must be train, valid or test "
                                                      "(or empty)", file.string(), number, row.split));
      }
      multi_label_ = multi_label_ || row.labels.size() > 1;
      if (!fs::exists(row.path)) {
        missing.push_back(row.path.string());
        if (skip_bad_) continue;  // left out, listed by skipped_clips()
      }
      rows.push_back(std::move(row));
    }
    if (!missing.empty() && !skip_bad_) {
      throw DataError("data.missing_clips",
                      fmt::format("dataset 'folder': {} file(s) listed in '{}' do not exist, e.g. '{}'; "
                                  "paths are read relative to the manifest's folder (or set "
                                  "dataset.on_bad_clip = \"skip\")",
                                  missing.size(), file.string(), missing.front()));
    }
    skipped_ = missing;
    if (rows.empty()) {
      throw DataError("data.no_clips", fmt::format("dataset 'folder': manifest '{}' lists no clips", file.string()));
    }
    names_.assign(classes.begin(), classes.end());
    for (auto& row : rows) {
      Clip clip;
      clip.path = fs::absolute(row.path).lexically_normal();
      clip.id = fs::relative(clip.path, fs::absolute(file.parent_path())).generic_string();
      for (const auto& l : row.labels) {
        clip.labels.push_back(std::lower_bound(names_.begin(), names_.end(), l) - names_.begin());
      }
      const Split where = row.split == "train" ? Split::train
                          : row.split == "valid" ? Split::valid
                          : row.split == "test"  ? Split::test
                                                 : hashed_split(clip.id, valid_percent_, test_percent_);
      split(where).push_back(std::move(clip));
    }
  }

  double valid_percent_ = 10, test_percent_ = 10;
};

}  // namespace

void register_folder_dataset(patchbay::Registrar& registrar) {
  OptionSchema s;
  s.add_string("root", "", "folder with one sub-folder of clips per class (relative to the "
               "experiment file)");
  s.add_string("manifest", "", "CSV of path,labels[,split] to read instead of root (labels "
               "separated by ';')");
  s.add({"extensions", OptionType::string_list,
         OptionValue{std::vector<std::string>{"wav", "flac", "ogg"}},
         "file extensions that count as clips", {}, {}});
  s.add_real("valid_percent", 10.0, "share of clips in the validation split (without list files)",
             Range::between(0, 100));
  s.add_real("test_percent", 10.0, "share of clips in the test split (without list files)",
             Range::between(0, 100));
  add_on_bad_clip_option(s);
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

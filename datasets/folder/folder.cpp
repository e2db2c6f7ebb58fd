// `folder`: the plain folder-per-class layout (ESC-50 style): <root>/<class>/<clip>.<ext>.
// Classes are the sub-folders (not starting with '_' or '.'), sorted by name. Splits come
// from list files when present (validation_list.txt / testing_list.txt, paths relative to
// root, as Speech Commands does), otherwise from a stable hash of each clip's relative path,
// so a clip never changes split when files are added.
// Or a CSV manifest (option `manifest`) with lines `path,labels[,split[,fold]]`: paths
// relative to the manifest's folder, labels separated by ';' (several make the dataset
// multi-label), split one of train / valid / test (empty or absent: the stable hash), fold a
// positive integer. A header line starting with "path" names the columns instead (path and
// labels, then split and fold in any order, e.g. "path,labels,fold"); class names are the
// labels seen, sorted.
// Folds (ESC-50 style cross-validation): with `fold = K` every row needs a fold and none a
// split; fold K is the test split, the next fold present (cyclically: after the last comes
// the first) the validation split, and the rest train. Sweeping dataset.fold over every fold
// gives one cross-validated point, which `patchbay report` pools over the folds' test clips.
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
    fold_ = o.get_int("fold");
    if (fold_ > 0 && o.get_string("manifest").empty()) {
      throw ConfigError("config.fold_without_manifest",
                        fmt::format("dataset.fold = {} needs a manifest with a fold column (dataset.manifest, "
                                    "columns path,labels,fold); a class-folder root has no folds", fold_));
    }
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
      int64_t fold = 0;  // 0: none given
      int64_t line = 0;
    };
    Columns columns;
    std::vector<Row> rows;
    std::set<std::string> classes;
    std::vector<std::string> missing;
    std::string line;
    for (int64_t number = 1; std::getline(in, line); ++number) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (line.empty()) continue;
      const std::vector<std::string> cells = split_cells(line);
      if (number == 1 && line.rfind("path", 0) == 0) {
        columns = header_columns(cells, file);
        continue;
      }
      const std::string& path = cells[0];
      const std::string& labels = cells.size() > 1 ? cells[1] : path;
      if (cells.size() < 2 || cells.size() > columns.count || path.empty() || labels.empty()) {
        throw DataError("data.malformed", fmt::format("{}:{}: expected {}, got '{}'", file.string(), number,
                                                      columns.usage(), line));
      }
      Row row;
      row.line = number;
      row.path = fs::path(path).is_relative() ? file.parent_path() / path : fs::path(path);
      for (size_t start = 0;;) {
        const size_t semi = labels.find(';', start);
        auto label = labels.substr(start, semi == std::string::npos ? std::string::npos : semi - start);
        if (!label.empty()) {
          row.labels.push_back(label);
          classes.insert(label);
        }
        if (semi == std::string::npos) break;
        start = semi + 1;
      }
      row.split = columns.split < cells.size() ? cells[columns.split] : "";
      if (!row.split.empty() && row.split != "train" && row.split != "valid" && row.split != "test") {
        throw DataError("data.malformed", fmt::format("{}:{}: split '{}' must be train, valid or test "
                                                      "(or empty)", file.string(), number, row.split));
      }
      if (columns.fold < cells.size() && !cells[columns.fold].empty()) {
        row.fold = parse_fold(cells[columns.fold], file, number);
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
    std::set<int64_t> folds;
    for (const auto& row : rows) {
      if (fold_ == 0) break;
      if (row.fold == 0 || !row.split.empty()) {
        throw DataError("data.malformed",
                        fmt::format("{}:{}: dataset.fold = {} splits by fold, so every row needs a fold and "
                                    "none a split; this row has {}", file.string(), row.line, fold_,
                                    row.fold == 0 ? "no fold" : fmt::format("split '{}'", row.split)));
      }
      folds.insert(row.fold);
    }
    const int64_t valid_fold = fold_ > 0 ? next_fold(folds, file) : 0;
    for (auto& row : rows) {
      Clip clip;
      clip.path = fs::absolute(row.path).lexically_normal();
      clip.id = fs::relative(clip.path, fs::absolute(file.parent_path())).generic_string();
      for (const auto& l : row.labels) {
        clip.labels.push_back(std::lower_bound(names_.begin(), names_.end(), l) - names_.begin());
      }
      const Split where = fold_ > 0              ? (row.fold == fold_       ? Split::test
                                                    : row.fold == valid_fold ? Split::valid
                                                                             : Split::train)
                          : row.split == "train" ? Split::train
                          : row.split == "valid" ? Split::valid
                          : row.split == "test"  ? Split::test
                                                 : hashed_split(clip.id, valid_percent_, test_percent_);
      split(where).push_back(std::move(clip));
    }
  }

  // Where each column is: positional path,labels,split,fold, or as a header names them.
  struct Columns {
    size_t split = 2, fold = 3, count = 4;
    std::vector<std::string> names{"path", "labels", "split", "fold"};
    std::string usage() const {
      std::string out = names[0] + "," + names[1];
      for (size_t i = 2; i < names.size(); ++i) out += "[," + names[i];
      return out + std::string(names.size() - 2, ']');
    }
  };

  static std::vector<std::string> split_cells(const std::string& line) {
    std::vector<std::string> cells;
    for (size_t start = 0;;) {
      const size_t comma = line.find(',', start);
      cells.push_back(line.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      if (comma == std::string::npos) return cells;
      start = comma + 1;
    }
  }

  static Columns header_columns(const std::vector<std::string>& cells, const fs::path& file) {
    Columns c;
    c.names = cells;
    c.count = cells.size();
    c.split = c.fold = cells.size();  // absent
    std::set<std::string> seen;
    for (size_t i = 0; i < cells.size(); ++i) {
      const std::string& name = cells[i];
      const bool known = (i == 0 && name == "path") || (i == 1 && name == "labels") ||
                         (i >= 2 && (name == "split" || name == "fold"));
      if (!known || !seen.insert(name).second) {
        throw DataError("data.malformed",
                        fmt::format("{}:1: header column '{}' at position {}: the header is path,labels then "
                                    "split and/or fold (e.g. path,labels,fold), each once", file.string(), name,
                                    i + 1));
      }
      if (name == "split") c.split = i;
      if (name == "fold") c.fold = i;
    }
    return c;
  }

  static int64_t parse_fold(const std::string& text, const fs::path& file, int64_t line) {
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != text.size() || v < 1) {
      throw DataError("data.malformed", fmt::format("{}:{}: fold '{}' must be a positive integer (1, 2, ...)",
                                                    file.string(), line, text));
    }
    return v;
  }

  // The validation fold: the one after fold_ among those present, cyclically.
  int64_t next_fold(const std::set<int64_t>& folds, const fs::path& file) const {
    const auto listing = fmt::format("{}", fmt::join(folds, ", "));
    if (!folds.count(fold_)) {
      throw ConfigError("config.fold", fmt::format("dataset.fold = {}, but the folds of '{}' are {}; pick one of them",
                                                   fold_, file.string(), listing));
    }
    if (folds.size() < 3) {
      throw ConfigError("config.fold", fmt::format("dataset.fold needs at least 3 folds (test, validation, training), "
                                                   "and '{}' has {} ({})", file.string(), folds.size(), listing));
    }
    const auto after = folds.upper_bound(fold_);
    return after == folds.end() ? *folds.begin() : *after;
  }

  double valid_percent_ = 10, test_percent_ = 10;
  int64_t fold_ = 0;
};

}  // namespace

void register_folder_dataset(patchbay::Registrar& registrar) {
  OptionSchema s;
  s.add_string("root", "", "folder with one sub-folder of clips per class (relative to the "
               "experiment file)");
  s.add_string("manifest", "", "CSV of path,labels[,split[,fold]] to read instead of root (labels "
               "separated by ';'; a header line names the columns)");
  s.add_int("fold", 0, "cross-validation: test on this fold of the manifest, validate on the next one "
            "(cyclically), train on the others; 0: no folds", Range::at_least(0));
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

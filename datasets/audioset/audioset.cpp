// `audioset`: AudioSet as AST users keep it (REFERENCE.md §7): one JSON datafile per split,
//   {"data": [{"wav": "<path>", "labels": "/m/09x0r,/m/05zppz"}, ...]},
// plus class_labels_indices.csv (index,mid,display_name). Multi-label. Relative wav paths are
// read relative to their JSON file. Without a validation datafile, a stable hash of each
// clip's path moves valid_percent % of the training data to validation.
// Missing audio files are listed together in one error, or skipped (on_bad_clip = "skip"),
// and then reported by skipped_clips(); clips that fail to decode follow the same option in
// the front end (skip_bad_clips()).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "patchbay/registry.hpp"
#include "patchbay_datasets/layout.hpp"

namespace {

namespace fs = std::filesystem;
using namespace patchbay;
using namespace patchbay::datasets;

fs::path resolve(const std::string& p, const DatasetContext& ctx) {
  fs::path path(p);
  return path.is_relative() ? ctx.base_dir / path : path;
}

class AudioSet final : public ListedDataset {
 public:
  AudioSet(const Options& o, const DatasetContext& ctx)
      : ListedDataset(true, o) {
    read_labels(resolve(o.get_string("labels_csv"), ctx));
    const std::string valid_json = o.get_string("valid_json");
    const double valid_percent = valid_json.empty() ? o.get_real("valid_percent") : 0.0;
    std::vector<std::string> missing;
    read_split(resolve(o.get_string("train_json"), ctx), Split::train, valid_percent, missing);
    if (!valid_json.empty()) read_split(resolve(valid_json, ctx), Split::valid, 0.0, missing);
    if (!o.get_string("test_json").empty()) {
      read_split(resolve(o.get_string("test_json"), ctx), Split::test, 0.0, missing);
    }
    if (!missing.empty() && !skip_bad_) {
      const size_t shown = std::min<size_t>(missing.size(), 20);
      throw DataError("data.missing_clips",
                      fmt::format("dataset 'audioset': {} audio file{} named in the datafiles do{} not "
                                  "exist:\n  {}{}\nfix the paths (relative paths are read from the "
                                  "JSON file's folder) or set dataset.on_bad_clip = \"skip\"",
                                  missing.size(), missing.size() == 1 ? "" : "s",
                                  missing.size() == 1 ? "es" : "", fmt::join(missing.begin(), missing.begin() + shown, "\n  "),
                                  missing.size() > shown ? fmt::format("\n  ... and {} more", missing.size() - shown) : ""));
    }
    skipped_ = std::move(missing);
  }

 private:
  void read_labels(const fs::path& csv) {
    std::ifstream in(csv);
    if (!in) {
      throw DataError("data.missing", fmt::format("dataset 'audioset': cannot read '{}'; set "
                                                  "dataset.labels_csv to class_labels_indices.csv",
                                                  csv.string()));
    }
    std::string line;
    int64_t number = 0;
    while (std::getline(in, line)) {
      ++number;
      while (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty() || (number == 1 && line.rfind("index", 0) == 0)) continue;
      const size_t c1 = line.find(',');
      const size_t c2 = c1 == std::string::npos ? c1 : line.find(',', c1 + 1);
      if (c2 == std::string::npos) {
        throw DataError("data.malformed", fmt::format("{}:{}: expected index,mid,display_name, got '{}'",
                                                      csv.string(), number, line));
      }
      const std::string mid = line.substr(c1 + 1, c2 - c1 - 1);
      std::string name = line.substr(c2 + 1);
      if (name.size() >= 2 && name.front() == '"' && name.back() == '"') name = name.substr(1, name.size() - 2);
      if (index_.count(mid)) {
        throw DataError("data.malformed", fmt::format("{}:{}: mid '{}' listed twice", csv.string(), number, mid));
      }
      index_[mid] = static_cast<int64_t>(names_.size());
      names_.push_back(name);
    }
    if (names_.empty()) {
      throw DataError("data.malformed", fmt::format("dataset 'audioset': '{}' lists no classes", csv.string()));
    }
  }

  void read_split(const fs::path& file, Split which, double valid_percent, std::vector<std::string>& missing) {
    std::ifstream in(file);
    if (!in) {
      throw DataError("data.missing", fmt::format("dataset 'audioset': cannot read datafile '{}'; check "
                                                  "dataset.{}_json", file.string(), to_string(which)));
    }
    nlohmann::json doc;
    try {
      doc = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw DataError("data.malformed", fmt::format("{}: not valid JSON ({}); AST's datafiles are "
                                                    "{{\"data\": [{{\"wav\": ..., \"labels\": ...}}]}}",
                                                    file.string(), e.what()));
    }
    if (!doc.is_object() || !doc.contains("data") || !doc["data"].is_array()) {
      throw DataError("data.malformed", fmt::format("{}: expected {{\"data\": [...]}} at the top", file.string()));
    }
    const auto& entries = doc["data"];
    for (size_t i = 0; i < entries.size(); ++i) {
      const auto& e = entries[i];
      if (!e.is_object() || !e.contains("wav") || !e["wav"].is_string() || !e.contains("labels") ||
          !e["labels"].is_string()) {
        throw DataError("data.malformed", fmt::format("{}: entry {} needs string fields \"wav\" and "
                                                      "\"labels\"", file.string(), i));
      }
      Clip clip;
      fs::path wav(e["wav"].get<std::string>());
      if (wav.is_relative()) wav = file.parent_path() / wav;
      clip.path = fs::absolute(wav).lexically_normal();
      clip.id = clip.path.generic_string();
      std::string labels = e["labels"].get<std::string>();
      size_t start = 0;
      while (start <= labels.size()) {
        const size_t comma = labels.find(',', start);
        std::string mid = labels.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!mid.empty()) {
          auto it = index_.find(mid);
          if (it == index_.end()) {
            throw DataError("data.unknown_label",
                            fmt::format("{}: entry {} has label '{}', which class_labels_indices.csv "
                                        "does not list", file.string(), i, mid));
          }
          clip.labels.push_back(it->second);
        }
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      if (clip.labels.empty()) {
        throw DataError("data.malformed", fmt::format("{}: entry {} has no labels", file.string(), i));
      }
      std::error_code ec;
      if (!fs::exists(clip.path, ec)) {
        missing.push_back(clip.path.string());
        continue;
      }
      Split target = which;
      if (which == Split::train && valid_percent > 0) target = hashed_split(clip.id, valid_percent, 0.0);
      split(target).push_back(std::move(clip));
    }
  }

  std::map<std::string, int64_t> index_;
};

}  // namespace

void register_audioset(patchbay::Registrar& registrar) {
  OptionSchema s;
  s.add_required_string("train_json", "training datafile {\"data\": [{\"wav\", \"labels\"}]}");
  s.add_string("valid_json", "", "validation datafile (empty: valid_percent of the training data)");
  s.add_string("test_json", "", "test (evaluation) datafile");
  s.add_required_string("labels_csv", "class_labels_indices.csv (index,mid,display_name)");
  s.add_real("valid_percent", 10.0, "share of training clips held out for validation when "
             "there is no valid_json", Range::between(0, 100));
  add_on_bad_clip_option(s);
  registrar.add_dataset(
      {"audioset", "AudioSet in AST's layout: JSON datafiles + class_labels_indices.csv, multi-label", s},
      [](const Options& o, const DatasetContext& c) { return std::make_shared<AudioSet>(o, c); },
      [](const fs::path& dir) {
        std::ofstream csv(dir / "class_labels_indices.csv");
        csv << "index,mid,display_name\n0,/gm/p000,\"Piano, acoustic\"\n1,/gm/p040,Violin\n2,/gm/d000,Drums\n";
        fs::create_directories(dir / "audio");
        nlohmann::json train = {{"data", nlohmann::json::array()}}, eval = train;
        const char* mids[] = {"/gm/p000", "/gm/p040", "/gm/d000"};
        for (int i = 0; i < 20; ++i) {
          const auto name = fmt::format("audio/clip{:02d}.wav", i);
          write_tone_wav(dir / name, 200.0 + 37.0 * i, 0.25);
          std::string labels = mids[i % 3];
          if (i % 4 == 0) labels += std::string(",") + mids[(i + 1) % 3];
          (i < 14 ? train : eval)["data"].push_back({{"wav", name}, {"labels", labels}});
        }
        std::ofstream(dir / "train.json") << train.dump(1);
        std::ofstream(dir / "eval.json") << eval.dump(1);
        return std::map<std::string, OptionValue>{
            {"train_json", (dir / "train.json").string()},
            {"test_json", (dir / "eval.json").string()},
            {"labels_csv", (dir / "class_labels_indices.csv").string()}};
      });
}

// AudioSet as AST users keep it (docs/reference.md §7), read by the `audioset` plugin and by the
// built-in `instruments` dataset (which generates that layout): one JSON datafile per split,
//   {"data": [{"wav": "<path>", "labels": "/m/09x0r,/m/05zppz"}, ...]},
// plus class_labels_indices.csv (index,mid,display_name). Multi-label. Relative wav paths are
// read relative to their JSON file; a clip's id is its "wav" string as written. Class index
// i is the CSV row whose `index` column is i. The including plugin links nlohmann_json.
#pragma once
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "patchbay_datasets/layout.hpp"

namespace patchbay::datasets {

class AudioSetLayout : public ListedDataset {
 public:
  struct Files {
    fs::path labels_csv;
    fs::path train_json;
    fs::path valid_json;  // empty: valid_percent % of the training clips, by a stable hash
    fs::path test_json;   // empty: no test split
    double valid_percent = 0.0;
  };

  // `dataset` names the plugin in messages. Missing audio files are listed together in one
  // error, or skipped (on_bad_clip = "skip") and reported by skipped_clips(). Throws
  // DataError "data.missing" (a file cannot be read), "data.malformed", "data.unknown_label",
  // "data.missing_clips".
  AudioSetLayout(const std::string& dataset, const Files& files, const Options& options)
      : ListedDataset(true, options), dataset_(dataset) {
    read_labels(files.labels_csv);
    const double valid_percent = files.valid_json.empty() ? files.valid_percent : 0.0;
    std::vector<std::string> missing;
    read_split(files.train_json, Split::train, valid_percent, missing);
    if (!files.valid_json.empty()) read_split(files.valid_json, Split::valid, 0.0, missing);
    if (!files.test_json.empty()) read_split(files.test_json, Split::test, 0.0, missing);
    if (!missing.empty() && !skip_bad_) {
      const size_t shown = std::min<size_t>(missing.size(), 20);
      throw DataError("data.missing_clips",
                      fmt::format("dataset '{}': {} audio file{} named in the datafiles do{} not "
                                  "exist:\n  {}{}\nfix the paths (relative paths are read from the "
                                  "JSON file's folder) or set dataset.on_bad_clip = \"skip\"",
                                  dataset_, missing.size(), missing.size() == 1 ? "" : "s",
                                  missing.size() == 1 ? "es" : "", fmt::join(missing.begin(), missing.begin() + shown, "\n  "),
                                  missing.size() > shown ? fmt::format("\n  ... and {} more", missing.size() - shown) : ""));
    }
    skipped_ = std::move(missing);
  }

 private:
  void read_labels(const fs::path& csv) {
    std::ifstream in(csv);
    if (!in) {
      throw DataError("data.missing", fmt::format("dataset '{}': cannot read '{}'; set "
                                                  "dataset.labels_csv to class_labels_indices.csv",
                                                  dataset_, csv.string()));
    }
    std::string line;
    int64_t number = 0;
    std::map<int64_t, std::string> by_index;
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
      // The class index is the CSV's `index` column (AST's make_index_dict), not the row.
      const std::string index_text = line.substr(0, c1);
      char* end = nullptr;
      const long long index = std::strtoll(index_text.c_str(), &end, 10);
      if (index_text.empty() || *end != '\0' || index < 0) {
        throw DataError("data.malformed", fmt::format("{}:{}: the index column must be a whole number "
                                                      ">= 0, got '{}'", csv.string(), number, index_text));
      }
      if (by_index.count(index)) {
        throw DataError("data.malformed", fmt::format("{}:{}: index {} listed twice", csv.string(), number, index));
      }
      index_[mid] = index;
      by_index[index] = name;
    }
    if (by_index.empty()) {
      throw DataError("data.malformed", fmt::format("dataset '{}': '{}' lists no classes", dataset_, csv.string()));
    }
    int64_t expected = 0;
    for (const auto& [index, name] : by_index) {
      if (index != expected) {
        throw DataError("data.malformed", fmt::format("{}: class indices must be 0..{} with none missing; "
                                                      "index {} is missing", csv.string(), by_index.size() - 1,
                                                      expected));
      }
      names_.push_back(name);
      ++expected;
    }
  }

  void read_split(const fs::path& file, Split which, double valid_percent, std::vector<std::string>& missing) {
    std::ifstream in(file);
    if (!in) {
      throw DataError("data.missing", fmt::format("dataset '{}': cannot read datafile '{}'; check "
                                                  "dataset.{}_json", dataset_, file.string(), to_string(which)));
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
      // The id is the datafile's "wav" string as written: the validation hold-out hashes it,
      // so it stays put when the data folder moves (an absolute path would not).
      clip.id = e["wav"].get<std::string>();
      fs::path wav(clip.id);
      if (wav.is_relative()) wav = file.parent_path() / wav;
      clip.path = fs::absolute(wav).lexically_normal();
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

  std::string dataset_;
  std::map<std::string, int64_t> index_;
};

}  // namespace patchbay::datasets

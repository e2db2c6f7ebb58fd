// `audioset`: AudioSet as AST users keep it (docs/reference.md §7; the reading is in
// patchbay_datasets/audioset_layout.hpp, shared with the built-in `instruments` dataset): one
// JSON datafile per split,
//   {"data": [{"wav": "<path>", "labels": "/m/09x0r,/m/05zppz"}, ...]},
// plus class_labels_indices.csv (index,mid,display_name). Multi-label. Relative wav paths are
// read relative to their JSON file. Without a validation datafile, a stable hash of each
// clip's path moves valid_percent % of the training data to validation.
// Missing audio files are listed together in one error, or skipped (on_bad_clip = "skip"),
// and then reported by skipped_clips(); clips that fail to decode follow the same option in
// the front end (skip_bad_clips()).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "patchbay/plugin.hpp"
#include "patchbay_datasets/audioset_layout.hpp"

namespace {

namespace fs = std::filesystem;
using namespace patchbay;
using namespace patchbay::datasets;

fs::path resolve(const std::string& p, const DatasetContext& ctx) {
  fs::path path(p);
  return path.is_relative() ? ctx.base_dir / path : path;
}

AudioSetLayout::Files files_of(const Options& o, const DatasetContext& ctx) {
  AudioSetLayout::Files f;
  f.labels_csv = resolve(o.get_string("labels_csv"), ctx);
  f.train_json = resolve(o.get_string("train_json"), ctx);
  if (!o.get_string("valid_json").empty()) f.valid_json = resolve(o.get_string("valid_json"), ctx);
  if (!o.get_string("test_json").empty()) f.test_json = resolve(o.get_string("test_json"), ctx);
  f.valid_percent = o.get_real("valid_percent");
  return f;
}

class AudioSet final : public AudioSetLayout {
 public:
  AudioSet(const Options& o, const DatasetContext& ctx) : AudioSetLayout("audioset", files_of(o, ctx), o) {}
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

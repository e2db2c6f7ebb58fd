// Dataset plugins read their real on-disk layouts (the conformance suite checks the generic
// contract on each plugin's example; these check the layout rules and the bad-input paths).
#include <doctest/doctest.h>

#include <fstream>

#include <fmt/format.h>

#include "helpers.hpp"
#include "patchbay/error.hpp"

namespace fs = std::filesystem;
using namespace patchbay;

namespace {

const Registry& registry() { return test::linked_registry(); }

std::shared_ptr<Dataset> make(const std::string& name, const std::map<std::string, OptionValue>& set,
                              const fs::path& base) {
  auto o = Options::defaults(registry().get(PluginKind::dataset, name).description.options);
  for (const auto& [k, v] : set) o.set(k, v);
  return registry().make_dataset(name, o, DatasetContext{base});
}

void touch(const fs::path& p) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << "x";
}

std::string data_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.id() + ": " + e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("speech_commands: lists decide splits; background noise is not a class") {
  test::TempDir dir;
  const auto root = dir.path() / "sc";
  for (const char* f : {"yes/a_nohash_0.wav", "yes/b_nohash_0.wav", "yes/c_nohash_0.wav", "no/a_nohash_0.wav",
                        "no/b_nohash_0.wav", "_background_noise_/white.wav"}) {
    touch(root / f);
  }
  std::ofstream(root / "validation_list.txt") << "yes/b_nohash_0.wav\r\nno/b_nohash_0.wav\n";
  std::ofstream(root / "testing_list.txt") << "yes/c_nohash_0.wav\n";
  auto ds = make("speech_commands", {{"root", std::string("sc")}}, dir.path());  // relative root
  CHECK(ds->class_names() == std::vector<std::string>{"no", "yes"});
  CHECK_FALSE(ds->multi_label());
  const auto train = ds->clips(Split::train);
  REQUIRE(train.size() == 2);
  CHECK(train[0].id == "no/a_nohash_0.wav");
  CHECK(train[0].labels == std::vector<int64_t>{0});
  CHECK(train[1].id == "yes/a_nohash_0.wav");
  CHECK(ds->clips(Split::valid).size() == 2);
  CHECK(ds->clips(Split::test).size() == 1);
  // The same ids (and so splits) from a root written with a trailing slash and a '.'.
  for (const std::string& spelled : {root.string() + "/", (dir.path() / "." / "sc").string()}) {
    CAPTURE(spelled);
    const auto again = make("speech_commands", {{"root", spelled}}, dir.path());
    CHECK(again->clips(Split::train)[1].id == "yes/a_nohash_0.wav");
    CHECK(again->clips(Split::valid).size() == 2);
    CHECK(again->clips(Split::test).size() == 1);
  }

  // A subset of classes, in the given label order.
  ds = make("speech_commands", {{"root", root.string()}, {"classes", std::vector<std::string>{"yes"}}}, dir.path());
  CHECK(ds->class_names() == std::vector<std::string>{"yes"});
  CHECK(ds->clips(Split::train).size() == 1);
  CHECK(data_error([&] {
          make("speech_commands", {{"root", root.string()}, {"classes", std::vector<std::string>{"maybe"}}}, dir.path());
        }) == "data.unknown_class: dataset 'speech_commands': class 'maybe' (dataset.classes) has no "
              "folder under '" + root.string() + "'; available: no, yes");
  fs::remove(root / "testing_list.txt");
  CHECK(data_error([&] { make("speech_commands", {{"root", root.string()}}, dir.path()); })
            .rfind("data.layout: dataset 'speech_commands': '" + (root / "testing_list.txt").string() +
                       "' is missing",
                   0) == 0);
}

TEST_CASE("folder: hashed splits are stable and near the requested shares") {
  test::TempDir dir;
  for (int i = 0; i < 400; ++i) touch(dir.path() / (i % 2 ? "a" : "b") / ("clip" + std::to_string(i) + ".wav"));
  touch(dir.path() / "a" / "notes.txt");  // not audio
  auto ds = make("folder", {{"root", dir.path().string()}}, dir.path());
  const auto valid = ds->clips(Split::valid).size(), test = ds->clips(Split::test).size();
  CHECK(valid + test + ds->clips(Split::train).size() == 400);
  CHECK(valid > 20);
  CHECK(valid < 65);
  CHECK(test > 20);
  CHECK(test < 65);
  CHECK(data_error([&] { make("folder", {{"root", (dir.path() / "nope").string()}}, dir.path()); }) ==
        "data.root_missing: dataset 'folder': root '" + (dir.path() / "nope").string() +
            "' is not a folder; set dataset.root to the folder holding one sub-folder per class");
  // A relative root says where it was looked for (the experiment file's folder, also for a
  // command-line override), not only the joined path.
  CHECK(data_error([&] { make("folder", {{"root", "nope"}}, dir.path()); }) ==
        "data.root_missing: dataset 'folder': root '" + (dir.path() / "nope").string() +
            "' is not a folder (the relative root 'nope' is read from the experiment file's folder, " +
            dir.path().string() + "); set dataset.root to the folder holding one sub-folder per class");
}

TEST_CASE("folder: a CSV manifest with several labels and explicit splits") {
  test::TempDir dir;
  const auto d = dir.path();
  for (const char* f : {"a.wav", "b.wav", "c.wav", "sub/d.wav"}) touch(d / "clips" / f);
  std::ofstream(d / "clips" / "manifest.csv") << "path,labels,split\n"
                                                 "a.wav,dog,train\n"
                                                 "b.wav,dog;rain,valid\n"
                                                 "c.wav,rain,test\n"
                                                 "sub/d.wav,cat,\n";
  auto ds = make("folder", {{"manifest", std::string("clips/manifest.csv")}}, d);
  CHECK(ds->multi_label());
  CHECK(ds->class_names() == std::vector<std::string>{"cat", "dog", "rain"});
  REQUIRE(ds->clips(Split::valid).size() == 1);
  CHECK(ds->clips(Split::valid)[0].labels == std::vector<int64_t>{1, 2});
  CHECK(ds->clips(Split::test)[0].id == "c.wav");
  size_t total = 0;
  for (auto s : {Split::train, Split::valid, Split::test}) total += ds->clips(s).size();
  CHECK(total == 4);
  std::ofstream(d / "clips" / "manifest.csv") << "a.wav,dog,later\n";
  CHECK(data_error([&] { make("folder", {{"manifest", std::string("clips/manifest.csv")}}, d); }) ==
        "data.malformed: " + (d / "clips" / "manifest.csv").string() +
            ":1: split 'later' must be train, valid or test (or empty)");
  CHECK(data_error([&] { make("folder", {}, d); }) ==
        "data.root_missing: dataset 'folder' needs dataset.root (a folder with one sub-folder per "
        "class) or dataset.manifest (a CSV of path,labels[,split])");
}

TEST_CASE("folder: dataset.fold tests on a fold of the manifest, validates on the next, trains on the rest") {
  test::TempDir dir;
  const auto d = dir.path();
  // 5 folds (ESC-50's count) of 2 clips, columns named by the header in another order.
  std::string manifest = "path,labels,fold\n";
  for (int fold = 1; fold <= 5; ++fold) {
    for (int i = 0; i < 2; ++i) {
      const std::string f = fmt::format("f{}_{}.wav", fold, i);
      touch(d / f);
      manifest += fmt::format("{},{},{}\n", f, i == 0 ? "dog" : "rain", fold);
    }
  }
  std::ofstream(d / "folds.csv") << manifest;
  const auto ids = [](const Dataset& ds, Split s) {
    std::vector<std::string> out;
    for (const auto& c : ds.clips(s)) out.push_back(c.id);
    return out;
  };
  const auto fold2 = make("folder", {{"manifest", std::string("folds.csv")}, {"fold", int64_t{2}}}, d);
  CHECK(ids(*fold2, Split::test) == std::vector<std::string>{"f2_0.wav", "f2_1.wav"});
  CHECK(ids(*fold2, Split::valid) == std::vector<std::string>{"f3_0.wav", "f3_1.wav"});
  CHECK(ids(*fold2, Split::train).size() == 6);
  // The last fold validates on the first (cyclically).
  const auto fold5 = make("folder", {{"manifest", std::string("folds.csv")}, {"fold", int64_t{5}}}, d);
  CHECK(ids(*fold5, Split::valid) == std::vector<std::string>{"f1_0.wav", "f1_1.wav"});
  // Without dataset.fold the fold column is not used: the stable hash splits.
  const auto none = make("folder", {{"manifest", std::string("folds.csv")}}, d);
  CHECK(none->clips(Split::train).size() + none->clips(Split::valid).size() + none->clips(Split::test).size() == 10);

  const auto config_error = [&](const std::map<std::string, OptionValue>& set) {
    try {
      make("folder", set, d);
    } catch (const ConfigError& e) {
      return e.id() + ": " + e.what();
    }
    return std::string("(no error)");
  };
  CHECK(config_error({{"manifest", std::string("folds.csv")}, {"fold", int64_t{6}}}) ==
        "config.fold: dataset.fold = 6, but the folds of '" + (d / "folds.csv").string() +
            "' are 1, 2, 3, 4, 5; pick one of them");
  CHECK(config_error({{"root", std::string(".")}, {"fold", int64_t{1}}}).rfind("config.fold_without_manifest", 0) == 0);
  std::ofstream(d / "folds.csv") << manifest << "extra.wav,dog\n";
  touch(d / "extra.wav");
  CHECK(data_error([&] { make("folder", {{"manifest", std::string("folds.csv")}, {"fold", int64_t{1}}}, d); }) ==
        "data.malformed: " + (d / "folds.csv").string() +
            ":12: dataset.fold = 1 splits by fold, so every row needs a fold and none a split; this row has no fold");
  std::ofstream(d / "folds.csv") << "path,labels,fold\nf1_0.wav,dog,first\n";
  CHECK(data_error([&] { make("folder", {{"manifest", std::string("folds.csv")}, {"fold", int64_t{1}}}, d); }) ==
        "data.malformed: " + (d / "folds.csv").string() + ":2: fold 'first' must be a positive integer (1, 2, ...)");
  std::ofstream(d / "folds.csv") << "path,labels,target\nf1_0.wav,dog,1\n";
  CHECK(data_error([&] { make("folder", {{"manifest", std::string("folds.csv")}}, d); }) ==
        "data.malformed: " + (d / "folds.csv").string() + ":1: header column 'target' at position 3: the header is "
            "path,labels then split and/or fold (e.g. path,labels,fold), each once");
  // Positional columns without a header: path,labels,split,fold.
  std::ofstream(d / "folds.csv") << "f1_0.wav,dog,,1\nf2_0.wav,dog,,2\nf3_0.wav,rain,,3\n";
  const auto positional = make("folder", {{"manifest", std::string("folds.csv")}, {"fold", int64_t{3}}}, d);
  CHECK(ids(*positional, Split::test) == std::vector<std::string>{"f3_0.wav"});
  CHECK(ids(*positional, Split::valid) == std::vector<std::string>{"f1_0.wav"});
}

TEST_CASE("audioset: the validation hold-out hashes the datafile's wav string, so it moves with the data") {
  // Two copies of one data folder in different places hold out the same clips.
  std::vector<std::vector<std::string>> held_out;
  for (int copy = 0; copy < 2; ++copy) {
    test::TempDir dir;
    const auto d = dir.path() / (copy == 0 ? "here" : "elsewhere/deeper");
    fs::create_directories(d);
    std::ofstream(d / "labels.csv") << "index,mid,display_name\n0,/m/a,A\n";
    std::string entries;
    for (int i = 0; i < 60; ++i) {
      touch(d / "wav" / fmt::format("{}.wav", i));
      entries += fmt::format(R"({}{{"wav": "wav/{}.wav", "labels": "/m/a"}})", i ? "," : "", i);
    }
    std::ofstream(d / "train.json") << R"({"data": [)" << entries << "]}";
    auto ds = make("audioset", {{"train_json", std::string("train.json")}, {"labels_csv", std::string("labels.csv")},
                                {"valid_percent", 30.0}}, d);
    std::vector<std::string> ids;
    for (const auto& c : ds->clips(Split::valid)) ids.push_back(c.id);
    CHECK(!ids.empty());
    CHECK(ids.front().rfind("wav/", 0) == 0);  // the string as written
    held_out.push_back(ids);
  }
  CHECK(held_out[0] == held_out[1]);
}

TEST_CASE("audioset: class indices come from the CSV's index column") {
  test::TempDir dir;
  const auto d = dir.path();
  std::ofstream(d / "labels.csv") << "index,mid,display_name\n1,/m/b,Music\n0,/m/a,Speech\n";
  touch(d / "wav" / "1.wav");
  std::ofstream(d / "train.json") << R"({"data": [{"wav": "wav/1.wav", "labels": "/m/b"}]})";
  const std::map<std::string, OptionValue> base = {{"train_json", std::string("train.json")},
                                                   {"labels_csv", std::string("labels.csv")},
                                                   {"valid_percent", 0.0}};
  auto ds = make("audioset", base, d);
  CHECK(ds->class_names() == std::vector<std::string>{"Speech", "Music"});
  CHECK(ds->clips(Split::train)[0].labels == std::vector<int64_t>{1});
  std::ofstream(d / "labels.csv") << "index,mid,display_name\n0,/m/a,Speech\n2,/m/b,Music\n";
  CHECK(data_error([&] { make("audioset", base, d); }) ==
        "data.malformed: " + (d / "labels.csv").string() + ": class indices must be 0..1 with none missing; "
        "index 1 is missing");
}

TEST_CASE("audioset: AST's datafiles, multi-label, relative paths, missing files") {
  test::TempDir dir;
  const auto d = dir.path();
  std::ofstream(d / "labels.csv") << "index,mid,display_name\n0,/m/a,\"Speech, male\"\n1,/m/b,Music\n";
  touch(d / "wav" / "1.wav");
  touch(d / "wav" / "2.wav");
  std::ofstream(d / "train.json") << R"({"data": [{"wav": "wav/1.wav", "labels": "/m/a,/m/b"},
                                                  {"wav": ")" << (d / "wav" / "2.wav").string() << R"(", "labels": "/m/b"}]})";
  std::ofstream(d / "eval.json") << R"({"data": [{"wav": "wav/1.wav", "labels": "/m/a"}]})";
  const std::map<std::string, OptionValue> base = {{"train_json", std::string("train.json")},
                                                   {"test_json", std::string("eval.json")},
                                                   {"labels_csv", std::string("labels.csv")},
                                                   {"valid_percent", 0.0}};
  auto ds = make("audioset", base, d);
  CHECK(ds->multi_label());
  CHECK(ds->class_names() == std::vector<std::string>{"Speech, male", "Music"});
  const auto train = ds->clips(Split::train);
  REQUIRE(train.size() == 2);
  CHECK(train[0].labels == std::vector<int64_t>{0, 1});
  CHECK(train[0].path == (d / "wav" / "1.wav"));
  CHECK(ds->clips(Split::test).size() == 1);

  // Missing files: one error naming them all, or skipped and reported.
  std::ofstream(d / "train.json") << R"({"data": [{"wav": "wav/1.wav", "labels": "/m/a"},
      {"wav": "wav/gone1.wav", "labels": "/m/a"}, {"wav": "wav/gone2.wav", "labels": "/m/b"}]})";
  CHECK(data_error([&] { make("audioset", base, d); }) ==
        "data.missing_clips: dataset 'audioset': 2 audio files named in the datafiles do not exist:\n  " +
            (d / "wav" / "gone1.wav").string() + "\n  " + (d / "wav" / "gone2.wav").string() +
            "\nfix the paths (relative paths are read from the JSON file's folder) or set "
            "dataset.on_bad_clip = \"skip\"");
  auto skip = base;
  skip["on_bad_clip"] = std::string("skip");
  ds = make("audioset", skip, d);
  CHECK(ds->clips(Split::train).size() == 1);
  CHECK(ds->skipped_clips().size() == 2);

  std::ofstream(d / "train.json") << R"({"data": [{"wav": "wav/1.wav", "labels": "/m/zzz"}]})";
  CHECK(data_error([&] { make("audioset", base, d); }) ==
        "data.unknown_label: " + (d / "train.json").string() +
            ": entry 0 has label '/m/zzz', which class_labels_indices.csv does not list");
  std::ofstream(d / "train.json") << R"({"data": [)";
  CHECK(data_error([&] { make("audioset", base, d); }).rfind("data.malformed: " + (d / "train.json").string() + ": not valid JSON", 0) == 0);
}

TEST_CASE("datasets: every plugin takes on_bad_clip and reports it through skip_bad_clips()") {
  for (const char* name : {"folder", "speech_commands", "audioset"}) {
    CAPTURE(name);
    const auto& entry = registry().get(PluginKind::dataset, name);
    const OptionSpec* spec = entry.description.options.find("on_bad_clip");
    REQUIRE(spec != nullptr);
    CHECK(spec->help.find("\"skip\" leaves it out") != std::string::npos);
    test::TempDir dir;
    auto set = entry.dataset_example(dir.path());
    CHECK_FALSE(make(name, set, dir.path())->skip_bad_clips());  // default "error"
    set["on_bad_clip"] = std::string("skip");
    CHECK(make(name, set, dir.path())->skip_bad_clips());
    set["on_bad_clip"] = std::string("error");
    CHECK_FALSE(make(name, set, dir.path())->skip_bad_clips());
    CHECK(spec->choices == std::vector<std::string>{"error", "skip"});
    CHECK(std::get<std::string>(*spec->default_value) == "error");
  }

  // folder's manifest: missing files stop the listing, or are left out and reported.
  test::TempDir dir;
  const auto d = dir.path();
  touch(d / "a.wav");
  std::ofstream(d / "list.csv") << "a.wav,dog,train\ngone.wav,cat,train\n";
  CHECK(data_error([&] { make("folder", {{"manifest", std::string("list.csv")}}, d); })
            .rfind("data.missing_clips: dataset 'folder': 1 file(s) listed in", 0) == 0);
  auto ds = make("folder", {{"manifest", std::string("list.csv")}, {"on_bad_clip", std::string("skip")}}, d);
  CHECK(ds->clips(Split::train).size() == 1);
  CHECK(ds->skipped_clips() == std::vector<std::string>{(d / "gone.wav").string()});
  CHECK(ds->class_names() == std::vector<std::string>{"cat", "dog"});  // labels stay stable
}
}

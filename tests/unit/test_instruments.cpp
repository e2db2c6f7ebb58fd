// The instruments generator: AudioSet layout that the audioset plugin reads, multi-hot labels
// with 1-3 instruments, 2-5 s 16 kHz mono clips that are neither silent nor clipped, every
// class in exactly per_class clips, byte-for-byte determinism per seed; the `instruments`
// dataset plugin generating once and reusing its folder.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "instruments.hpp"
#include "patchbay/error.hpp"
#include "patchbay/fbank.hpp"
#include "patchbay/registry.hpp"

namespace fs = std::filesystem;
using namespace patchbay;
using patchbay::test::differences;
using patchbay::test::snapshot;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

InstrumentsOptions small(uint64_t seed) {
  InstrumentsOptions o;
  o.classes = {"piano", "violin", "electric_bass", "drums"};
  o.per_class = 4;
  o.seed = seed;
  return o;
}

std::shared_ptr<Dataset> read_as_audioset(const fs::path& root) {
  const auto& registry = test::linked_registry();
  Options opts = Options::defaults(registry.get(PluginKind::dataset, "audioset").description.options);
  opts.set("train_json", (root / "train.json").string());
  opts.set("valid_json", (root / "valid.json").string());
  opts.set("test_json", (root / "test.json").string());
  opts.set("labels_csv", (root / "class_labels_indices.csv").string());
  return registry.make_dataset("audioset", opts, DatasetContext{root});
}

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("instruments: classes are General MIDI programs plus the drum kit, with unique keys and mids") {
  const auto& classes = instrument_classes();
  CHECK(classes.size() >= 20);
  CHECK(classes.size() <= 28);
  std::set<std::string> keys, mids;
  for (const auto& c : classes) {
    CAPTURE(c.key);
    CHECK(keys.insert(c.key).second);
    CHECK(mids.insert(c.mid).second);
    if (c.program < 0) {
      CHECK(c.mid == "/gm/drums");
    } else {
      CHECK(c.program < 128);
      CHECK(c.mid == fmt::format("/gm/p{:03d}", c.program));
    }
    CHECK(c.display_name.find(',') == std::string::npos);  // CSV-safe
  }
  CHECK(mids.count("/gm/drums") == 1);
  CHECK(mids.count("/gm/p040") == 1);  // violin
  CHECK(fs::exists(default_soundfont()));
}

TEST_CASE("instruments: an AudioSet layout of multi-label, audible 2-5 s clips the audioset plugin reads") {
  test::TempDir dir;
  const fs::path root = dir.path() / "ins";
  int64_t progress_calls = 0, last_total = 0;
  InstrumentsOptions o = small(3);
  o.progress = [&](int64_t done, int64_t total) {
    ++progress_calls;
    CHECK(done <= total);
    last_total = total;
  };
  const InstrumentsSummary s = generate_instruments(o, root);
  const int64_t clips = s.train + s.valid + s.test;
  CHECK(progress_calls == clips);
  CHECK(last_total == clips);
  CHECK(clips >= 16 / 3);  // 4 classes x 4 appearances, at most 3 per clip
  CHECK(clips <= 16);
  CHECK(s.valid >= 1);
  CHECK(s.test >= 1);
  CHECK(s.classes == 4);
  CHECK(s.soundfont == default_soundfont());

  // The files AST's layout has, with the bytes the audioset plugin expects.
  CHECK(slurp(root / "class_labels_indices.csv") ==
        "index,mid,display_name\n0,/gm/p000,\"Acoustic Grand Piano\"\n1,/gm/p040,\"Violin\"\n"
        "2,/gm/p033,\"Electric Bass (finger)\"\n3,/gm/drums,\"Drum Kit\"\n");
  std::map<std::string, std::string> labels_of;  // wav -> labels, over all splits
  for (const char* split : {"train.json", "valid.json", "test.json"}) {
    const auto doc = nlohmann::json::parse(slurp(root / split));
    REQUIRE(doc.at("data").is_array());
    for (const auto& e : doc["data"]) {
      const std::string wav = e.at("wav").get<std::string>();
      CHECK(wav.rfind("audio/", 0) == 0);  // relative to the JSON file's folder
      CHECK(fs::exists(root / wav));
      CHECK(labels_of.emplace(wav, e.at("labels").get<std::string>()).second);
    }
  }
  CHECK(static_cast<int64_t>(labels_of.size()) == clips);
  size_t wavs = 0;
  for (const auto& e : fs::directory_iterator(root / "audio")) wavs += e.path().extension() == ".wav";
  CHECK(static_cast<int64_t>(wavs) == clips);
  std::string first;
  std::getline(std::ifstream(root / "README.txt"), first);
  CHECK(first.find(kInstrumentsGeneratorVersion) != std::string::npos);

  const auto ds = read_as_audioset(root);
  CHECK(ds->multi_label());
  CHECK(ds->class_names() == std::vector<std::string>{"Acoustic Grand Piano", "Violin",
                                                      "Electric Bass (finger)", "Drum Kit"});
  std::map<int64_t, int> appearances;
  int64_t listed = 0;
  for (Split split : {Split::train, Split::valid, Split::test}) {
    const auto list = ds->clips(split);
    CHECK_MESSAGE(!list.empty(), to_string(split));
    for (const auto& clip : list) {
      CAPTURE(clip.id);
      ++listed;
      CHECK(clip.labels.size() >= 1);
      CHECK(clip.labels.size() <= 3);
      CHECK(std::set<int64_t>(clip.labels.begin(), clip.labels.end()).size() == clip.labels.size());
      for (int64_t l : clip.labels) ++appearances[l];
      const Waveform w = read_audio(clip.path, 0);  // 0: keep the file's rate
      CHECK(w.sample_rate == 16000);
      REQUIRE(w.samples.dim() == 1);
      CHECK(w.samples.size(0) >= 2 * 16000);
      CHECK(w.samples.size(0) <= 5 * 16000);
      const double peak = w.samples.abs().max().item<double>();
      CHECK(peak <= 0.8913 + 1e-4);  // -1 dBFS at most: never clipped
      CHECK(peak >= 0.0999);         // -20 dBFS at least
      const double rms = w.samples.pow(2).mean().sqrt().item<double>();
      CHECK_MESSAGE(rms > 0.005, "nearly silent, rms " << rms);
      // Sound throughout, not only at the start: the last second is not silent either.
      const double tail = w.samples.slice(0, w.samples.size(0) - 16000).pow(2).mean().sqrt().item<double>();
      CHECK_MESSAGE(tail > 0.001, "silent last second, rms " << tail);
    }
  }
  CHECK(listed == clips);
  CHECK(appearances == std::map<int64_t, int>{{0, 4}, {1, 4}, {2, 4}, {3, 4}});  // exactly per_class

  // clips.txt describes every clip (key, tempo, each instrument's role).
  std::ifstream described(root / "clips.txt");
  int64_t lines = 0;
  for (std::string line; std::getline(described, line);) {
    ++lines;
    CHECK(line.find(" bpm") != std::string::npos);
  }
  CHECK(lines == clips);
}

TEST_CASE("instruments: folds.csv deals every clip into one of 5 folds that the folder plugin cross-validates") {
  test::TempDir dir;
  const fs::path root = dir.path() / "ins";
  InstrumentsOptions o = small(4);
  o.per_class = 10;  // 4 classes x 10: every first class reaches all 5 folds
  const InstrumentsSummary s = generate_instruments(o, root);
  const int64_t clips = s.train + s.valid + s.test;
  std::ifstream csv(root / "folds.csv");
  std::string line;
  std::getline(csv, line);
  CHECK(line == "path,labels,fold");
  std::map<int64_t, int64_t> per_fold;
  std::set<std::string> paths;
  while (std::getline(csv, line)) {
    CAPTURE(line);
    const size_t a = line.find(','), b = line.rfind(',');
    REQUIRE(a != b);
    CHECK(paths.insert(line.substr(0, a)).second);
    CHECK(fs::exists(root / line.substr(0, a)));
    ++per_fold[std::stoll(line.substr(b + 1))];
  }
  CHECK(static_cast<int64_t>(paths.size()) == clips);
  REQUIRE(per_fold.size() == 5);
  CHECK(per_fold.begin()->first == 1);
  CHECK(per_fold.rbegin()->first == 5);
  for (const auto& [fold, n] : per_fold) CHECK_MESSAGE(n >= clips / 5 - 4, "fold " << fold << ": " << n);

  const auto& registry = test::linked_registry();
  Options opts = Options::defaults(registry.get(PluginKind::dataset, "folder").description.options);
  opts.set("manifest", (root / "folds.csv").string());
  opts.set("fold", int64_t{5});
  const auto ds = registry.make_dataset("folder", opts, DatasetContext{root});
  CHECK(ds->multi_label());
  CHECK(ds->class_names() == std::vector<std::string>{"drums", "electric_bass", "piano", "violin"});
  CHECK(static_cast<int64_t>(ds->clips(Split::test).size()) == per_fold[5]);
  CHECK(static_cast<int64_t>(ds->clips(Split::valid).size()) == per_fold[1]);  // the next fold, cyclically
  CHECK(static_cast<int64_t>(ds->clips(Split::train).size()) == per_fold[2] + per_fold[3] + per_fold[4]);
}

TEST_CASE("instruments: same seed, same bytes; another seed, other bytes; a used folder is refused") {
  test::TempDir dir;
  InstrumentsOptions o = small(1);
  o.classes = {"flute", "nylon_guitar", "drums"};
  o.per_class = 3;
  generate_instruments(o, dir.path() / "a");
  generate_instruments(o, dir.path() / "b");
  InstrumentsOptions other = o;
  other.seed = 2;
  generate_instruments(other, dir.path() / "c");
  const auto a = snapshot(dir.path() / "a"), b = snapshot(dir.path() / "b"), c = snapshot(dir.path() / "c");
  CHECK(differences(a, b) == "");
  size_t wavs = 0, same = 0;
  for (const auto& [path, bytes] : a) {
    if (path.rfind(".wav") == std::string::npos) continue;
    ++wavs;
    const auto it = c.find(path);
    if (it != c.end() && it->second == bytes) ++same;
  }
  CHECK(wavs >= 3);
  CHECK(same == 0);

  // Not empty: refused without overwrite, replaced with it, and never when it is not ours.
  try {
    generate_instruments(o, dir.path() / "a");
    FAIL("a non-empty folder was accepted");
  } catch (const DataError& e) {
    CHECK(e.id() == "instruments.out_not_empty");
  }
  InstrumentsOptions again = other;
  again.overwrite = true;
  generate_instruments(again, dir.path() / "a");
  CHECK(differences(snapshot(dir.path() / "a"), c) == "");
  fs::remove(dir.path() / "a" / "README.txt");
  try {
    generate_instruments(again, dir.path() / "a");
    FAIL("a folder that is not an instruments dataset was cleared");
  } catch (const DataError& e) {
    CHECK(e.id() == "instruments.out_not_empty");
  }
}

TEST_CASE("instruments: bad options and a missing soundfont are refused with what to do") {
  test::TempDir dir;
  const auto config_error = [&](const InstrumentsOptions& o, const char* needle) {
    try {
      generate_instruments(o, dir.path() / "x");
      FAIL("accepted");
    } catch (const ConfigError& e) {
      CHECK(e.id() == "instruments.options");
      CHECK_MESSAGE(std::string(e.what()).find(needle) != std::string::npos, e.what());
    }
  };
  InstrumentsOptions o = small(0);
  o.classes = {"piano", "kazoo"};
  config_error(o, "unknown class 'kazoo'");
  o.classes = {"piano", "piano"};
  config_error(o, "twice");
  o = small(0);
  o.min_instruments = 3;
  o.max_instruments = 2;
  config_error(o, "min_instruments");
  o = small(0);
  o.per_class = 0;
  config_error(o, "per_class");
  o = small(0);
  o.min_seconds = 6;
  config_error(o, "min_seconds");

  o = small(0);
  o.soundfont = (dir.path() / "none.sf2").string();
  try {
    generate_instruments(o, dir.path() / "x");
    FAIL("a missing soundfont was accepted");
  } catch (const DataError& e) {
    CHECK(e.id() == "instruments.soundfont");
    CHECK(std::string(e.what()).find("fluid-soundfont-gm") != std::string::npos);
  }
  std::ofstream(dir.path() / "bad.sf2") << "not a soundfont";
  o.soundfont = (dir.path() / "bad.sf2").string();
  try {
    generate_instruments(o, dir.path() / "x");
    FAIL("a file that is not a soundfont was accepted");
  } catch (const DataError& e) {
    CHECK(e.id() == "instruments.soundfont");
    CHECK(std::string(e.what()).find("not a SoundFont 2 file") != std::string::npos);
  }
  CHECK(!fs::exists(dir.path() / "x" / "README.txt"));
}

TEST_CASE("instruments dataset plugin: generated once on first use, reused, refused when different") {
  test::TempDir dir;
  const auto& registry = test::linked_registry();
  const auto* entry = registry.find(PluginKind::dataset, "instruments");
  REQUIRE(entry != nullptr);
  Options o = Options::defaults(entry->description.options);
  CHECK(o.get_int("per_class") * static_cast<int64_t>(instrument_classes().size()) / 2 >= 1800);
  o.set("per_class", int64_t{3});
  o.set("classes", std::vector<std::string>{"marimba", "cello", "drums"});
  o.set("root", std::string("ins"));  // relative to the experiment folder
  auto ds = registry.make_dataset("instruments", o, DatasetContext{dir.path()});
  CHECK(ds->multi_label());
  CHECK(ds->class_names() == std::vector<std::string>{"Marimba", "Cello", "Drum Kit"});
  const fs::path root = dir.path() / "ins";
  const fs::path marker = root / ".patchbay-instruments";
  REQUIRE(fs::exists(marker));
  const auto before = snapshot(root);
  const auto stamp = fs::last_write_time(marker);

  // The folder is exactly what the audioset plugin reads, with the same clips.
  const auto as = read_as_audioset(root);
  for (Split split : {Split::train, Split::valid, Split::test}) {
    const auto mine = ds->clips(split), theirs = as->clips(split);
    REQUIRE(mine.size() == theirs.size());
    for (size_t i = 0; i < mine.size(); ++i) {
      CHECK(mine[i].id == theirs[i].id);
      CHECK(mine[i].labels == theirs[i].labels);
    }
  }

  // Same options: the folder is reused as it is.
  auto again = registry.make_dataset("instruments", o, DatasetContext{dir.path()});
  CHECK(again->clips(Split::train).size() == ds->clips(Split::train).size());
  CHECK(fs::last_write_time(marker) == stamp);
  CHECK(snapshot(root) == before);
  // No temporary folder or stray files are left beside it.
  size_t siblings = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) siblings += e.path().filename() != "ins.lock";
  CHECK(siblings == 1);

  // Other options with the same root: refused with what to do.
  o.set("seed", int64_t{5});
  try {
    (void)registry.make_dataset("instruments", o, DatasetContext{dir.path()});
    FAIL("expected data.instruments_mismatch");
  } catch (const DataError& e) {
    CHECK(e.id() == "data.instruments_mismatch");
    CHECK(std::string(e.what()).find("delete that folder") != std::string::npos);
  }
  // A folder with other contents: refused, untouched.
  fs::create_directories(dir.path() / "mine");
  std::ofstream(dir.path() / "mine" / "notes.txt") << "keep me";
  o.set("root", std::string("mine"));
  try {
    (void)registry.make_dataset("instruments", o, DatasetContext{dir.path()});
    FAIL("expected data.instruments_not_ours");
  } catch (const DataError& e) {
    CHECK(e.id() == "data.instruments_not_ours");
  }
  CHECK(slurp(dir.path() / "mine" / "notes.txt") == "keep me");
  // A generation that fails leaves no folder behind.
  o.set("root", std::string("broken"));
  o.set("classes", std::vector<std::string>{"marimba", "kazoo"});
  CHECK_THROWS_AS((void)registry.make_dataset("instruments", o, DatasetContext{dir.path()}), ConfigError);
  CHECK(!fs::exists(dir.path() / "broken"));
  for (const auto& e : fs::directory_iterator(dir.path())) {
    CHECK_MESSAGE(e.path().filename().string().find(".tmp-") == std::string::npos, e.path());
  }

  // Without root: a cache folder under PATCHBAY_DATA_DIR.
  o.set("classes", std::vector<std::string>{"marimba", "cello", "drums"});
  o.set("seed", int64_t{0});
  ::setenv("PATCHBAY_DATA_DIR", (dir.path() / "cache").c_str(), 1);
  o.set("root", std::string(""));
  auto cached = registry.make_dataset("instruments", o, DatasetContext{dir.path()});
  ::unsetenv("PATCHBAY_DATA_DIR");
  CHECK(cached->clips(Split::train).front().path.string().find((dir.path() / "cache").string()) == 0);
  // Same options as the first generation (seed 0): the same bytes in the cache folder.
  fs::path cache_root;
  for (const auto& e : fs::directory_iterator(dir.path() / "cache")) {
    if (e.is_directory()) cache_root = e.path();
  }
  CHECK(cache_root.filename().string().rfind(std::string("instruments-") + kInstrumentsGeneratorVersion + "-n3-s0-", 0) == 0);
  auto cached_files = snapshot(cache_root);
  CHECK(differences(cached_files, before) == "");
}
}

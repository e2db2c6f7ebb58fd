// The keywords generator: Speech Commands V2 layout that the speech_commands plugin reads,
// exact 1 s 16 kHz mono clips that are neither silent nor clipped past full scale,
// speaker-disjoint splits, and byte-for-byte determinism per seed.
#include <doctest/doctest.h>

#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "helpers.hpp"
#include "keywords.hpp"
#include "patchbay/error.hpp"
#include "patchbay/fbank.hpp"
#include "patchbay/registry.hpp"

#include <cstdlib>

namespace fs = std::filesystem;
using namespace patchbay;
using patchbay::test::differences;
using patchbay::test::snapshot;

namespace {

std::string speaker_of(const std::string& clip_id) {  // "yes/0a1b2c3d_nohash_0.wav"
  const auto slash = clip_id.find('/');
  return clip_id.substr(slash + 1, clip_id.find("_nohash_") - slash - 1);
}

KeywordsOptions small(uint64_t seed) {
  KeywordsOptions o;
  o.words = {"yes", "no", "marvin"};
  o.per_class = 6;
  o.seed = seed;
  return o;
}

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("keywords: a Speech Commands V2 layout of exact, audible, speaker-disjoint clips") {
  test::TempDir dir;
  const fs::path root = dir.path() / "kw";
  int64_t progress_calls = 0;
  KeywordsOptions o = small(7);
  o.progress = [&](int64_t done, int64_t total) {
    ++progress_calls;
    CHECK(done <= total);
  };
  const KeywordsSummary s = generate_keywords(o, root);
  CHECK(progress_calls == 18);
  CHECK(s.train.clips + s.valid.clips + s.test.clips == 18);
  CHECK(s.voices_available >= 8);

  Registry registry;
  test::register_linked_plugins(registry);
  auto opts = Options::defaults(registry.get(PluginKind::dataset, "speech_commands").description.options);
  opts.set("root", root.string());
  const auto ds = registry.make_dataset("speech_commands", opts, DatasetContext{dir.path()});
  CHECK(ds->class_names() == std::vector<std::string>{"marvin", "no", "yes"});  // not the noise

  std::map<std::string, std::string> split_of_speaker;
  size_t total = 0;
  for (Split split : {Split::train, Split::valid, Split::test}) {
    const auto clips = ds->clips(split);
    CHECK_MESSAGE(!clips.empty(), to_string(split));  // every split has clips of every word
    std::set<int64_t> labels;
    for (const auto& clip : clips) {
      ++total;
      labels.insert(clip.labels.at(0));
      const auto it = split_of_speaker.emplace(speaker_of(clip.id), to_string(split)).first;
      CHECK_MESSAGE(it->second == to_string(split), "speaker of " << clip.id << " is also in "
                                                                  << it->second);
      const Waveform w = read_audio(clip.path, 0);  // 0: keep the file's rate
      CHECK(w.sample_rate == 16000);
      REQUIRE(w.samples.dim() == 1);
      CHECK(w.samples.size(0) == 16000);
      const double peak = w.samples.abs().max().item<double>();
      CHECK(peak <= 1.0);
      CHECK_MESSAGE(peak > 0.02, clip.id << " is nearly silent");  // word level >= -30 dBFS
    }
    CHECK(labels.size() == 3);
  }
  CHECK(total == 18);
  for (const char* noise : {"white", "pink", "brown"}) {
    const Waveform w = read_audio(root / "_background_noise_" / (std::string(noise) + "_noise.wav"), 0);
    CHECK(w.samples.size(0) == 10 * 16000);
  }
  std::ifstream readme(root / "README.txt");
  std::string first;
  std::getline(readme, first);
  CHECK(first.find(kKeywordsGeneratorVersion) != std::string::npos);
}

TEST_CASE("keywords: same seed, same bytes; another seed, other bytes; a used folder is refused") {
  test::TempDir dir;
  generate_keywords(small(1), dir.path() / "a");
  generate_keywords(small(1), dir.path() / "b");
  generate_keywords(small(2), dir.path() / "c");
  const auto a = snapshot(dir.path() / "a"), b = snapshot(dir.path() / "b"), c = snapshot(dir.path() / "c");
  CHECK(a.size() == 18 + 3 + 3);  // clips, noises, two lists and the README
  CHECK(differences(a, b) == "");
  CHECK(a.at("_background_noise_/pink_noise.wav") != c.at("_background_noise_/pink_noise.wav"));
  size_t same = 0;
  for (const auto& [path, bytes] : a) {
    const auto other = c.find(path);
    if (path.rfind(".wav") != std::string::npos && other != c.end() && other->second == bytes) ++same;
  }
  CHECK(same == 0);

  // Not empty: refused without overwrite, replaced with it, and never when it is not ours.
  try {
    generate_keywords(small(1), dir.path() / "a");
    FAIL("a non-empty folder was accepted");
  } catch (const DataError& e) {
    CHECK(e.id() == "keywords.out_not_empty");
  }
  KeywordsOptions again = small(2);
  again.overwrite = true;
  generate_keywords(again, dir.path() / "a");
  CHECK(differences(snapshot(dir.path() / "a"), c) == "");
  fs::remove(dir.path() / "a" / "README.txt");
  try {
    generate_keywords(again, dir.path() / "a");
    FAIL("a folder that is not a keywords dataset was cleared");
  } catch (const DataError& e) {
    CHECK(e.id() == "keywords.out_not_empty");
  }

  KeywordsOptions bad = small(1);
  bad.words = {"yes", "../x"};
  try {
    generate_keywords(bad, dir.path() / "d");
    FAIL("a path-like word was accepted");
  } catch (const ConfigError& e) {
    CHECK(e.id() == "keywords.options");
  }
}
}

TEST_SUITE("unit") {
TEST_CASE("keywords dataset plugin: generated once on first use, reused, refused when different") {
  test::TempDir dir;
  const auto& registry = test::linked_registry();
  const auto* entry = registry.find(PluginKind::dataset, "keywords");
  REQUIRE(entry != nullptr);
  Options o = Options::defaults(entry->description.options);
  o.set("per_class", int64_t{4});
  o.set("words", std::vector<std::string>{"yes", "no", "up"});
  o.set("root", std::string("kw"));  // relative to the experiment folder
  auto ds = registry.make_dataset("keywords", o, DatasetContext{dir.path()});
  CHECK(ds->class_names() == std::vector<std::string>{"no", "up", "yes"});
  const size_t clips = ds->clips(Split::train).size() + ds->clips(Split::valid).size() +
                       ds->clips(Split::test).size();
  CHECK(clips == 12);
  const fs::path marker = dir.path() / "kw" / ".patchbay-keywords";
  REQUIRE(fs::exists(marker));
  const auto before = snapshot(dir.path() / "kw");
  const auto stamp = fs::last_write_time(marker);

  // Same options: the folder is reused as it is.
  auto again = registry.make_dataset("keywords", o, DatasetContext{dir.path()});
  CHECK(again->clips(Split::train).size() == ds->clips(Split::train).size());
  CHECK(fs::last_write_time(marker) == stamp);
  CHECK(snapshot(dir.path() / "kw") == before);
  // No temporary folder or stray files are left beside it.
  size_t siblings = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) siblings += e.path().filename() != "kw.lock";
  CHECK(siblings == 1);

  // Other options with the same root: refused with what to do.
  o.set("per_class", int64_t{5});
  try {
    (void)registry.make_dataset("keywords", o, DatasetContext{dir.path()});
    FAIL("expected data.keywords_mismatch");
  } catch (const DataError& e) {
    CHECK(e.id() == "data.keywords_mismatch");
    CHECK(std::string(e.what()).find("delete that folder") != std::string::npos);
  }
  // Without root: a cache folder under PATCHBAY_DATA_DIR.
  ::setenv("PATCHBAY_DATA_DIR", (dir.path() / "cache").c_str(), 1);
  o.set("root", std::string(""));
  auto cached = registry.make_dataset("keywords", o, DatasetContext{dir.path()});
  CHECK(cached->clips(Split::train).front().path.string().find((dir.path() / "cache").string()) == 0);
  // Recording realism on: a cache folder of its own, never the clean set's (and back off, the
  // clean one again).
  o.set("reverb_probability", 0.5);
  auto real = registry.make_dataset("keywords", o, DatasetContext{dir.path()});
  o.set("reverb_probability", 0.0);
  auto clean = registry.make_dataset("keywords", o, DatasetContext{dir.path()});
  ::unsetenv("PATCHBAY_DATA_DIR");
  const auto folder_of = [](const std::shared_ptr<Dataset>& d) { return d->clips(Split::train).front().path.parent_path().parent_path(); };
  CHECK(folder_of(real) != folder_of(cached));
  CHECK(folder_of(clean) == folder_of(cached));
  std::ifstream marker_of_real(folder_of(real) / ".patchbay-keywords");
  CHECK(std::string(std::istreambuf_iterator<char>(marker_of_real), {}).find("reverb_probability = 0.5") != std::string::npos);
}
}

// Recording realism: the acoustics on their own, then in the generator.
#include "acoustics.hpp"
#include "patchbay_datasets/generator.hpp"

namespace {

double sine_gain_db(double hz, double high_pass, double low_pass) {
  std::vector<float> x(16000);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(std::sin(2 * M_PI * hz * static_cast<double>(i) / 16000.0));
  const std::vector<float> in = x;
  acoustics::band_limit(x, 16000, high_pass, low_pass);
  double e_in = 0, e_out = 0;
  for (size_t i = 4000; i < x.size(); ++i) {  // past the filters' start-up
    e_in += double(in[i]) * in[i];
    e_out += double(x[i]) * x[i];
  }
  return 10 * std::log10(e_out / e_in);
}

std::string file_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("keywords acoustics: the channel passes the voice band, the room decays as told, convolution is exact") {
  // Butterworth: -3 dB at the corners, flat between, ~12 dB per octave outside.
  CHECK(std::abs(sine_gain_db(1000, 200, 4000)) < 0.3);
  CHECK(sine_gain_db(200, 200, 4000) == doctest::Approx(-3.0).epsilon(0.05));
  CHECK(sine_gain_db(4000, 200, 4000) == doctest::Approx(-3.0).epsilon(0.05));
  CHECK(sine_gain_db(50, 200, 4000) < -20.0);
  CHECK(sine_gain_db(7500, 200, 4000) < -9.0);
  std::vector<float> bad(10);
  CHECK_THROWS_AS(acoustics::band_limit(bad, 16000, 4000, 200), std::invalid_argument);

  datasets::Rng rng(3);
  const auto h = acoustics::room_response(rng, 16000, 0.5, 0.01, 4.0);
  REQUIRE(h.size() == 160 + 8000);
  CHECK(h[0] == 1.0f);
  for (size_t i = 1; i < 160; ++i) CHECK(h[i] == 0.0f);  // the pre-delay
  double tail = 0, first = 0, last = 0;
  for (size_t i = 160; i < h.size(); ++i) {
    tail += double(h[i]) * h[i];
    if (i < 160 + 800) first += double(h[i]) * h[i];
    if (i >= h.size() - 800) last += double(h[i]) * h[i];
  }
  CHECK(10 * std::log10(1.0 / tail) == doctest::Approx(4.0).epsilon(1e-3));  // direct-to-reverberant
  // Energy falls 60 dB over the tail: 54 dB between its first and last tenths (±3 of noise).
  CHECK(10 * std::log10(first / last) == doctest::Approx(54.0).epsilon(0.06));

  std::vector<float> x(37), k(11);
  for (auto& v : x) v = static_cast<float>(rng.gaussian());
  for (auto& v : k) v = static_cast<float>(rng.gaussian());
  const auto y = acoustics::convolve(x, k);
  REQUIRE(y.size() == 47);
  double worst = 0;
  for (size_t n = 0; n < y.size(); ++n) {
    double direct = 0;
    for (size_t j = 0; j < k.size(); ++j) {
      if (n >= j && n - j < x.size()) direct += double(x[n - j]) * k[j];
    }
    worst = std::max(worst, std::abs(direct - y[n]));
  }
  CHECK(worst < 1e-5);
}

TEST_CASE("keywords: channel, room and babble change every clip they touch and nothing else; split_seed re-draws the held-out voices") {
  test::TempDir dir;
  KeywordsOptions plain = small(1);
  plain.noise_probability = 1.0;
  generate_keywords(plain, dir.path() / "plain");
  const auto base = snapshot(dir.path() / "plain");
  const auto variant = [&](const char* name, auto set) {
    KeywordsOptions o = plain;
    set(o);
    generate_keywords(o, dir.path() / name);
    return snapshot(dir.path() / name);
  };
  const auto channel = variant("channel", [](KeywordsOptions& o) { o.channel_probability = 1.0; });
  const auto room = variant("room", [](KeywordsOptions& o) { o.reverb_probability = 1.0; });
  const auto babble = variant("babble", [](KeywordsOptions& o) { o.babble_share = 1.0; });
  for (const auto* changed : {&channel, &room, &babble}) {
    REQUIRE(changed->size() == base.size());
    size_t clips_changed = 0;
    for (const auto& [path, bytes] : base) {
      CAPTURE(path);
      REQUIRE(changed->count(path) == 1);  // the same speakers and file names
      const bool clip = path.rfind("_background_noise_", 0) != 0 && path.size() > 4 &&
                        path.compare(path.size() - 4, 4, ".wav") == 0;
      if (clip) {
        clips_changed += changed->at(path) != bytes;
      } else if (path != "README.txt") {
        CHECK(changed->at(path) == bytes);  // the lists and the noises
      }
    }
    CHECK(clips_changed == 18);
  }
  CHECK(file_text(dir.path() / "room" / "README.txt").find("reverb_probability = 1") != std::string::npos);
  CHECK(file_text(dir.path() / "plain" / "README.txt").find("reverb_probability") == std::string::npos);

  // Another split_seed holds out other timbres, still speaker-disjoint.
  const auto redrawn = variant("split", [](KeywordsOptions& o) { o.split_seed = 5; });
  CHECK(file_text(dir.path() / "split" / "testing_list.txt") != file_text(dir.path() / "plain" / "testing_list.txt"));
  std::map<std::string, std::string> split_of_speaker;
  for (const char* list : {"testing_list.txt", "validation_list.txt"}) {
    std::istringstream lines(file_text(dir.path() / "split" / list));
    for (std::string clip; std::getline(lines, clip);) {
      const auto it = split_of_speaker.emplace(speaker_of(clip), list).first;
      CHECK_MESSAGE(it->second == list, clip << " shares a speaker with " << it->second);
    }
  }
  CHECK(redrawn.size() >= base.size() - 3);  // file names follow the speakers

  KeywordsOptions bad = plain;
  bad.babble_share = 1.5;
  CHECK_THROWS_WITH_AS(generate_keywords(bad, dir.path() / "bad"), doctest::Contains("babble_share is 1.5"), ConfigError);
}
}

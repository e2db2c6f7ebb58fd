// End-to-end checks of `patchbay predict`: a trained run (its folder, or the weights file
// exported from it) classifies its own test clips exactly as the run's evaluation did, long
// clips go through sliding windows, folders expand, and bad input is named while the other
// clips are still classified.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>
#include <sndfile.h>

#include "helpers.hpp"
#include "patchbay/results.hpp"
#include "test_paths.hpp"

namespace fs = std::filesystem;
using namespace patchbay;
using nlohmann::json;

namespace {

std::string cli() { return std::string("'") + test::kCli + "'"; }
std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

// One trained run on the shared 3-word set: AST with FFTP, 1 s inputs (100 frames).
struct TrainedRun {
  test::TempDir dir;
  fs::path results, run_dir, weights;
  RunRecord record;
};

const TrainedRun& trained_run() {
  static TrainedRun t;
  static const bool ready = [] {
    const fs::path toml = t.dir.path() / "p.toml";
    std::ofstream(toml) << "[dataset]\nplugin = \"speech_commands\"\nroot = \"" << test::tiny_keywords().string()
                        << "\"\n\n[frontend]\nnum_mel_bins = 32\ntarget_frames = 100\n\n"
                        << "[patcher]\nplugin = \"fftp\"\npatch_frames = 16\nstride = 8\n\n"
                        << "[backbone]\nplugin = \"ast\"\ndepth = 1\nembed_dim = 32\nheads = 2\n\n"
                        << "[train]\nbatch_size = 6\nthreads = 1\nepochs = 2\n";
    t.results = t.dir.path() / "p.h5";
    auto r = test::run(cli() + " run " + quoted(toml) + " --results " + quoted(t.results));
    REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
    const ResultsStore store(t.results);
    const auto id = store.read_experiment()->run_ids.at(0);
    t.record = *store.read_run(id);
    t.run_dir = store.run_dir(id);
    t.weights = t.dir.path() / "w.h5";
    r = test::run(cli() + " weights export " + quoted(t.run_dir) + " --out " + quoted(t.weights));
    REQUIRE_MESSAGE(r.code == 0, r.err);
    return true;
  }();
  (void)ready;
  return t;
}

json predict_json(const std::string& model, const std::string& clips, const std::string& extra = "") {
  const auto r = test::run(cli() + " predict " + model + " " + clips + " --json --top-k 3 " + extra);
  REQUIRE_MESSAGE(r.code == 0, r.err);
  return json::parse(r.out);
}

// class name -> score, from one clip's "top" list.
std::map<std::string, double> scores_of(const json& top) {
  std::map<std::string, double> out;
  for (const auto& t : top) out[t["class"].get<std::string>()] = t["score"].get<double>();
  return out;
}

// A mono clip's samples (the keyword clips are mono).
std::vector<float> samples_of(const fs::path& clip) {
  SF_INFO info{};
  SNDFILE* in = sf_open(clip.string().c_str(), SFM_READ, &info);
  REQUIRE(in != nullptr);
  REQUIRE(info.channels == 1);
  std::vector<float> samples(static_cast<size_t>(info.frames));
  sf_readf_float(in, samples.data(), info.frames);
  sf_close(in);
  return samples;
}

// Writes interleaved samples with libsndfile (format: SF_FORMAT_WAV | SF_FORMAT_PCM_16, ...).
void write_clip(const std::vector<float>& interleaved, const fs::path& out, int format, int rate, int channels) {
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = channels;
  info.format = format;
  SNDFILE* o = sf_open(out.string().c_str(), SFM_WRITE, &info);
  REQUIRE_MESSAGE(o != nullptr, sf_strerror(nullptr));
  sf_writef_float(o, interleaved.data(), static_cast<sf_count_t>(interleaved.size() / static_cast<size_t>(channels)));
  sf_close(o);
}

// Writes `clips` one after another as one mono 16 kHz WAV.
void concatenate(const std::vector<fs::path>& clips, const fs::path& out) {
  std::vector<float> all;
  for (const auto& c : clips) {
    const auto samples = samples_of(c);
    all.insert(all.end(), samples.begin(), samples.end());
  }
  write_clip(all, out, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1);
}

}  // namespace

TEST_SUITE("cli") {
TEST_CASE("cli: predict scores a run's test clips as its own evaluation did, from the run or its export") {
  const TrainedRun& t = trained_run();
  const auto& rec = t.record;
  REQUIRE(rec.test_clip_ids.size() >= 3);
  const size_t classes = rec.class_names.size();
  REQUIRE(classes == 3);
  std::string clips;
  for (size_t i = 0; i < 3; ++i) clips += quoted(test::tiny_keywords() / rec.test_clip_ids[i]) + " ";

  const json from_run = predict_json(quoted(t.run_dir), clips);
  const json from_file = predict_json(quoted(t.weights), clips);
  CHECK(from_run["scores"] == "softmax");
  CHECK(from_run["classes"] == 3);
  CHECK(from_file["model"].get<std::string>() == t.weights.string());
  CHECK(from_run["model"].get<std::string>().find("(best epoch ") != std::string::npos);
  REQUIRE(from_run["clips"].size() == 3);
  REQUIRE(from_file["clips"].size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    // The run's recorded test logits for this clip, as probabilities.
    std::vector<double> logits(classes);
    double norm = 0.0, top = -1e30;
    for (size_t c = 0; c < classes; ++c) top = std::max(top, logits[c] = rec.test_logits[i * classes + c]);
    for (auto& l : logits) norm += (l = std::exp(l - top));
    const auto run_scores = scores_of(from_run["clips"][i]["top"]);
    const auto file_scores = scores_of(from_file["clips"][i]["top"]);
    REQUIRE(run_scores.size() == 3);
    double sum = 0.0;
    for (size_t c = 0; c < classes; ++c) {
      const std::string& name = rec.class_names[c];
      CHECK(run_scores.at(name) == doctest::Approx(logits[c] / norm).epsilon(1e-5));
      CHECK(file_scores.at(name) == run_scores.at(name));
      sum += run_scores.at(name);
    }
    CHECK(sum == doctest::Approx(1.0).epsilon(1e-6));
    CHECK(from_run["clips"][i]["windows"].size() == 1);
    // Best first.
    const auto& list = from_run["clips"][i]["top"];
    CHECK(list[0]["score"].get<double>() >= list[1]["score"].get<double>());
    CHECK(list[1]["score"].get<double>() >= list[2]["score"].get<double>());
  }

  // Plain text: the clip, then ranked class names.
  const auto r = test::run(cli() + " predict " + quoted(t.weights) + " " + clips + " --top-k 2");
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK(r.out.find(rec.test_clip_ids[0]) != std::string::npos);
  CHECK(r.out.find("  1. ") != std::string::npos);
  CHECK(r.out.find("  2. ") != std::string::npos);
  CHECK(r.out.find("  3. ") == std::string::npos);
}

TEST_CASE("cli: predict classifies long clips in windows and folders as their audio files") {
  const TrainedRun& t = trained_run();
  test::TempDir dir;
  // 3 s: three 1 s clips end to end -> 298 frames; 1 s windows every 0.5 s start at
  // frames 0, 50, 100, 150 and then 198 (ending where the clip ends).
  std::vector<fs::path> parts;
  for (size_t i = 0; i < 3; ++i) parts.push_back(test::tiny_keywords() / t.record.test_clip_ids[i]);
  const fs::path long_clip = dir.path() / "long.wav";
  concatenate(parts, long_clip);
  const json mean = predict_json(quoted(t.weights), quoted(long_clip));
  REQUIRE(mean["clips"].size() == 1);
  const auto& windows = mean["clips"][0]["windows"];
  REQUIRE(windows.size() == 5);
  CHECK(windows[1]["start_s"].get<double>() == doctest::Approx(0.5));
  CHECK(windows[4]["start_s"].get<double>() == doctest::Approx(1.98));
  CHECK(mean["window_s"].get<double>() == doctest::Approx(1.0));
  // The mean of the windows' probabilities, per class; max takes the largest.
  std::map<std::string, double> window_mean, window_max;
  for (const auto& w : windows) {
    for (const auto& [name, score] : scores_of(w["top"])) {
      window_mean[name] += score / 5.0;
      window_max[name] = std::max(window_max[name], score);
    }
  }
  for (const auto& [name, score] : scores_of(mean["clips"][0]["top"])) {
    CHECK(score == doctest::Approx(window_mean.at(name)).epsilon(1e-5));
  }
  // Batches of 2 windows (3 forward passes) score as one batch of 5 does.
  const json batched = predict_json(quoted(t.weights), quoted(long_clip), "--batch 2");
  for (const auto& [name, score] : scores_of(batched["clips"][0]["top"])) {
    CHECK(score == doctest::Approx(scores_of(mean["clips"][0]["top"]).at(name)).epsilon(1e-6));
  }
  const json max = predict_json(quoted(t.weights), quoted(long_clip), "--aggregate max --hop 1");
  REQUIRE(max["clips"][0]["windows"].size() == 3);  // 0, 100, 198
  for (const auto& [name, score] : scores_of(max["clips"][0]["top"])) {
    double m = 0.0;
    for (const auto& w : max["clips"][0]["windows"]) m = std::max(m, scores_of(w["top"]).at(name));
    CHECK(score == doctest::Approx(m).epsilon(1e-6));
  }

  // A folder stands for its audio files (recursively, in name order); other files are left out.
  fs::create_directories(dir.path() / "in" / "sub");
  fs::copy_file(parts[0], dir.path() / "in" / "b.wav");
  fs::copy_file(parts[1], dir.path() / "in" / "sub" / "a.wav");
  std::ofstream(dir.path() / "in" / "notes.txt") << "not audio";
  const json folder = predict_json(quoted(t.weights), quoted(dir.path() / "in"));
  REQUIRE(folder["clips"].size() == 2);
  CHECK(folder["clips"][0]["path"].get<std::string>().find("b.wav") != std::string::npos);
  CHECK(folder["clips"][1]["path"].get<std::string>().find("sub/a.wav") != std::string::npos);

  // Another format, rate and channel count: OGG Vorbis, 22.05 kHz, stereo (the samples of a
  // 16 kHz clip on both channels, so 0.73 s at this rate; the front end resamples and mixes).
  const auto mono = samples_of(parts[0]);
  std::vector<float> stereo;
  for (const float v : mono) stereo.insert(stereo.end(), {v, v});
  const fs::path ogg = dir.path() / "clip.ogg";
  write_clip(stereo, ogg, SF_FORMAT_OGG | SF_FORMAT_VORBIS, 22050, 2);
  const json vorbis = predict_json(quoted(t.weights), quoted(ogg));
  REQUIRE(vorbis["clips"].size() == 1);
  double sum = 0.0;
  for (const auto& [name, score] : scores_of(vorbis["clips"][0]["top"])) sum += score;
  CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
}

TEST_CASE("cli: predict names bad clips and incomplete models, and classifies the rest") {
  const TrainedRun& t = trained_run();
  test::TempDir dir;
  const fs::path good = test::tiny_keywords() / t.record.test_clip_ids[0];
  const fs::path bad = dir.path() / "bad.wav";
  std::ofstream(bad) << "this is not a WAV file";
  auto r = test::run(cli() + " predict " + quoted(t.weights) + " " + quoted(bad) + " " + quoted(good) +
                     " " + quoted(dir.path() / "missing.wav") + " --json");
  CHECK(r.code == 1);
  const json out = json::parse(r.out);
  CHECK(out["clips"].size() == 1);
  CHECK(out["errors"].size() == 2);
  CHECK(out["errors"][0]["path"].get<std::string>().find("bad.wav") != std::string::npos);
  CHECK(out["errors"][1]["id"] == "predict.no_clip");
  CHECK(out["errors"][1]["error"].get<std::string>().find("missing.wav' is not a file (it does not exist)") !=
        std::string::npos);
  CHECK_MESSAGE(r.err.find("2 of 3 clips could not be read") != std::string::npos, r.err);

  // A weights file without what inference needs says what is missing and what to do.
  const fs::path old = dir.path() / "old.h5";
  fs::copy_file(t.weights, old);
  r = test::run("/usr/bin/python3 -c \"import h5py; f = h5py.File('" + old.string() +
                "', 'a'); del f.attrs['norm_mean']; f.close()\"");
  REQUIRE_MESSAGE(r.code == 0, r.err);
  r = test::run(cli() + " predict " + quoted(old) + " " + quoted(good));
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("error [predict.incomplete_weights]") != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find("norm_mean") != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find("patchbay weights export RUN_DIR") != std::string::npos, r.err);

  // Usage errors exit 2.
  r = test::run(cli() + " predict " + quoted(t.weights));
  CHECK(r.code == 2);
  r = test::run(cli() + " predict " + quoted(t.weights) + " " + quoted(good) + " --aggregate median");
  CHECK(r.code == 2);
  CHECK(r.err.find("give mean or max") != std::string::npos);
  r = test::run(cli() + " predict " + quoted(t.weights) + " " + quoted(good) + " --window 0");
  CHECK(r.code == 2);
  r = test::run(cli() + " predict " + quoted(t.weights) + " " + quoted(good) + " --window 1.5");
  CHECK(r.code == 2);
  CHECK_MESSAGE(r.err.find("the model takes at most 1 s (100 frames)") != std::string::npos, r.err);
  r = test::run(cli() + " predict " + quoted(t.weights) + " " + quoted(good) + " --top-k 0");
  CHECK(r.code == 2);
  // A folder without audio is named, not taken for zero clips.
  fs::create_directories(dir.path() / "empty");
  std::ofstream(dir.path() / "empty" / "notes.txt") << "no audio";
  r = test::run(cli() + " predict " + quoted(t.weights) + " " + quoted(dir.path() / "empty"));
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("error [predict.no_clips]: folder") != std::string::npos, r.err);
  r = test::run(cli() + " predict --help");
  CHECK(r.code == 0);
  CHECK(r.out.find("Usage: patchbay predict MODEL") != std::string::npos);
}
}

// patchbay predict: classify audio clips with a trained model (a run folder or an exported
// weights file), in sliding windows for clips longer than the model's input.
//
// A clip goes through the front end the model trained with (read_audio at its rate and
// channel rule, fbank, AST's normalisation with the run's statistics); a clip no longer than
// one window is padded or cut exactly as the training data was, so its scores are those
// the run's own evaluation computed. Longer clips are cut into windows of --window seconds
// every --hop seconds (the last one aligned with the clip's end, so every frame is seen),
// each padded or cut to the model's input, and the windows' probabilities are aggregated.
#include <algorithm>
#include <cmath>
#include <iostream>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/types.h>
#include <torch/utils.h>

#include "cli_common.hpp"
#include "commands.hpp"
#include "exit_codes.hpp"
#include "patchbay/audio.hpp"
#include "patchbay/error.hpp"
#include "patchbay/fbank.hpp"
#include "trained_model.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using nlohmann::json;

namespace patchbay::cli {
namespace {

constexpr const char* kUsage = R"(Usage: patchbay predict MODEL CLIP|FOLDER... [--top-k K] [--json] [--window S] [--hop S]
                        [--aggregate mean|max] [--batch B] [--last] [--threads N]

Classifies audio clips with a trained model and prints each clip's top classes.
MODEL is a run folder (R.h5.runs/<run id>: its best epoch on validation, or --last) or a
weights file written by `patchbay weights export`, which carries the configuration, class
names and normalisation statistics inference needs. A FOLDER stands for the WAV, FLAC and OGG
files under it (recursively, in name order). Any rate and channel count: clips are read as
the model's front end read its training data.

A clip longer than the model's input (its frontend.target_frames frames) is classified in
windows of --window seconds (default: the model's input) every --hop seconds (default: half
a window), the last window ending where the clip ends; the windows' probabilities are
averaged (--aggregate mean) or their maximum taken (max). Probabilities are a softmax for a
single-label model and per-class sigmoids for a multi-label one. --json prints each clip's
scores, its windows' top classes and the errors.

A clip that cannot be read is reported and skipped; the others are still classified and the
exit status is 1.)";

constexpr const char* kAudioExtensions[] = {".wav", ".flac", ".ogg", ".WAV", ".FLAC", ".OGG"};

bool is_audio(const fs::path& p) {
  return std::any_of(std::begin(kAudioExtensions), std::end(kAudioExtensions),
                     [&](const char* e) { return p.extension() == e; });
}

// The clips named: files as given, folders as their audio files in name order.
std::vector<fs::path> expand_clips(const std::vector<std::string>& given) {
  std::vector<fs::path> out;
  for (const auto& g : given) {
    if (!fs::is_directory(g)) {
      out.emplace_back(g);
      continue;
    }
    std::vector<fs::path> found;
    for (const auto& e : fs::recursive_directory_iterator(g)) {
      if (e.is_regular_file() && is_audio(e.path())) found.push_back(e.path());
    }
    if (found.empty()) {
      throw Error("predict.no_clips", fmt::format("folder '{}' holds no .wav, .flac or .ogg file", g));
    }
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

struct WindowPlan {
  int64_t frames = 0, hop = 0;  // per window, between window starts
};

// Window starts over a clip of `total` frames: 0, hop, 2 hop, ... while the window fits, then
// one ending at the clip's end when frames would otherwise be left out. One window (at 0) for
// a clip no longer than a window.
std::vector<int64_t> window_starts(int64_t total, const WindowPlan& plan) {
  std::vector<int64_t> starts{0};
  if (total <= plan.frames) return starts;
  while (starts.back() + plan.hop + plan.frames <= total) starts.push_back(starts.back() + plan.hop);
  if (starts.back() + plan.frames < total) starts.push_back(total - plan.frames);
  return starts;
}

int64_t frames_of(double seconds, const FbankOptions& f, const char* option) {
  const int64_t frames = std::llround(seconds * 1000.0 / f.frame_shift_ms);
  if (!(seconds > 0) || frames < 1) {
    throw po::error(fmt::format("{} {}: give a positive length in seconds (at least one {} ms frame)", option,
                                seconds, f.frame_shift_ms));
  }
  return frames;
}

struct ClipScores {
  at::Tensor scores;              // [C] aggregated probabilities
  at::Tensor window_scores;       // [W, C]
  std::vector<int64_t> starts;    // frame of each window's start
};

class Predictor {
 public:
  Predictor(TrainedModel& trained, WindowPlan plan, int64_t batch, bool max)
      : trained_(trained), fbank_(trained.frontend), plan_(plan), batch_(batch), max_(max) {}

  ClipScores classify(const fs::path& clip) {
    const FbankOptions& f = trained_.frontend;
    const Waveform wave = read_audio(clip, f.sample_rate, f.channel);
    const at::Tensor features = fbank_.compute(wave);  // [T, F]
    ClipScores out;
    out.starts = window_starts(features.size(0), plan_);
    std::vector<at::Tensor> specs;
    for (const int64_t s : out.starts) {
      const at::Tensor window = features.slice(0, s, std::min(s + plan_.frames, features.size(0)));
      const at::Tensor x = normalize(pad_or_crop(window, f.target_frames), trained_.inference.norm_mean,
                                     trained_.inference.norm_std);
      specs.push_back(x.transpose(0, 1));  // [F, T], as the trainer's batches hold it
    }
    std::vector<at::Tensor> probabilities;
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < specs.size(); i += static_cast<size_t>(batch_)) {
      const size_t end = std::min(specs.size(), i + static_cast<size_t>(batch_));
      const at::Tensor spec = at::stack(std::vector<at::Tensor>(specs.begin() + i, specs.begin() + end)).unsqueeze(1);
      const at::Tensor logits = trained_.model.forward(spec.contiguous());
      probabilities.push_back(trained_.inference.multi_label ? logits.sigmoid() : logits.softmax(1));
    }
    out.window_scores = at::cat(probabilities);
    out.scores = max_ ? std::get<0>(out.window_scores.max(0)) : out.window_scores.mean(0);
    return out;
  }

 private:
  TrainedModel& trained_;
  Fbank fbank_;
  WindowPlan plan_;
  int64_t batch_;
  bool max_;
};

json top_json(const at::Tensor& scores, int64_t k, const std::vector<std::string>& names) {
  const auto [values, indices] = scores.topk(std::min<int64_t>(k, scores.size(0)));
  json out = json::array();
  for (int64_t i = 0; i < values.size(0); ++i) {
    const int64_t c = indices[i].item<int64_t>();
    out.push_back({{"class", names.at(static_cast<size_t>(c))}, {"index", c}, {"score", values[i].item<double>()}});
  }
  return out;
}

}  // namespace

int run_predict(const std::vector<std::string>& args) {
  auto desc = common_options("patchbay predict options");
  desc.add_options()("top-k,k", po::value<int64_t>()->default_value(5), "classes printed per clip")(
      "window", po::value<double>(), "window length in seconds (default: the model's input)")(
      "hop", po::value<double>(), "seconds between window starts (default: half a window)")(
      "aggregate", po::value<std::string>()->default_value("mean"), "windows' probabilities: mean or max")(
      "batch", po::value<int64_t>()->default_value(16), "windows per forward pass")(
      "last", "a run folder's last epoch instead of its best on validation")(
      "threads", po::value<int>()->default_value(0), "intra-op threads (0: all cores)");
  const auto p = parse(args, desc);
  if (wants_help(p, kUsage, desc)) return kExitOk;
  if (p.positional.size() < 2) throw po::error("name a model (run folder or weights file) and at least one clip");
  const int64_t k = p.vm["top-k"].as<int64_t>(), batch = p.vm["batch"].as<int64_t>();
  const std::string aggregate = p.vm["aggregate"].as<std::string>();
  if (k < 1) throw po::error(fmt::format("--top-k {}: give 1 or more", k));
  if (batch < 1) throw po::error(fmt::format("--batch {}: give 1 or more", batch));
  if (aggregate != "mean" && aggregate != "max") {
    throw po::error(fmt::format("--aggregate '{}': give mean or max", aggregate));
  }
  const int threads = p.vm["threads"].as<int>();
  if (threads < 0) throw po::error(fmt::format("--threads {}: give 0 (all cores) or more", threads));
  if (threads > 0) at::set_num_threads(threads);
  const bool as_json = p.vm.count("json") > 0;

  Registry registry;
  load_plugins(registry, p);
  TrainedModel trained = load_trained_model(p.positional[0], registry, p.vm.count("last") ? Epoch::last : Epoch::best);
  if (!trained.has_inference) {
    throw Error("predict.incomplete_weights",
                fmt::format("run '{}' records no class names or normalisation statistics (it never loaded its data); "
                            "predict from a run that trained", p.positional[0]));
  }
  trained.model.train(false);
  const FbankOptions& f = trained.frontend;
  WindowPlan plan;
  plan.frames = p.vm.count("window") ? frames_of(p.vm["window"].as<double>(), f, "--window") : f.target_frames;
  if (plan.frames > f.target_frames) {
    throw po::error(fmt::format("--window {}: the model takes at most {} s ({} frames); a longer window would be cut",
                                p.vm["window"].as<double>(), f.target_frames * f.frame_shift_ms / 1000.0,
                                f.target_frames));
  }
  plan.hop = p.vm.count("hop") ? frames_of(p.vm["hop"].as<double>(), f, "--hop") : std::max<int64_t>(1, plan.frames / 2);
  const auto clips = expand_clips({p.positional.begin() + 1, p.positional.end()});
  const auto& names = trained.inference.class_names;

  Predictor predictor(trained, plan, batch, aggregate == "max");
  json results = json::array(), errors = json::array();
  const bool progress = clips.size() > 20;
  for (size_t i = 0; i < clips.size(); ++i) {
    const fs::path& clip = clips[i];
    if (progress && (i % 50 == 0 || i + 1 == clips.size())) fmt::print(stderr, "predict: {}/{} clips\n", i + 1, clips.size());
    ClipScores s;
    try {
      if (!fs::is_regular_file(clip)) {
        throw DataError("predict.no_clip", fmt::format("'{}' is not a file{}", clip.string(),
                                                       fs::exists(clip) ? "" : " (it does not exist)"));
      }
      s = predictor.classify(clip);
    } catch (const DataError& e) {
      fmt::print(stderr, "patchbay predict: error [{}]: {}\n", e.id(), e.what());
      errors.push_back({{"path", clip.string()}, {"id", e.id()}, {"error", e.what()}});
      continue;
    }
    if (!as_json) {
      fmt::print("{}{}\n", clip.string(), s.starts.size() > 1 ? fmt::format("  ({} windows, {})", s.starts.size(), aggregate) : "");
      int rank = 1;
      for (const auto& t : top_json(s.scores, k, names)) {
        fmt::print("  {}. {:<24} {:.4f}\n", rank++, t["class"].get<std::string>(), t["score"].get<double>());
      }
      continue;
    }
    json windows = json::array();
    for (size_t w = 0; w < s.starts.size(); ++w) {
      windows.push_back({{"start_s", static_cast<double>(s.starts[w]) * f.frame_shift_ms / 1000.0},
                         {"top", top_json(s.window_scores[static_cast<int64_t>(w)], k, names)}});
    }
    results.push_back({{"path", clip.string()}, {"top", top_json(s.scores, k, names)}, {"windows", windows}});
  }
  if (as_json) {
    std::cout << json{{"model", trained.source},
                      {"classes", names.size()},
                      {"multi_label", trained.inference.multi_label},
                      {"scores", trained.inference.multi_label ? "sigmoid" : "softmax"},
                      {"aggregate", aggregate},
                      {"window_s", static_cast<double>(plan.frames) * f.frame_shift_ms / 1000.0},
                      {"hop_s", static_cast<double>(plan.hop) * f.frame_shift_ms / 1000.0},
                      {"clips", results},
                      {"errors", errors}}.dump(2)
              << "\n";
  }
  if (!errors.empty()) {
    fmt::print(stderr, "patchbay predict: {} of {} clips could not be read (above); the others were classified\n",
               errors.size(), clips.size());
    return kExitError;
  }
  return kExitOk;
}

}  // namespace patchbay::cli

// The trainer: its learning-rate schedules, mixup, batches, and whole runs on an easy set.
// (The CLI tests cover resume after a kill, distribution and the results files.)
#include <doctest/doctest.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/cuda.h>
#include <torch/nn.h>

#include <fstream>

#include "helpers.hpp"
#include "patchbay/config.hpp"
#include "patchbay/trainer.hpp"
#include "patchbay_datasets/layout.hpp"
#include "train/batches.hpp"
#include "train/lr_schedule.hpp"

using namespace patchbay;
namespace fs = std::filesystem;

namespace {

Options train_options(const std::map<std::string, OptionValue>& set) {
  auto o = Options::defaults(train_schema());
  for (const auto& [k, v] : set) o.set(k, v);
  return o;
}

// An easy two-class set: low tones (class "low") against high ones, 0.5 s, with explicit
// splits: 20 train, 6 valid and 6 test clips per class.
fs::path write_tone_set(const fs::path& dir) {
  std::ofstream manifest(dir / "manifest.csv");
  manifest << "path,labels,split\n";
  int i = 0;
  for (const char* split : {"train", "valid", "test"}) {
    const int per_class = std::string(split) == "train" ? 20 : 6;
    for (int k = 0; k < per_class; ++k, ++i) {
      const std::string low = fmt::format("low{}.wav", i), high = fmt::format("high{}.wav", i);
      datasets::write_tone_wav(dir / low, 200.0 + 9.0 * k, 0.5);
      datasets::write_tone_wav(dir / high, 2500.0 + 40.0 * k, 0.5);
      manifest << low << ",low," << split << "\n" << high << ",high," << split << "\n";
    }
  }
  return dir / "manifest.csv";
}

std::string tone_experiment(const fs::path& manifest, const std::string& extra = "") {
  return fmt::format(R"([dataset]
plugin = "folder"
manifest = "{}"

[frontend]
target_frames = 64

[patcher]
plugin = "fftp"
patch_frames = 16
stride = 8

[masker]
plugin = "none"

[backbone]
plugin = "linear_probe"
embed_dim = 32

[train]
epochs = 4
batch_size = 8
lr = 3e-3
threads = 1
loader_threads = 0
{}
)", manifest.string(), extra);
}

RunRecord train(const std::string& text, const std::vector<std::string>& overrides = {},
                const fs::path& checkpoint = {}, RunRecord record = {}) {
  const auto& registry = test::linked_registry();
  const Experiment e = load_experiment_text(text, "tones.toml", overrides, registry);
  TrainerOptions opts;
  opts.checkpoint = checkpoint;
  opts.measure_latency = false;
  return train_run(e.runs.front(), registry, opts, std::move(record));
}

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("trainer: the step schedule is AST's MultiStepLR, epoch by epoch") {
  // torch.optim.lr_scheduler.MultiStepLR(opt, list(range(start, 1000, every)), gamma) with
  // scheduler.step() after each epoch (YuanGongND/ast src/traintest.py), tabulated by
  // tests/golden/make_lr_golden.py: the multiplier of the base lr in 1-based epochs 1..N.
  struct Case {
    const char* name;
    int64_t start, every;
    double decay;
    std::vector<double> multipliers;
  };
  const std::vector<Case> cases = {
      // Speech Commands V2 (egs/speechcommands/run_sc.sh): start 5, every 1, x0.85.
      {"speechcommands", 5, 1, 0.85,
       {1, 1, 1, 1, 1, 0.85, 0.7225, 0.614125, 0.52200625, 0.4437053125}},
      // AudioSet balanced (egs/audioset/run.sh, balanced): start 10, every 5, x0.5.
      {"audioset-balanced", 10, 5, 0.5,
       {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.25, 0.125}},
      // AudioSet full: start 2, every 1, x0.5.
      {"audioset-full", 2, 1, 0.5, {1, 1, 0.5, 0.25, 0.125}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const auto s = LrSchedule::from(train_options({{"schedule", std::string("step")}, {"lr", 1.0},
                                                   {"step_start_epoch", c.start}, {"step_every", c.every},
                                                   {"step_decay", c.decay}}));
    for (size_t e = 0; e < c.multipliers.size(); ++e) {
      CAPTURE(e + 1);
      const auto epoch = static_cast<int64_t>(e + 1);
      CHECK(s.at(/*step=*/epoch * 100, 100000, epoch) == doctest::Approx(c.multipliers[e]).epsilon(1e-12));
    }
  }
}

TEST_CASE("trainer: warm-up then cosine, step by step") {
  const auto s = LrSchedule::from(train_options({{"schedule", std::string("cosine")}, {"lr", 2.0},
                                                 {"warmup_steps", int64_t{4}}}));
  // Warm-up: lr (s + 1) / W; then 0.5 lr (1 + cos(pi (s - W) / (total - W))) over 8 steps.
  const std::vector<double> expected = {0.5, 1.0, 1.5, 2.0, 2.0, 1.9238795325, 1.7071067812, 1.3826834324,
                                        1.0, 0.6173165676, 0.2928932188, 0.0761204675, 0.0};
  for (size_t step = 0; step < expected.size(); ++step) {
    CAPTURE(step);
    CHECK(s.at(static_cast<int64_t>(step), 12, 1) == doctest::Approx(expected[step]).epsilon(1e-9));
  }
  const auto flat = LrSchedule::from(train_options({{"schedule", std::string("constant")}, {"lr", 0.3}}));
  CHECK(flat.at(0, 10, 1) == 0.3);
  CHECK(flat.at(9, 10, 7) == 0.3);
}

TEST_CASE("trainer: mixup draws a coin, a partner from the whole split and a Beta lambda per example") {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  const int64_t n = 20000, split = 5000;
  const auto draws = draw_mixup(n, split, 0.5, 10.0, gen);
  REQUIRE(draws.size() == static_cast<size_t>(n));
  int64_t mixed = 0, far = 0;
  double sum = 0, sum2 = 0;
  for (const auto& d : draws) {
    if (d.partner < 0) {
      CHECK(d.lambda == 1.0);
      continue;
    }
    ++mixed;
    CHECK(d.partner < split);
    far += d.partner >= 32;  // a batch-local partner would always be < batch size
    sum += d.lambda;
    sum2 += d.lambda * d.lambda;
  }
  CHECK(static_cast<double>(mixed) / n == doctest::Approx(0.5).epsilon(0.03));
  CHECK(far > mixed * 9 / 10);
  const double mean = sum / mixed, var = sum2 / mixed - mean * mean;
  CHECK(mean == doctest::Approx(0.5).epsilon(0.01));
  CHECK(var == doctest::Approx(1.0 / (4 * 21)).epsilon(0.08));  // Beta(10, 10): 1 / (4 (2a + 1))
  // Without mixup nothing is drawn: the generator is where it was.
  auto a = at::make_generator<at::CPUGeneratorImpl>(5);
  auto b = at::make_generator<at::CPUGeneratorImpl>(5);
  const auto none = draw_mixup(100, split, 0.0, 10.0, a);
  for (const auto& d : none) CHECK(d.partner == -1);
  CHECK(torch::equal(a.get_state(), b.get_state()));
}

TEST_CASE("trainer: a batch mixes the example with its partner, input and target alike") {
  SplitData data;
  data.features = torch::randn({6, 10, 4});  // [N, T, F]
  data.labels = torch::tensor({0, 1, 2, 0, 1, 2}, torch::kLong);
  data.multi_hot = torch::nn::functional::one_hot(data.labels, 3).to(torch::kFloat);
  const Normaliser norm{0.5, 2.0};
  const BatchMaker maker(data, norm, MixupMode::spectrogram, FbankOptions{});
  const auto b = maker.make({1, 4}, {{-1, 1.0}, {2, 0.25}});
  REQUIRE(b.spec.sizes() == at::IntArrayRef({2, 4, 10}));
  CHECK(torch::allclose(b.spec[0], (data.features[1].t() - 0.5) / 2.0));
  const auto mixture = 0.25 * data.features[4] + 0.75 * data.features[2];
  CHECK(torch::allclose(b.spec[1], (mixture.t() - 0.5) / 2.0, 1e-6, 1e-6));
  CHECK(torch::allclose(b.targets[1], torch::tensor({0.0f, 0.25f, 0.75f})));
  CHECK(torch::equal(b.targets[0], torch::tensor({0.0f, 1.0f, 0.0f})));
  CHECK(torch::equal(b.labels, torch::tensor({1, 1}, torch::kLong)));
  // The data are not changed by mixing.
  const auto again = maker.make({4}, {});
  CHECK(torch::allclose(again.spec[0], (data.features[4].t() - 0.5) / 2.0));
}

TEST_CASE("trainer: the record a run starts with names its sweep point (axes), not only its id") {
  // `patchbay run` stores it before the first epoch; report, compare and claims place a
  // RUNNING run by its axes, so a record without them would count under "(base)".
  test::TempDir dir;
  const auto& registry = test::linked_registry();
  const Experiment e = load_experiment_text(
      tone_experiment(write_tone_set(dir.path()), "[sweep]\nseeds = [0, 1]\n\"train.lr\" = [1e-3, 3e-3]\n"),
      "tones.toml", {}, registry);
  const PlannedRun& run = e.runs.back();
  RunRecord earlier;
  earlier.attempts = 2;
  earlier.wall_seconds = 5.0;
  const RunRecord r = start_record(run, earlier);
  CHECK(r.id == run.id);
  CHECK(r.slug == run.slug);
  CHECK(r.status == RunStatus::running);
  REQUIRE(r.axes.size() == run.axes.size());
  CHECK(r.axes.size() == 2);
  CHECK(r.seed == run.config.train.get_int("seed"));
  CHECK(r.config_toml == run.config.to_toml());
  CHECK(r.attempts == 2);  // what earlier attempts recorded is kept
  CHECK(r.wall_seconds == 5.0);
}

TEST_CASE("trainer: a run on an easy set learns, picks the best epoch and keeps its predictions") {
  test::TempDir dir;
  const auto text = tone_experiment(write_tone_set(dir.path()));
  const RunRecord r = train(text);
  REQUIRE_MESSAGE(r.status == RunStatus::completed, r.reason);
  REQUIRE(r.curves.size() == 4);
  CHECK(r.curves.back().train_loss < 0.5 * r.curves.front().train_loss);
  CHECK(r.final.at("test_accuracy") >= 0.9);  // chance: 0.5
  // The best epoch is the first maximum of the validation accuracy.
  size_t best = 0;
  for (size_t i = 1; i < r.curves.size(); ++i) {
    if (r.curves[i].valid_accuracy > r.curves[best].valid_accuracy) best = i;
  }
  CHECK(r.final.at("best_epoch") == static_cast<double>(best + 1));
  CHECK(r.final.at("valid_accuracy") == r.curves[best].valid_accuracy);
  // Per-clip predictions: 12 clips x 2 classes, and the accuracy recomputed from them.
  REQUIRE(r.test_clip_ids.size() == 12);
  REQUIRE(r.test_logits.size() == 24);
  REQUIRE(r.test_targets.size() == 24);
  int correct = 0;
  for (size_t i = 0; i < 12; ++i) {
    const size_t guess = r.test_logits[2 * i] >= r.test_logits[2 * i + 1] ? 0 : 1;
    correct += r.test_targets[2 * i + guess] == 1;
  }
  CHECK(correct / 12.0 == doctest::Approx(r.final.at("test_accuracy")));
  // A learning rate of 0 learns nothing: the test above can fail.
  const RunRecord frozen = train(text, {"train.lr=0.0"});
  REQUIRE(frozen.status == RunStatus::completed);
  CHECK(frozen.curves.back().train_loss == doctest::Approx(frozen.curves.front().train_loss).epsilon(0.02));
}

TEST_CASE("trainer: a bf16 run learns the easy set too, and is not the fp32 run") {
  test::TempDir dir;
  const auto text = tone_experiment(write_tone_set(dir.path()));
  const RunRecord fp32 = train(text);
  const RunRecord bf16 = train(text, {"train.precision=bf16"});
  REQUIRE_MESSAGE(bf16.status == RunStatus::completed, bf16.reason);
  CHECK(bf16.final.at("test_accuracy") >= 0.9);  // chance: 0.5
  CHECK(bf16.curves.front().train_loss != fp32.curves.front().train_loss);
  CHECK(bf16.config_toml.find("precision = \"bf16\"") != std::string::npos);
}

TEST_CASE("trainer: when every training clip is skipped, the run says which and why") {
  // issue "faults" 5: truncated WAVs decoded silently; skipped, they must be named.
  test::TempDir dir;
  const auto manifest = write_tone_set(dir.path());
  for (int i = 0; i < 20; ++i) {  // clips 0..19 of each class are the training split
    for (const char* kind : {"low", "high"}) {
      const fs::path f = dir.path() / fmt::format("{}{}.wav", kind, i);
      fs::resize_file(f, fs::file_size(f) / 2);
    }
  }
  const RunRecord r = train(tone_experiment(manifest), {"dataset.on_bad_clip=skip"});
  REQUIRE(r.status == RunStatus::failed);
  CHECK_MESSAGE(r.reason.find("no training clips left: all 40 bad clips were skipped") != std::string::npos, r.reason);
  CHECK_MESSAGE(r.reason.find("low0.wav") != std::string::npos, r.reason);
  CHECK_MESSAGE(r.reason.find("is truncated: ") != std::string::npos, r.reason);
  CHECK_MESSAGE(r.reason.find("... and 30 more") != std::string::npos, r.reason);
}

TEST_CASE("trainer: mixup comes before masking, so the masker's counts are what the model sees") {
  test::TempDir dir;
  // SpecMask's budget 1,024 on 128 bins: 6 full-frequency frames (768 cells) + a 16 x 16
  // rectangle, exactly, on every example, mixed or not.
  const auto text = tone_experiment(write_tone_set(dir.path()), "mixup = 1.0\n");
  const RunRecord r = train(text, {"masker.plugin=specmask", "train.epochs=1"});
  REQUIRE_MESSAGE(r.status == RunStatus::completed, r.reason);
  CHECK(r.final.at("masked_cells_per_example") == 1024.0);
  CHECK(r.final.at("full_frequency_cells_per_example") == 768.0);
}

TEST_CASE("trainer: label smoothing and gradient clipping change the run") {
  test::TempDir dir;
  const auto text = tone_experiment(write_tone_set(dir.path()));
  const RunRecord plain = train(text, {"train.epochs=1"});
  const RunRecord frozen = train(text, {"train.epochs=1", "train.lr=0.0"});
  const RunRecord smoothed = train(text, {"train.epochs=1", "train.label_smoothing=0.3"});
  // Adam divides by the gradient's scale, so only a clip far below Adam's eps (1e-8 per
  // element) stops the weights: the run then stays where lr = 0 leaves it.
  const RunRecord clipped = train(text, {"train.epochs=1", "train.grad_clip=1e-12"});
  for (const auto* r : {&plain, &frozen, &smoothed, &clipped}) REQUIRE_MESSAGE(r->status == RunStatus::completed, r->reason);
  CHECK(smoothed.curves[0].train_loss > plain.curves[0].train_loss + 0.01);  // smoothing raises the floor
  CHECK(std::abs(plain.curves[0].valid_loss - frozen.curves[0].valid_loss) > 0.05);
  CHECK(clipped.curves[0].valid_loss == doctest::Approx(frozen.curves[0].valid_loss).epsilon(1e-3));
}

TEST_CASE("trainer: early stopping ends a run whose validation stopped improving, and records it") {
  test::TempDir dir;
  const auto text = tone_experiment(write_tone_set(dir.path()));
  // A learning rate of 0 never improves on epoch 1: patience 2 stops after epoch 3 of 6.
  const std::vector<std::string> frozen = {"train.lr=0.0", "train.epochs=6", "train.early_stop_patience=2"};
  const fs::path checkpoint = dir.path() / "checkpoint.pt";
  const RunRecord stopped = train(text, frozen, checkpoint);
  REQUIRE_MESSAGE(stopped.status == RunStatus::completed, stopped.reason);
  CHECK(stopped.curves.size() == 3);
  CHECK(stopped.final.at("best_epoch") == 1);
  CHECK(stopped.final.at("epochs_trained") == 3);
  CHECK(stopped.final.at("stopped_early") == 1);
  // Resumed from its checkpoint (as after a kill before the record was written), it trains
  // no further epoch and ends as it did.
  RunRecord unfinished = stopped;
  unfinished.final.clear();
  const RunRecord resumed = train(text, frozen, checkpoint, unfinished);
  REQUIRE(resumed.status == RunStatus::completed);
  CHECK(resumed.curves.size() == 3);
  CHECK(resumed.test_logits == stopped.test_logits);
  // Off (the default), and with patience the run never runs out of: every epoch is trained.
  const RunRecord patient = train(text, {"train.lr=0.0", "train.epochs=3", "train.early_stop_patience=5"});
  CHECK(patient.curves.size() == 3);
  CHECK(patient.final.at("stopped_early") == 0);
  CHECK(patient.final.at("epochs_trained") == 3);
  // A learning run that keeps improving is not stopped by patience 1 unless it stalls.
  const RunRecord learning = train(text, {"train.early_stop_patience=1"});
  size_t stalls = 0;
  for (size_t i = 1; i < learning.curves.size(); ++i) {
    double best = 0;
    for (size_t j = 0; j < i; ++j) best = std::max(best, learning.curves[j].valid_accuracy);
    stalls += learning.curves[i].valid_accuracy <= best;
    if (stalls) {
      CHECK(learning.curves.size() == i + 1);  // it stopped at the first stall
      break;
    }
  }
  if (!stalls) CHECK(learning.curves.size() == 4);
}

TEST_CASE("trainer: train.sampler and train.epoch_size set the epoch's examples and steps") {
  test::TempDir dir;
  const auto text = tone_experiment(write_tone_set(dir.path()));
  const RunRecord shuffled = train(text, {"train.epochs=2"});
  REQUIRE(shuffled.status == RunStatus::completed);
  CHECK(shuffled.final.at("epoch_clips") == 40);
  CHECK(shuffled.curves.back().step == 2 * 5);  // 40 clips in batches of 8
  // 20 balanced draws per epoch: 3 steps (8, 8, 4).
  const RunRecord balanced = train(text, {"train.epochs=2", "train.sampler=balanced", "train.epoch_size=20"});
  REQUIRE_MESSAGE(balanced.status == RunStatus::completed, balanced.reason);
  CHECK(balanced.final.at("epoch_clips") == 20);
  CHECK(balanced.curves.back().step == 2 * 3);
  CHECK(balanced.test_logits != shuffled.test_logits);
  // The same seed draws the same epochs.
  const RunRecord again = train(text, {"train.epochs=2", "train.sampler=balanced", "train.epoch_size=20"});
  CHECK(again.test_logits == balanced.test_logits);
  // The shuffle at an epoch size of two splits: 10 steps per epoch.
  const RunRecord doubled = train(text, {"train.epochs=1", "train.epoch_size=80"});
  CHECK(doubled.curves.back().step == 10);
}

TEST_CASE("trainer: a token dropper trains on fewer tokens, evaluates on all of them, and records both") {
  test::TempDir dir;
  const auto text = tone_experiment(write_tone_set(dir.path()));
  const RunRecord plain = train(text, {"train.epochs=2"});
  REQUIRE(plain.status == RunStatus::completed);
  CHECK(plain.final.at("tokens") == 7);  // FFTP 16 / 8 on 64 frames
  CHECK(plain.final.at("train_tokens") == 7);
  const std::vector<std::string> drop = {"train.epochs=2", "token_dropper.plugin=patchout",
                                         "token_dropper.time_columns=3"};
  const RunRecord dropped = train(text, drop);
  REQUIRE_MESSAGE(dropped.status == RunStatus::completed, dropped.reason);
  CHECK(dropped.final.at("tokens") == 7);
  CHECK(dropped.final.at("train_tokens") == 4);
  CHECK(dropped.test_logits != plain.test_logits);
  CHECK(train(text, drop).test_logits == dropped.test_logits);
  // Evaluation sees every token: with nothing learnt (lr 0) the drop changes no prediction.
  const RunRecord frozen = train(text, {"train.epochs=1", "train.lr=0.0"});
  auto frozen_drop = drop;
  frozen_drop.insert(frozen_drop.end(), {"train.epochs=1", "train.lr=0.0"});
  CHECK(train(text, frozen_drop).test_logits == frozen.test_logits);
  // Too many columns: the file is refused when it loads; a configuration made in code fails
  // its run before training, saying which option and grid.
  CHECK_THROWS_WITH_AS(train(text, {"token_dropper.plugin=patchout", "token_dropper.time_columns=7"}),
                       doctest::Contains("token_dropper.time_columns = 7 would drop every one"), ConfigError);
  const auto& registry = test::linked_registry();
  PlannedRun too_many = load_experiment_text(text, "tones.toml", drop, registry).runs.front();
  too_many.config.token_dropper.options.set("time_columns", int64_t{7});
  TrainerOptions opts;
  opts.measure_latency = false;
  const RunRecord refused = train_run(too_many, registry, opts, {});
  CHECK(refused.status == RunStatus::failed);
  CHECK(refused.reason.find("token_dropper.time_columns = 7") != std::string::npos);
  // A run without a token dropper keeps the id it had before token droppers existed; one
  // with a dropper is another run.
  const Experiment plain_plan = load_experiment_text(text, "tones.toml", {}, registry);
  const auto& base = plain_plan.runs.front();
  CHECK(base.config.hash() == test::id_hash_without_later_options(base.config));
  CHECK(load_experiment_text(text, "tones.toml", drop, registry).runs.front().config.hash() != base.config.hash());
}

TEST_CASE("trainer: train.ema_decay and train.average_epochs evaluate averaged weights, exactly across a resume") {
  test::TempDir dir;
  const auto text = tone_experiment(write_tone_set(dir.path()));
  // Frozen weights (lr 0): every average is the weights themselves.
  const RunRecord frozen = train(text, {"train.lr=0.0", "train.ema_decay=0.9", "train.average_epochs=[2, 4]"});
  REQUIRE_MESSAGE(frozen.status == RunStatus::completed, frozen.reason);
  CHECK(frozen.final.at("averaged_epochs") == 3);
  CHECK(frozen.final.at("avg_test_loss") == frozen.final.at("test_loss"));
  CHECK(frozen.final.at("ema_test_loss") == doctest::Approx(frozen.final.at("test_loss")).epsilon(1e-5));
  CHECK(frozen.final.at("ema_valid_accuracy") == frozen.final.at("valid_accuracy"));

  // Learning: the averages are other weights than the best epoch's.
  const std::vector<std::string> on = {"train.ema_decay=0.5", "train.average_epochs=[3, 4]",
                                       "train.checkpoint_every_s=0"};
  const RunRecord straight = train(text, on);
  REQUIRE(straight.status == RunStatus::completed);
  CHECK(straight.final.at("averaged_epochs") == 2);
  CHECK(straight.final.at("avg_test_loss") != straight.final.at("test_loss"));
  CHECK(straight.final.at("ema_test_loss") != straight.final.at("test_loss"));
  CHECK(std::isfinite(straight.final.at("avg_test_accuracy")));
  // Off (the default): no averaged results.
  const RunRecord plain = train(text, {"train.epochs=1"});
  CHECK(plain.final.count("ema_test_loss") == 0);
  CHECK(plain.final.count("avg_test_loss") == 0);

  // Stopped after epoch 3's checkpoint (mid-range: the sum holds one epoch) and resumed: the
  // checkpoint carries both averages, so the run ends as the straight one.
  const fs::path checkpoint = dir.path() / "checkpoint.pt";
  const auto& registry = test::linked_registry();
  const Experiment e = load_experiment_text(text, "tones.toml", on, registry);
  TrainerOptions stop;
  stop.checkpoint = checkpoint;
  stop.measure_latency = false;
  stop.after_checkpoint = [](int64_t epoch) {
    if (epoch == 3) throw std::runtime_error("stopped for the test");
  };
  const RunRecord stopped = train_run(e.runs.front(), registry, stop, RunRecord{});
  REQUIRE(stopped.curves.size() == 3);
  const RunRecord resumed = train(text, on, checkpoint, stopped);
  REQUIRE_MESSAGE(resumed.status == RunStatus::completed, resumed.reason);
  for (const char* key : {"avg_test_loss", "avg_valid_accuracy", "ema_test_loss", "ema_test_accuracy", "test_loss"}) {
    CAPTURE(key);
    CHECK(resumed.final.at(key) == straight.final.at(key));
  }
  // A range outside the trained epochs is refused where the experiment is read (plan, run),
  // saying what is allowed, instead of failing every run of a sweep.
  CHECK_THROWS_WITH_AS(train(text, {"train.average_epochs=[3, 9]"}),
                       doctest::Contains("1 <= first <= last <= train.epochs = 4"), Error);
}

TEST_CASE("trainer: an unreadable checkpoint restarts the run, which then equals a fresh run") {
  test::TempDir dir;
  const auto text = tone_experiment(write_tone_set(dir.path()));
  const std::vector<std::string> two_epochs = {"train.epochs=2"};
  const RunRecord fresh = train(text, two_epochs);
  REQUIRE(fresh.status == RunStatus::completed);
  // A record with curves beside a checkpoint of random bytes, as a corrupted disk leaves it.
  const fs::path checkpoint = dir.path() / "checkpoint.pt";
  {
    std::ofstream junk(checkpoint, std::ios::binary);
    for (int i = 0; i < 4096; ++i) junk.put(static_cast<char>((i * 7919) % 251));
  }
  RunRecord stale = fresh;
  stale.curves.resize(1);
  const RunRecord again = train(text, two_epochs, checkpoint, stale);
  REQUIRE_MESSAGE(again.status == RunStatus::completed, again.reason);
  REQUIRE(again.curves.size() == fresh.curves.size());
  for (size_t i = 0; i < fresh.curves.size(); ++i) {
    CHECK(again.curves[i].train_loss == fresh.curves[i].train_loss);
    CHECK(again.curves[i].valid_loss == fresh.curves[i].valid_loss);
  }
  CHECK(again.test_logits == fresh.test_logits);
}
}

TEST_SUITE("unit") {
TEST_CASE("trainer: a run on a CUDA device this machine lacks is FAILED with the reason before its data loads") {
  if (torch::cuda::is_available()) {
    MESSAGE("this LibTorch sees a CUDA device: the CUDA cases below test it instead");
    return;
  }
  test::TempDir dir;
  const auto text = tone_experiment(write_tone_set(dir.path()));
  const RunRecord r = train(text, {"train.device=cuda"});
  CHECK(r.status == RunStatus::failed);
  CHECK(r.reason.find("[config.device_unavailable]") == 0);
  CHECK(r.reason.find("train.device = \"cuda\"") != std::string::npos);
  CHECK(r.curves.empty());
  CHECK(r.final.count("features_seconds") == 0);  // refused before any features were made
}

// The CUDA cases run where LibTorch sees a GPU (tools/gpu-check.sh builds them against a CUDA
// LibTorch); on a CPU-only LibTorch each says it was skipped.
TEST_CASE("trainer: on CUDA a run learns, draws the CPU run's masks, and its checkpoint resumes exactly") {
  if (!torch::cuda::is_available()) {
    MESSAGE("skipped: this LibTorch sees no CUDA device");
    return;
  }
  test::TempDir dir;
  const auto text = tone_experiment(write_tone_set(dir.path()), "mixup = 0.5\n");
  const std::vector<std::string> specmask = {"masker.plugin=specmask", "masker.budget=64"};
  auto on = [&](const std::string& device, std::vector<std::string> more = {}) {
    more.insert(more.end(), specmask.begin(), specmask.end());
    more.push_back("train.device=" + device);
    return more;
  };
  const RunRecord cpu = train(text, on("cpu"));
  const RunRecord gpu = train(text, on("cuda"));
  REQUIRE_MESSAGE(gpu.status == RunStatus::completed, gpu.reason);
  CHECK(gpu.final.at("test_accuracy") >= 0.9);
  // Shuffle, mixup and masks are drawn on the CPU: the same cells on both devices.
  CHECK(gpu.final.at("masked_cells_per_example") == cpu.final.at("masked_cells_per_example"));
  CHECK(gpu.curves.front().train_loss == doctest::Approx(cpu.curves.front().train_loss).epsilon(1e-3));
  // Stopped after epoch 2's checkpoint and resumed (the checkpoint read back onto the GPU):
  // the uninterrupted run's numbers, up to CUDA's non-deterministic reductions.
  const auto settings = on("cuda", {"train.checkpoint_every_s=0"});
  const RunRecord whole = train(text, settings);
  const fs::path checkpoint = dir.path() / "checkpoint.pt";
  const auto& registry = test::linked_registry();
  TrainerOptions stop;
  stop.checkpoint = checkpoint;
  stop.measure_latency = false;
  stop.after_checkpoint = [](int64_t epoch) {
    if (epoch == 2) throw std::runtime_error("stopped for the test");
  };
  const RunRecord stopped =
      train_run(load_experiment_text(text, "tones.toml", settings, registry).runs.front(), registry, stop, RunRecord{});
  REQUIRE(stopped.curves.size() == 2);
  const RunRecord resumed = train(text, settings, checkpoint, stopped);
  REQUIRE_MESSAGE(resumed.status == RunStatus::completed, resumed.reason);
  REQUIRE(resumed.curves.size() == whole.curves.size());
  CHECK(resumed.curves.back().train_loss == doctest::Approx(whole.curves.back().train_loss).epsilon(1e-4));
  CHECK(resumed.final.at("test_loss") == doctest::Approx(whole.final.at("test_loss")).epsilon(1e-4));
}

TEST_CASE("trainer: on CUDA, bf16 and fp16 (with its loss scale) learn the easy set") {
  if (!torch::cuda::is_available()) {
    MESSAGE("skipped: this LibTorch sees no CUDA device");
    return;
  }
  test::TempDir dir;
  const auto text = tone_experiment(write_tone_set(dir.path()));
  for (const char* precision : {"bf16", "fp16"}) {
    CAPTURE(precision);
    const RunRecord r = train(text, {"train.device=cuda", std::string("train.precision=") + precision});
    REQUIRE_MESSAGE(r.status == RunStatus::completed, r.reason);
    CHECK(r.final.at("test_accuracy") >= 0.9);  // chance: 0.5
  }
}
}

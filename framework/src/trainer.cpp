// The run: data, model, optimiser, the epochs, the test and the measurements (trainer.hpp).
// The data path is train/batches.*, evaluation train/evaluate.*, checkpoints
// train/checkpoint.*, the learning rate train/lr_schedule.*.
#include "patchbay/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <thread>

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/module.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "patchbay/device.hpp"
#include "patchbay/distributed.hpp"
#include "patchbay/error.hpp"
#include "patchbay/features.hpp"
#include "patchbay/fbank.hpp"
#include "patchbay/log.hpp"
#include "patchbay/model.hpp"
#include "patchbay/version.hpp"
#include "patchbay/weights.hpp"
#include "patchbay/weights_load.hpp"
#include "text_util.hpp"
#include "train/averaging.hpp"
#include "train/batches.hpp"
#include "train/checkpoint.hpp"
#include "train/evaluate.hpp"
#include "train/grad_scaler.hpp"
#include "train/lr_schedule.hpp"
#include "train/sampling.hpp"

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace patchbay {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A run-level failure: recorded as FAILED with the reason and the step.
struct RunFailure {
  std::string reason;
  int64_t step = -1;
};

// Peak resident memory of this process in MiB (VmHWM), or NaN.
double peak_rss_mb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return kNaN;
}

using Report = std::function<void(const TrainProgress&)>;

// The three splits, their normalisation and what the dataset says of itself.
struct RunData {
  SplitData train, valid, test;
  bool multi_label = false;
  int64_t num_classes = 0;
  Normaliser norm;
  FbankOptions fbank;
};

RunData load_run_data(const PlannedRun& run, const Registry& registry, const TrainerOptions& opts, int threads,
                      const Report& report, RunRecord& rec) {
  const ResolvedConfig& c = run.config;
  DatasetContext dc;
  dc.base_dir = opts.base_dir;
  auto dataset = registry.make_dataset(c.dataset.plugin, c.dataset.options, dc);
  RunData d;
  d.multi_label = dataset->multi_label();
  d.num_classes = static_cast<int64_t>(dataset->class_names().size());
  rec.class_names = dataset->class_names();
  FeatureRequest request;
  request.frontend = FbankOptions::from(c.frontend);
  request.skip_bad_clips = dataset->skip_bad_clips();
  request.cache_dir = c.frontend.get_string("cache_dir");
  if (!request.cache_dir.empty() && request.cache_dir.is_relative()) request.cache_dir = opts.base_dir / request.cache_dir;
  request.threads = threads;
  TrainProgress fp;
  fp.run_id = run.id;
  fp.phase = "features";
  request.progress = [&](size_t done, size_t total) {
    fp.done = done;
    fp.total = total;
    report(fp);
  };
  d.fbank = request.frontend;
  const auto features_start = Clock::now();
  d.train = load_split(*dataset, Split::train, request, d.num_classes);
  d.valid = load_split(*dataset, Split::valid, request, d.num_classes);
  d.test = load_split(*dataset, Split::test, request, d.num_classes);
  // Where a run's wall time goes (this attempt): features, epochs, test, measurement; the
  // sweep-overhead benchmark subtracts them from the sweep's wall time.
  rec.final["features_seconds"] = seconds_since(features_start);
  rec.skipped_clips.clear();
  for (const auto* s : {&d.train, &d.valid, &d.test}) {
    for (const auto& k : s->skipped) rec.skipped_clips.push_back(k.path + ": " + k.reason);
  }
  for (const auto& k : dataset->skipped_clips()) rec.skipped_clips.push_back(k + ": missing");
  if (d.train.size() == 0) {
    // When on_bad_clip = "skip" left nothing, what was skipped and why is the answer.
    std::string skipped;
    for (size_t i = 0; i < rec.skipped_clips.size() && i < 10; ++i) skipped += "\n  " + rec.skipped_clips[i];
    if (rec.skipped_clips.size() > 10) skipped += fmt::format("\n  ... and {} more", rec.skipped_clips.size() - 10);
    throw DataError("data.empty_split",
                    rec.skipped_clips.empty()
                        ? fmt::format("dataset '{}' has no training clips; check dataset.root and its "
                                      "split lists", c.dataset.plugin)
                        : fmt::format("dataset '{}' has no training clips left: all {} bad clips were "
                                      "skipped (on_bad_clip = \"skip\"):{}", c.dataset.plugin,
                                      rec.skipped_clips.size(), skipped));
  }
  rec.final["multi_label"] = d.multi_label ? 1.0 : 0.0;
  rec.final["num_classes"] = static_cast<double>(d.num_classes);
  rec.final["train_clips"] = static_cast<double>(d.train.size());
  rec.final["valid_clips"] = static_cast<double>(d.valid.size());
  rec.final["test_clips"] = static_cast<double>(d.test.size());

  double mean = 0.0, std = 0.5;  // scale = 2 std = 1 for "none"
  const std::string norm = c.frontend.get_string("normalize");
  if (norm == "train_split") {
    const auto stats = feature_stats(d.train.features);
    mean = stats.mean;
    std = stats.std;
  } else if (norm == "fixed") {
    mean = c.frontend.get_real("norm_mean");
    std = c.frontend.get_real("norm_std");
  }
  d.norm = {mean, 2.0 * std};
  rec.final["norm_mean"] = mean;
  rec.final["norm_std"] = std;
  return d;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const Options& t, Model& model) {
  const auto betas = t.get_real_list("betas");
  const double lr = t.get_real("lr");
  const double decay = t.get_real("weight_decay");
  if (t.get_string("optimizer") == "adamw") {
    return std::make_unique<torch::optim::AdamW>(
        model.parameters(), torch::optim::AdamWOptions(lr).betas({betas.at(0), betas.at(1)}).weight_decay(decay));
  }
  return std::make_unique<torch::optim::Adam>(
      model.parameters(), torch::optim::AdamOptions(lr).betas({betas.at(0), betas.at(1)}).weight_decay(decay));
}

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& group : opt.param_groups()) group.options().set_lr(lr);
}

// What stays fixed over a run's epochs.
struct Loop {
  const PlannedRun& run;
  const TrainerOptions& opts;
  const Report& report;
  RunData& data;
  Model& model;
  torch::optim::Optimizer& optimizer;
  Distributed* dist;
  int64_t world, rank;
  int64_t epochs, batch_size, steps_per_epoch, total_steps;
  LrSchedule schedule;
  bool use_map;
  std::string metric_name;
  double grad_clip, smoothing, mixup, mixup_alpha;
  int loader_threads;
  MaskContext mask_context;
  const EpochSampler& sampler;
  double ema_decay;  // 0: no moving average
  GradScaler& scaler;  // fp16's loss scale (off otherwise)
};

struct EpochTotals {
  double loss_sum = 0.0, data_seconds = 0.0, step_seconds = 0.0, masked = 0.0, full_frequency = 0.0;
  int64_t seen = 0;
};

// This rank's share of the epoch's examples (train.sampler). Rank r takes positions r, r + world, ... in
// batches of batch_size / world: batch k of every rank comes from positions
// [k batch_size, (k + 1) batch_size), so the ranks' batches k together are the one-process
// run's batch k.
std::vector<int64_t> epoch_order(const Loop& l, at::Generator& generator, int64_t epoch) {
  const auto perm = l.sampler.draw(generator);
  if (l.dist) {
    // Rank 0's draw for all: the ranks' generators differ (masks), the shards must not.
    std::vector<at::Tensor> shuffle{perm};
    l.dist->broadcast(shuffle, fmt::format("broadcasting the shuffle of epoch {}", epoch));
  }
  std::vector<int64_t> order;
  for (int64_t i = l.rank; i < perm.numel(); i += l.world) order.push_back(perm.data_ptr<int64_t>()[i]);
  return order;
}

// One epoch's optimiser steps. Returns the totals; throws RunFailure on a non-finite loss.
EpochTotals train_epoch(const Loop& l, const BatchMaker& maker, at::Generator& generator, int64_t epoch,
                        int64_t& step, double& train_seconds_total, int64_t& timed_steps, double last_metric,
                        NamedTensors& ema) {
  const auto epoch_start = Clock::now();
  l.model.train(true);
  std::vector<int64_t> order = epoch_order(l, generator, epoch);
  // The epoch's mixup draws, here on this thread (batches.hpp: the prefetch threads draw none).
  auto draws = draw_mixup(static_cast<int64_t>(order.size()), l.data.train.size(), l.mixup, l.mixup_alpha, generator);
  Prefetcher batches(maker, std::move(order), std::move(draws), l.batch_size / l.world, l.loader_threads);
  EpochTotals e;
  // steps_per_epoch on every rank: in the last step of an epoch a rank may have no example
  // left, and still takes part in the step's collectives.
  for (int64_t in_epoch = 0; in_epoch < l.steps_per_epoch; ++in_epoch) {
    const auto data_start = Clock::now();
    Batch b;
    if (!batches.done()) b = batches.next();
    const int64_t n = b.spec.defined() ? b.spec.size(0) : 0;
    at::Tensor spec;
    double step_masked = 0.0, step_full = 0.0;
    if (n > 0) {
      // The masker sees the mixture, so its counts are what the model sees.
      const auto masked = l.model.masker->apply(b.spec, l.mask_context, generator);
      spec = masked.spec;
      step_masked = masked.masked_cells.sum().item<double>();
      if (masked.mask.defined()) step_full = full_frequency_cells(masked.mask).sum().item<double>();
    }
    e.data_seconds += seconds_since(data_start);

    const auto step_start = Clock::now();
    const double current_lr = l.schedule.at(step, l.total_steps, epoch);
    set_lr(l.optimizer, current_lr);
    l.optimizer.zero_grad();
    at::Tensor loss;
    double loss_value = 0.0;
    if (n > 0) {
      // The token dropper draws after the masker, one choice for the batch (PaSST).
      const auto logits = l.model.forward(spec.unsqueeze(1), l.model.draw_keep(generator));
      const at::Tensor targets = b.targets.to(l.model.device, /*non_blocking=*/true);
      loss = l.data.multi_label
                 ? F::binary_cross_entropy_with_logits(logits, targets)
                 : F::cross_entropy(logits, targets, F::CrossEntropyFuncOptions().label_smoothing(l.smoothing));
      loss_value = loss.item<double>();
    }
    int64_t step_examples = n;
    if (l.dist) {
      // Before backward, one small all-reduce: the combined batch's loss (the curves, and a
      // NaN check every rank must agree on, or one rank would stop while the others wait),
      // its size and its masked cells.
      at::Tensor stats = torch::tensor({loss_value * static_cast<double>(n), static_cast<double>(n), step_masked,
                                        step_full}, torch::kDouble);
      l.dist->all_reduce_sum(stats, fmt::format("all-reducing step {}'s loss", step + 1));
      step_examples = static_cast<int64_t>(stats[1].item<double>());
      loss_value = stats[0].item<double>() / static_cast<double>(std::max<int64_t>(1, step_examples));
      step_masked = stats[2].item<double>();
      step_full = stats[3].item<double>();
    }
    e.masked += step_masked;
    e.full_frequency += step_full;
    if (!std::isfinite(loss_value)) {
      throw RunFailure{fmt::format("training loss became {} at step {} (epoch {}); lower "
                                   "train.lr or set train.grad_clip", loss_value, step + 1, epoch),
                       step + 1};
    }
    if (n > 0) l.scaler.scale(loss).backward();
    if (l.dist) {
      // Each rank's gradient is the mean over its n examples: weighted by n and divided by
      // the step's examples, the sum is the combined batch's mean gradient, also when the
      // last batch splits unevenly. Every rank then clips and steps identically.
      l.dist->reduce_gradients(l.model.parameters(), static_cast<double>(n), static_cast<double>(step_examples),
                               fmt::format("all-reducing step {}'s gradients", step + 1));
    }
    // fp16: the gradients back at their true size before clipping; a step whose gradients
    // overflowed is skipped (and the scale halved), as PyTorch's GradScaler.step does.
    const bool finite = l.scaler.unscale(l.model.parameters());
    if (l.grad_clip > 0.0) torch::nn::utils::clip_grad_norm_(l.model.parameters(), l.grad_clip);
    if (finite) l.optimizer.step();
    l.scaler.update(finite);
    if (l.ema_decay > 0) ema_update(ema, l.model, l.ema_decay);
    ++step;
    e.step_seconds += seconds_since(step_start);
    e.loss_sum += loss_value * static_cast<double>(step_examples);
    e.seen += step_examples;
    ++timed_steps;

    TrainProgress p;
    p.run_id = l.run.id;
    p.phase = "train";
    p.epoch = epoch;
    p.epochs = l.epochs;
    p.step = step;
    p.total_steps = l.total_steps;
    p.loss = e.loss_sum / static_cast<double>(e.seen);
    p.lr = current_lr;
    p.metric = last_metric;
    p.metric_name = l.metric_name;
    const double elapsed = seconds_since(epoch_start);
    p.examples_per_s = static_cast<double>(e.seen) / std::max(1e-9, elapsed);
    const double per_step = (train_seconds_total + elapsed) / static_cast<double>(timed_steps);
    p.eta_seconds = per_step * static_cast<double>(l.total_steps - step) * 1.1;
    l.report(p);
    if (l.opts.after_step) l.opts.after_step(step);
  }
  train_seconds_total += seconds_since(epoch_start);
  return e;
}

// The tested weights' per-clip predictions, kept so any metric can be recomputed later.
void record_predictions(const Evaluation& tested, const SplitData& test, RunRecord& rec) {
  rec.test_clip_ids = test.ids;
  rec.test_logits.clear();
  rec.test_targets.clear();
  if (!tested.logits.defined()) return;
  const at::Tensor logits = tested.logits.to(torch::kFloat).contiguous();
  rec.test_logits.assign(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
  const at::Tensor targets = (test.multi_hot > 0.5).to(torch::kUInt8).contiguous();
  rec.test_targets.assign(targets.data_ptr<uint8_t>(), targets.data_ptr<uint8_t>() + targets.numel());
}

void run_training(const PlannedRun& run, const Registry& registry, const TrainerOptions& opts, RunRecord& rec,
                  int64_t& step_out) {
  // The record written after each epoch carries the wall time so far: an attempt killed
  // later still counts up to its last epoch (train_run sets the final sum).
  const double wall_at_entry = rec.wall_seconds;
  const auto entry = Clock::now();
  const ResolvedConfig& c = run.config;
  const Options& t = c.train;
  const Report report = [&](const TrainProgress& p) {
    if (opts.progress) opts.progress(p);
  };

  // Threads and seed first: model initialisation draws from the generator.
  const int64_t threads_opt = t.get_int("threads");
  const int threads = threads_opt > 0 ? static_cast<int>(threads_opt)
                      : opts.threads > 0 ? opts.threads
                                         : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  const int loader_threads = static_cast<int>(t.get_int("loader_threads"));
  rec.threads = threads;
  rec.loader_threads = loader_threads;

  // The device before the data: a run that cannot have it fails before any features are made.
  if (opts.distributed) require_cpu_for_distributed(t.get_string("device"));
  const c10::Device device = device_of(t.get_string("device"));
  require_device(device);

  RunData data = load_run_data(run, registry, opts, threads, report, rec);

  // Model and optimiser.
  torch::manual_seed(static_cast<uint64_t>(t.get_int("seed")));
  Model model = build_model(c, registry, data.num_classes);
  if (const fs::path init = t.get_string("init_weights"); !init.empty()) {
    const auto loaded = load_weights(model, read_weights_source(init.is_relative() ? opts.base_dir / init : init),
                                     {t.get_bool("init_strict"), split_patterns(t.get_string("init_exclude"))});
    const std::string details = loaded.details();
    log::info("run {}: init_weights {}: {}{}{}", run.id, init.string(), loaded.summary(),
              details.empty() ? "" : "\n", details);
    for (const auto kind : {InitAction::Kind::loaded, InitAction::Kind::adapted, InitAction::Kind::fresh,
                            InitAction::Kind::ignored}) {
      rec.final[std::string("init_") + to_string(kind)] = static_cast<double>(loaded.count(kind));
    }
  }
  const Cost cost = model.cost();
  rec.final["tokens"] = static_cast<double>(model.grid().tokens());
  // What the backbone sees per training step (fewer than `tokens` under a token dropper;
  // evaluation always sees them all).
  rec.final["train_tokens"] = static_cast<double>(model.train_tokens());
  rec.final["params"] = static_cast<double>(cost.params);
  rec.final["paper_macs"] = static_cast<double>(cost.paper_macs);
  rec.final["flops"] = static_cast<double>(cost.flops);
  if (!model.matched_option.empty()) {
    rec.final["matched_" + model.matched_option] = static_cast<double>(model.matched_value);
  }
  // Built and initialised on the CPU (the same initial weights on every device), then moved
  // before the optimiser is made, so its state lives with the parameters.
  seed_device(device, static_cast<uint64_t>(t.get_int("seed")));
  model.to(device);
  const auto optimizer = make_optimizer(t, model);
  GradScaler scaler(model.precision == Precision::fp16);

  const int64_t epochs = t.get_int("epochs");
  const int64_t batch_size = t.get_int("batch_size");
  // Data-parallel: train.batch_size is the combined batch, so a run has the same steps (and,
  // with masking and mixup off, the same parameters up to rounding) on any number of ranks.
  Distributed* const dist = opts.distributed.get();
  const int64_t world = dist ? dist->world_size() : 1;
  const int64_t rank = dist ? dist->rank() : 0;
  const bool writer = rank == 0;  // only rank 0 records the run and writes checkpoints
  if (batch_size % world != 0) {
    throw ConfigError("dist.batch_size",
                      fmt::format("train.batch_size = {} is the combined batch of the {} ranks and "
                                  "must be a multiple of {}; set train.batch_size={}",
                                  batch_size, world, world, (batch_size / world + 1) * world));
  }
  if (dist) rec.final["world_size"] = static_cast<double>(world);
  const auto average_range = t.get_int_pair("average_epochs");
  if (const std::string problem = average_epochs_problem(average_range, epochs); !problem.empty()) {
    throw ConfigError("config.average_epochs", problem);
  }
  const EpochSampler sampler(t.get_string("sampler"), t.get_int("epoch_size"), data.train.multi_hot);
  rec.final["epoch_clips"] = static_cast<double>(sampler.epoch_size());
  const int64_t steps_per_epoch = (sampler.epoch_size() + batch_size - 1) / batch_size;
  const std::string select = t.get_string("select");
  const bool use_map = select == "mAP" || (select == "auto" && data.multi_label);
  const MixupMode mixup_mode = t.get_string("mixup_on") == "waveform" ? MixupMode::waveform : MixupMode::spectrogram;
  MaskContext mask_context(model.grid());
  mask_context.norm_mean = data.norm.mean;
  mask_context.norm_scale = data.norm.scale;
  const Loop loop{run, opts, report, data, model, *optimizer, dist, world, rank, epochs, batch_size,
                  steps_per_epoch, epochs * steps_per_epoch, LrSchedule::from(t), use_map,
                  use_map ? "mAP" : "acc", t.get_real("grad_clip"), t.get_real("label_smoothing"),
                  t.get_real("mixup"), t.get_real("mixup_alpha"), loader_threads, mask_context, sampler,
                  t.get_real("ema_decay"), scaler};
  const BatchMaker train_maker(data.train, data.norm, mixup_mode, data.fbank);
  const BatchMaker valid_maker(data.valid.size() > 0 ? data.valid : data.train, data.norm, MixupMode::spectrogram,
                               data.fbank);
  const BatchMaker test_maker(data.test, data.norm, MixupMode::spectrogram, data.fbank);
  const EvaluationSettings eval{data.multi_label, t.get_int("eval_batch_size"), loader_threads};

  // A progress record for a phase without a running loss (evaluation, measurement).
  const auto phase_progress = [&](const char* phase, int64_t epoch, int64_t at_step) {
    TrainProgress p;
    p.run_id = run.id;
    p.phase = phase;
    p.epoch = epoch;
    p.epochs = epochs;
    p.step = at_step;
    p.total_steps = loop.total_steps;
    return p;
  };

  TrainState state;
  state.best_state = copy_state(model);
  // Only rank 0 of a distributed run has the record and the checkpoint; share_resume() hands
  // what it read to the other ranks. An unreadable checkpoint propagates (train_run starts
  // the run again from nothing).
  const bool resumable = !opts.checkpoint.empty() && fs::exists(opts.checkpoint) && !rec.curves.empty();
  if (resumable && writer) {
    state = load_checkpoint(opts.checkpoint, model, *optimizer);
    if (state.scaler.has_value()) scaler.set_state(*state.scaler);
    log::info("run {}: resuming after epoch {} (step {})", run.id, state.epoch, state.step);
  }
  if (dist) share_resume(*dist, model, *optimizer, state, t.get_int("seed"), run.id);
  if (loop.ema_decay > 0 && state.ema.empty()) ema_update(state.ema, model, loop.ema_decay);  // the start's copy
  if (state.epoch == 0) {
    rec.curves.clear();
  } else {
    rec.curves.erase(std::remove_if(rec.curves.begin(), rec.curves.end(),
                                    [&](const EpochRow& r) { return r.epoch > state.epoch; }),
                     rec.curves.end());
  }
  int64_t step = state.step;
  at::Generator generator = at::detail::getDefaultCPUGenerator();  // a handle on the default
  double last_metric = rec.curves.empty() ? kNaN
                                          : (use_map ? rec.curves.back().valid_mAP : rec.curves.back().valid_accuracy);
  double train_seconds_total = 0.0;
  int64_t timed_steps = 0;
  const double checkpoint_every_s = t.get_real("checkpoint_every_s");
  auto last_checkpoint = Clock::now();
  // Early stopping needs no state of its own: the epochs since the best one are in the state,
  // so a run resumed after it stopped early stops again where it did.
  const int64_t patience = t.get_int("early_stop_patience");
  const auto patience_ran_out = [&]() { return patience > 0 && state.epoch - state.best_epoch >= patience; };

  for (int64_t epoch = state.epoch + 1; epoch <= epochs && !patience_ran_out(); ++epoch) {
    const auto epoch_start = Clock::now();
    const EpochTotals e = train_epoch(loop, train_maker, generator, epoch, step, train_seconds_total, timed_steps,
                                      last_metric, state.ema);
    report(phase_progress("eval", epoch, step));
    const Evaluation v = evaluate(model, data.valid.size() > 0 ? data.valid : data.train, valid_maker, eval, dist);
    const double score = use_map ? v.metrics.mAP : v.metrics.accuracy;
    last_metric = score;
    if (state.best_epoch == 0 || score > state.best_score) {
      state.best_score = score;
      state.best_epoch = epoch;
      state.best_state = copy_state(model);
    }
    state.masked_sum += e.masked;
    state.masked_count += static_cast<double>(e.seen);
    state.full_frequency_sum += e.full_frequency;
    state.epoch = epoch;
    state.step = step;
    if (epoch >= average_range[0] && epoch <= average_range[1]) {
      add_to_average(state.average_sum, model);
      ++state.averaged;
    }

    EpochRow row;
    row.epoch = epoch;
    row.step = step;
    row.lr = loop.schedule.at(std::max<int64_t>(0, step - 1), loop.total_steps, epoch);
    row.train_loss = e.loss_sum / static_cast<double>(std::max<int64_t>(1, e.seen));
    row.valid_loss = v.loss;
    row.valid_accuracy = v.metrics.accuracy;
    row.valid_mAP = v.metrics.mAP;
    row.valid_auc = v.metrics.auc;
    row.epoch_seconds = seconds_since(epoch_start);
    row.train_seconds = e.step_seconds;
    row.data_seconds = e.data_seconds;
    row.masked_cells = e.masked / static_cast<double>(std::max<int64_t>(1, e.seen));
    rec.curves.push_back(row);
    rec.wall_seconds = wall_at_entry + seconds_since(entry);
    step_out = step;

    if (writer && opts.on_epoch) opts.on_epoch(rec);
    // A checkpoint (model, best weights, optimiser: ~35 MB for AST-tiny) costs more than a
    // short epoch's worth of overhead; write one when checkpoint_every_s have passed, and
    // always after the last epoch, or the one early stopping ends on (`patchbay weights export`
    // reads it).
    // A distributed run saves every rank's generator state with rank 0's checkpoint; they are
    // gathered each epoch (a few KB), since only rank 0 knows when it writes one.
    state.rank_rngs = at::Tensor();
    if (dist) {
      const at::Tensor mine = generator.get_state().unsqueeze(0);
      const auto rows = dist->all_gather_rows(mine, fmt::format("gathering the generator states after epoch {}", epoch));
      if (writer) state.rank_rngs = at::cat(rows, 0);
    }
    if (writer && !opts.checkpoint.empty() &&
        (epoch == epochs || patience_ran_out() || seconds_since(last_checkpoint) >= checkpoint_every_s)) {
      last_checkpoint = Clock::now();
      if (scaler.enabled()) state.scaler = scaler.state();
      save_checkpoint(opts.checkpoint, model, *optimizer, state);
    }
    if (opts.after_checkpoint) opts.after_checkpoint(epoch);
  }

  // The averaged weights, on validation and test, before the best epoch's (whose predictions
  // are the ones recorded).
  const auto evaluate_weights = [&](const std::string& prefix, const NamedTensors& weights) {
    restore_state(model, weights);
    report(phase_progress("eval", epochs, step));
    const Evaluation v = evaluate(model, data.valid.size() > 0 ? data.valid : data.train, valid_maker, eval, dist);
    const Evaluation tst = evaluate(model, data.test, test_maker, eval, dist);
    const bool any_test = data.test.size() > 0;
    rec.final[prefix + "valid_accuracy"] = v.metrics.accuracy;
    rec.final[prefix + "valid_mAP"] = v.metrics.mAP;
    rec.final[prefix + "test_loss"] = tst.loss;
    rec.final[prefix + "test_accuracy"] = any_test ? tst.metrics.accuracy : kNaN;
    rec.final[prefix + "test_mAP"] = any_test ? tst.metrics.mAP : kNaN;
    rec.final[prefix + "test_auc"] = any_test ? tst.metrics.auc : kNaN;
  };
  if (!state.ema.empty()) evaluate_weights("ema_", state.ema);
  if (average_range[0] > 0) {
    rec.final["averaged_epochs"] = static_cast<double>(state.averaged);
    if (state.averaged > 0) evaluate_weights("avg_", average_of(state.average_sum, state.averaged));
  }

  // Test the best-on-validation weights.
  restore_state(model, state.best_state);
  report(phase_progress("eval", epochs, step));
  const auto test_start = Clock::now();
  const Evaluation tested = evaluate(model, data.test, test_maker, eval, dist);
  rec.final["test_seconds"] = seconds_since(test_start);
  rec.final["best_epoch"] = static_cast<double>(state.best_epoch);
  rec.final["epochs_trained"] = static_cast<double>(state.epoch);
  rec.final["stopped_early"] = state.epoch < epochs ? 1.0 : 0.0;
  // The best epoch was validated when it ran: its row holds the numbers (no second pass).
  for (const auto& row : rec.curves) {
    if (row.epoch != state.best_epoch) continue;
    rec.final["valid_accuracy"] = row.valid_accuracy;
    rec.final["valid_mAP"] = row.valid_mAP;
    rec.final["valid_auc"] = row.valid_auc;
  }
  const bool has_test = data.test.size() > 0;
  rec.final["test_loss"] = tested.loss;
  rec.final["test_accuracy"] = has_test ? tested.metrics.accuracy : kNaN;
  rec.final["test_mAP"] = has_test ? tested.metrics.mAP : kNaN;
  rec.final["test_auc"] = has_test ? tested.metrics.auc : kNaN;
  rec.final["test_d_prime"] = has_test ? tested.metrics.d_prime : kNaN;
  rec.test_ap_per_class = tested.metrics.ap_per_class;
  record_predictions(tested, data.test, rec);
  rec.final["masked_cells_per_example"] = state.masked_sum / std::max(1.0, state.masked_count);
  // What the masker realised (SpecMask's full-frequency share is whole frames).
  rec.final["full_frequency_cells_per_example"] = state.full_frequency_sum / std::max(1.0, state.masked_count);
  double epoch_seconds = 0.0, data_seconds = 0.0;
  for (const auto& r : rec.curves) {
    epoch_seconds += r.epoch_seconds;
    data_seconds += r.data_seconds;
  }
  rec.final["epoch_seconds_mean"] = epoch_seconds / static_cast<double>(std::max<size_t>(1, rec.curves.size()));
  rec.final["data_fraction"] = epoch_seconds > 0 ? data_seconds / epoch_seconds : kNaN;

  if (opts.measure_latency && writer) {  // no collectives after the test: the others may go
    report(phase_progress("measure", epochs, step));
    const auto measure_start = Clock::now();
    const Latency l = measure_latency(model, batch_size, 10);
    rec.final["measure_seconds"] = seconds_since(measure_start);
    rec.final["latency_ms"] = l.batch1_ms;
    rec.final["throughput"] = l.throughput;
    rec.final["throughput_batch"] = static_cast<double>(l.batch);
  }
  rec.final["peak_rss_mb"] = peak_rss_mb();
}

// run_training, started again from nothing when the checkpoint it would resume from cannot be
// read: the model and optimiser it half-loaded are dropped with it, so the run then equals a
// fresh run of its seed.
void run_training_or_restart(const PlannedRun& run, const Registry& registry, const TrainerOptions& opts,
                             RunRecord& rec, int64_t& step) {
  try {
    run_training(run, registry, opts, rec, step);
  } catch (const CheckpointUnreadable& e) {
    log::warn("run {}: checkpoint '{}' cannot be read ({}); starting the run again", run.id,
              opts.checkpoint.string(), e.what());
    std::error_code ignored;
    fs::remove(opts.checkpoint, ignored);
    rec.curves.clear();
    rec.final.clear();
    step = 0;
    run_training(run, registry, opts, rec, step);
  }
}

}  // namespace

RunRecord start_record(const PlannedRun& run, RunRecord rec) {
  rec.id = run.id;
  rec.slug = run.slug;
  rec.axes.clear();
  for (const auto& [k, v] : run.axes) rec.axes.emplace_back(k, to_toml(v));
  rec.config_toml = run.config.to_toml();
  rec.seed = run.config.train.get_int("seed");
  rec.status = RunStatus::running;
  return rec;
}

RunRecord train_run(const PlannedRun& run, const Registry& registry, const TrainerOptions& opts, RunRecord rec) {
  const auto start = Clock::now();
  const double wall_before = rec.wall_seconds;
  rec = start_record(run, std::move(rec));
  rec.host = host_name();
  rec.blas = blas_summary();
  if (rec.started.empty()) rec.started = utc_now();
  rec.attempts += 1;
  rec.status = RunStatus::running;
  rec.reason.clear();
  rec.failed_step = -1;
  rec.finished.clear();
  int64_t step = 0;
  try {
    run_training_or_restart(run, registry, opts, rec, step);
    rec.status = RunStatus::completed;
  } catch (const RunFailure& f) {
    rec.status = RunStatus::failed;
    rec.reason = f.reason;
    rec.failed_step = f.step;
  } catch (const Error& e) {
    rec.status = RunStatus::failed;
    rec.reason = fmt::format("[{}] {}", e.id(), e.what());
  } catch (const std::exception& e) {
    rec.status = RunStatus::failed;
    rec.reason = fmt::format("[internal] {}", without_backtrace(e.what()));
  }
  rec.finished = utc_now();
  rec.wall_seconds = wall_before + seconds_since(start);
  return rec;
}

}  // namespace patchbay

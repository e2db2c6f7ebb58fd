#include "patchbay/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <fstream>
#include <future>
#include <limits>
#include <numeric>
#include <sstream>
#include <thread>

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <torch/nn/functional/loss.h>
#include <torch/nn/module.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "patchbay/distributed.hpp"
#include "patchbay/error.hpp"
#include "patchbay/features.hpp"
#include "patchbay/frontend.hpp"
#include "patchbay/log.hpp"
#include "patchbay/metrics.hpp"
#include "patchbay/model.hpp"
#include "patchbay/weights.hpp"

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

// One split in memory: features [N, T, F] (raw log-mel) and targets.
struct SplitData {
  at::Tensor features;   // [N, T, F] float32
  at::Tensor labels;     // [N] int64 (single-label) — first label
  at::Tensor multi_hot;  // [N, C] float32
  std::vector<std::filesystem::path> paths;  // [N] the clips' files (waveform mixup decodes them)
  std::vector<SkippedClip> skipped;
  int64_t size() const { return features.defined() ? features.size(0) : 0; }
};

SplitData load_split(const Dataset& dataset, Split split, const FeatureRequest& request,
                     int64_t num_classes) {
  const auto clips = dataset.clips(split);
  FeatureSet fs = load_features(clips, request);
  SplitData d;
  d.features = fs.features;
  d.skipped = fs.skipped;
  const int64_t n = static_cast<int64_t>(fs.clip_index.size());
  d.labels = torch::zeros({n}, torch::kLong);
  d.multi_hot = torch::zeros({n, num_classes});
  auto labels = d.labels.accessor<int64_t, 1>();
  auto hot = d.multi_hot.accessor<float, 2>();
  for (int64_t i = 0; i < n; ++i) {
    const Clip& clip = clips[fs.clip_index[static_cast<size_t>(i)]];
    if (clip.labels.empty()) {
      throw DataError("data.no_label", fmt::format("clip '{}' has no label; fix the dataset's "
                                                   "label list", clip.path.string()));
    }
    labels[i] = clip.labels.front();
    d.paths.push_back(clip.path);
    for (int64_t l : clip.labels) {
      if (l < 0 || l >= num_classes) {
        throw DataError("data.bad_label", fmt::format("clip '{}' has label index {} outside 0..{}",
                                                      clip.path.string(), l, num_classes - 1));
      }
      hot[i][l] = 1.0f;
    }
  }
  return d;
}

struct Batch {
  at::Tensor rows;       // [B] row indices into the split
  at::Tensor spec;       // [B, F, T] normalised
  at::Tensor labels;     // [B]
  at::Tensor multi_hot;  // [B, C]
};

// Gathers batches of a fixed order ahead of use on background threads. The threads only
// copy and normalise (no random numbers), so prefetching never changes results.
class Prefetcher {
 public:
  Prefetcher(const SplitData& data, std::vector<int64_t> order, int64_t batch_size, double mean,
             double scale, int threads)
      : data_(data), order_(std::move(order)), batch_size_(batch_size), mean_(mean), scale_(scale),
        depth_(threads <= 0 ? 0 : static_cast<size_t>(2 * threads)) {
    batches_ = (static_cast<int64_t>(order_.size()) + batch_size_ - 1) / batch_size_;
    fill();
  }
  ~Prefetcher() {
    for (auto& f : pending_) f.wait();
  }
  int64_t batches() const { return batches_; }
  bool done() const { return next_ >= batches_; }

  Batch next() {
    Batch b;
    if (depth_ == 0) {
      b = make(next_);
    } else {
      b = pending_.front().get();
      pending_.pop_front();
    }
    ++next_;
    fill();
    return b;
  }

 private:
  Batch make(int64_t index) const {
    const int64_t begin = index * batch_size_;
    const int64_t end = std::min<int64_t>(begin + batch_size_, static_cast<int64_t>(order_.size()));
    const auto idx = torch::from_blob(const_cast<int64_t*>(order_.data()) + begin, {end - begin},
                                      torch::kLong).clone();
    Batch b;
    b.spec = ((data_.features.index_select(0, idx).transpose(1, 2) - mean_) / scale_).contiguous();
    b.rows = idx;
    b.labels = data_.labels.index_select(0, idx);
    b.multi_hot = data_.multi_hot.index_select(0, idx);
    return b;
  }
  void fill() {
    if (depth_ == 0) return;
    while (pending_.size() < depth_ && issued_ < batches_) {
      const int64_t index = issued_++;
      pending_.push_back(std::async(std::launch::async, [this, index] { return make(index); }));
    }
  }

  const SplitData& data_;
  std::vector<int64_t> order_;
  int64_t batch_size_;
  double mean_, scale_;
  size_t depth_;
  int64_t batches_ = 0, next_ = 0, issued_ = 0;
  std::deque<std::future<Batch>> pending_;
};

struct Evaluation {
  double loss = kNaN;
  ClassificationMetrics metrics;
};

// Distributed (dist set): rank r evaluates rows r, r + world, ...; the logits are gathered
// and put back in row order, so every rank computes the metrics of the whole split.
Evaluation evaluate(Model& model, const SplitData& data, bool multi_label, int64_t batch_size,
                    double mean, double scale, int loader_threads, Distributed* dist = nullptr) {
  Evaluation ev;
  if (data.size() == 0) return ev;
  torch::NoGradGuard no_grad;
  model.train(false);
  const int64_t world = dist ? dist->world_size() : 1;
  const int64_t rank = dist ? dist->rank() : 0;
  std::vector<int64_t> order;
  for (int64_t i = rank; i < data.size(); i += world) order.push_back(i);
  Prefetcher batches(data, order, batch_size, mean, scale, loader_threads);
  std::vector<at::Tensor> logits;
  double loss_sum = 0.0;
  if (dist) {
    while (!batches.done()) logits.push_back(model.forward(batches.next().spec.unsqueeze(1)));
    const int64_t classes = data.multi_hot.size(1);
    const at::Tensor local = logits.empty() ? torch::zeros({0, classes}) : torch::cat(logits);
    const auto parts = dist->all_gather_rows(local, "gathering the evaluation's logits");
    at::Tensor all = torch::empty({data.size(), classes});
    for (int64_t r = 0; r < world; ++r) {
      if (parts[static_cast<size_t>(r)].size(0) == 0) continue;
      all.index_copy_(0, torch::arange(r, data.size(), world, torch::kLong), parts[static_cast<size_t>(r)]);
    }
    // The mean loss over the split, as the one-process path's batch-weighted sum gives it.
    ev.loss = (multi_label ? F::binary_cross_entropy_with_logits(all, data.multi_hot)
                           : F::cross_entropy(all, data.labels)).item<double>();
    ev.metrics = evaluate_classification(all, data.multi_hot);
    return ev;
  }
  while (!batches.done()) {
    const Batch b = batches.next();
    const auto out = model.forward(b.spec.unsqueeze(1));
    const auto loss = multi_label ? F::binary_cross_entropy_with_logits(out, b.multi_hot)
                                  : F::cross_entropy(out, b.labels);
    loss_sum += loss.item<double>() * static_cast<double>(b.spec.size(0));
    logits.push_back(out);
  }
  ev.loss = loss_sum / static_cast<double>(data.size());
  ev.metrics = evaluate_classification(torch::cat(logits), data.multi_hot);
  return ev;
}

double select_metric(const Evaluation& ev, bool use_map) {
  return use_map ? ev.metrics.mAP : ev.metrics.accuracy;
}

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& group : opt.param_groups()) group.options().set_lr(lr);
}

// The learning rate at optimiser step `step` (0-based) of epoch `epoch` (1-based).
double schedule_lr(const Options& t, int64_t step, int64_t total_steps, int64_t epoch) {
  const double peak = t.get_real("lr");
  const std::string kind = t.get_string("schedule");
  const int64_t warmup = t.get_int("warmup_steps");
  if (warmup > 0 && step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (kind == "cosine") {
    const double span = static_cast<double>(std::max<int64_t>(1, total_steps - warmup));
    const double progress = std::clamp(static_cast<double>(step - warmup) / span, 0.0, 1.0);
    return peak * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  if (kind == "step") {
    const int64_t start = t.get_int("step_start_epoch");
    if (epoch < start) return peak;
    const int64_t decays = (epoch - start) / t.get_int("step_every") + 1;
    return peak * std::pow(t.get_real("step_decay"), static_cast<double>(decays));
  }
  return peak;
}

// Checkpoint contents (torch::serialize archive).
void save_checkpoint(const fs::path& file, Model& model, torch::optim::Optimizer& optimizer,
                     const std::vector<std::pair<std::string, at::Tensor>>& best_state,
                     int64_t epoch, int64_t step, double best_score, int64_t best_epoch,
                     double masked_sum, double masked_count, const at::Tensor& rank_rngs) {
  torch::serialize::OutputArchive archive;
  for (const auto& [name, t] : model.named_state()) archive.write("model/" + name, t, /*is_buffer=*/true);
  for (const auto& [name, t] : best_state) archive.write("best/" + name, t, true);
  torch::serialize::OutputArchive opt_archive;
  optimizer.save(opt_archive);
  archive.write("optimizer", opt_archive);
  archive.write("rng", at::detail::getDefaultCPUGenerator().get_state(), true);
  archive.write("epoch", torch::tensor(epoch), true);
  archive.write("step", torch::tensor(step), true);
  archive.write("best_score", torch::tensor(best_score, torch::kDouble), true);
  archive.write("best_epoch", torch::tensor(best_epoch), true);
  archive.write("masked", torch::tensor({masked_sum, masked_count}, torch::kDouble), true);
  // A distributed run: every rank's generator state, [world, state bytes] (row 0 = "rng").
  if (rank_rngs.defined()) archive.write("rank_rng", rank_rngs, true);
  const fs::path temp = file.string() + ".tmp";
  archive.save_to(temp.string());
  fs::rename(temp, file);
}

struct Resumed {
  int64_t epoch = 0, step = 0, best_epoch = 0;
  double best_score = -1.0, masked_sum = 0.0, masked_count = 0.0;
  std::vector<std::pair<std::string, at::Tensor>> best_state;
  at::Tensor rank_rngs;  // [world, bytes] when a distributed run wrote the checkpoint
};

Resumed load_checkpoint(const fs::path& file, Model& model, torch::optim::Optimizer& optimizer) {
  torch::serialize::InputArchive archive;
  archive.load_from(file.string());
  Resumed r;
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : model.named_state()) {
    at::Tensor v;
    archive.read("model/" + name, v, true);
    t.copy_(v);
    at::Tensor b;
    archive.read("best/" + name, b, true);
    r.best_state.emplace_back(name, b);
  }
  torch::serialize::InputArchive opt_archive;
  archive.read("optimizer", opt_archive);
  optimizer.load(opt_archive);
  at::Tensor rng, epoch, step, best_score, best_epoch, masked;
  archive.read("rng", rng, true);
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(rng);
  archive.read("epoch", epoch, true);
  archive.read("step", step, true);
  archive.read("best_score", best_score, true);
  archive.read("best_epoch", best_epoch, true);
  archive.read("masked", masked, true);
  r.epoch = epoch.item<int64_t>();
  r.step = step.item<int64_t>();
  r.best_score = best_score.item<double>();
  r.best_epoch = best_epoch.item<int64_t>();
  r.masked_sum = masked[0].item<double>();
  r.masked_count = masked[1].item<double>();
  at::Tensor rank_rngs;
  if (archive.try_read("rank_rng", rank_rngs, true)) r.rank_rngs = rank_rngs;
  return r;
}

std::vector<std::pair<std::string, at::Tensor>> copy_state(const Model& model) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [name, t] : model.named_state()) out.emplace_back(name, t.detach().clone());
  return out;
}

void restore_state(Model& model, const std::vector<std::pair<std::string, at::Tensor>>& state) {
  torch::NoGradGuard no_grad;
  auto current = model.named_state();
  for (size_t i = 0; i < current.size() && i < state.size(); ++i) current[i].second.copy_(state[i].second);
}

// A distributed run's resume: rank 0 read the checkpoint (or found none); every other rank
// takes from it what an uninterrupted run would hold at that epoch: the position, the best
// weights and score, the optimiser state (sent as its serialised archive, so any optimiser
// works), and its own generator state, so its masks and mixup continue where they stopped.
// Every rank calls this with the same world; the collectives run in the same order on all.
void share_resume(Distributed& dist, Model& model, torch::optim::Optimizer& optimizer,
                  Resumed& state, int64_t seed, const std::string& run_id) {
  const int rank = dist.rank();
  const int world = dist.world_size();
  std::string optimizer_bytes;
  if (rank == 0 && state.epoch > 0) {
    torch::serialize::OutputArchive archive;
    optimizer.save(archive);
    std::ostringstream out;
    archive.save_to(out);
    optimizer_bytes = out.str();
  }
  const int64_t rng_rows = state.rank_rngs.defined() ? state.rank_rngs.size(0) : 0;
  const int64_t rng_bytes = state.rank_rngs.defined() ? state.rank_rngs.size(1) : 0;
  at::Tensor header = torch::tensor({state.epoch, state.step, state.best_epoch,
                                     static_cast<int64_t>(optimizer_bytes.size()), rng_rows, rng_bytes},
                                    torch::kLong);
  at::Tensor scalars = torch::tensor({state.best_score, state.masked_sum, state.masked_count}, torch::kDouble);
  std::vector<at::Tensor> small{header, scalars};
  dist.broadcast(small, "broadcasting where the run resumes");
  const int64_t* h = header.data_ptr<int64_t>();
  state.epoch = h[0];
  state.step = h[1];
  state.best_epoch = h[2];
  state.best_score = scalars[0].item<double>();
  state.masked_sum = scalars[1].item<double>();
  state.masked_count = scalars[2].item<double>();

  // Every rank built the model from the same seed, but rank 0's copy is the truth (resumed,
  // or an init_weights file that could differ between machines).
  std::vector<at::Tensor> parameters;
  for (const auto& [name, tensor] : model.named_state()) parameters.push_back(tensor);
  dist.broadcast(parameters, "broadcasting rank 0's parameters");
  if (state.epoch == 0) {
    state.best_state = copy_state(model);
    // Masks, mixup and dropout differ between ranks as they would between batches; rank 0
    // keeps train.seed, so its stream is the one-process run's.
    if (rank > 0) torch::manual_seed(static_cast<uint64_t>(seed + rank));
    return;
  }

  if (rank > 0) state.best_state = copy_state(model);  // shapes to receive into
  std::vector<at::Tensor> best;
  for (auto& [name, tensor] : state.best_state) best.push_back(tensor);
  dist.broadcast(best, "broadcasting the best weights so far");

  at::Tensor bytes = rank == 0 ? torch::from_blob(optimizer_bytes.data(), {h[3]}, torch::kUInt8).clone()
                               : torch::empty({h[3]}, torch::kUInt8);
  std::vector<at::Tensor> blob{bytes};
  dist.broadcast(blob, "broadcasting the optimiser state");
  if (rank > 0) {
    torch::serialize::InputArchive archive;
    archive.load_from(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()), static_cast<size_t>(h[3]));
    optimizer.load(archive);
  }

  if (h[4] == world) {
    at::Tensor rngs = rank == 0 ? state.rank_rngs.contiguous() : torch::empty({h[4], h[5]}, torch::kUInt8);
    std::vector<at::Tensor> all{rngs};
    dist.broadcast(all, "broadcasting the ranks' generator states");
    if (rank > 0) {
      at::Generator generator = at::detail::getDefaultCPUGenerator();
      generator.set_state(rngs[rank].clone());
    }
  } else {
    if (rank == 0) {
      log::warn("run {}: the checkpoint holds the generator states of {} rank{}, not {}; ranks "
                "1..{} draw fresh masks and mixup after the resume",
                run_id, h[4], h[4] == 1 ? "" : "s", world, world - 1);
    }
    if (rank > 0) torch::manual_seed(static_cast<uint64_t>(seed + rank + 1000003 * state.epoch));
  }
}

void run_training(const PlannedRun& run, const Registry& registry, const TrainerOptions& opts,
                  RunRecord& rec, int64_t& step_out) {
  const ResolvedConfig& c = run.config;
  const Options& t = c.train;
  const auto report = [&](const TrainProgress& p) {
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

  // Data.
  DatasetContext dc;
  dc.base_dir = opts.base_dir;
  auto dataset = registry.make_dataset(c.dataset.plugin, c.dataset.options, dc);
  const bool multi_label = dataset->multi_label();
  const int64_t num_classes = static_cast<int64_t>(dataset->class_names().size());
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
  const auto features_start = Clock::now();
  const SplitData train = load_split(*dataset, Split::train, request, num_classes);
  const SplitData valid = load_split(*dataset, Split::valid, request, num_classes);
  const SplitData test = load_split(*dataset, Split::test, request, num_classes);
  // Where a run's wall time goes (this attempt): features, epochs, test, measurement; the
  // sweep-overhead benchmark subtracts them from the sweep's wall time.
  rec.final["features_seconds"] = seconds_since(features_start);
  if (train.size() == 0) {
    throw DataError("data.empty_split", fmt::format("dataset '{}' has no training clips; check "
                                                    "dataset.root and its split lists", c.dataset.plugin));
  }
  rec.skipped_clips.clear();
  for (const auto* s : {&train, &valid, &test}) {
    for (const auto& k : s->skipped) rec.skipped_clips.push_back(k.path + ": " + k.reason);
  }
  for (const auto& k : dataset->skipped_clips()) rec.skipped_clips.push_back(k + ": missing");
  rec.final["multi_label"] = multi_label ? 1.0 : 0.0;
  rec.final["num_classes"] = static_cast<double>(num_classes);
  rec.final["train_clips"] = static_cast<double>(train.size());
  rec.final["valid_clips"] = static_cast<double>(valid.size());
  rec.final["test_clips"] = static_cast<double>(test.size());

  double mean = 0.0, std = 0.5;  // scale = 2 std = 1 for "none"
  const std::string norm = c.frontend.get_string("normalize");
  if (norm == "train_split") {
    const auto stats = feature_stats(train.features);
    mean = stats.mean;
    std = stats.std;
  } else if (norm == "fixed") {
    mean = c.frontend.get_real("norm_mean");
    std = c.frontend.get_real("norm_std");
  }
  const double scale = 2.0 * std;
  rec.final["norm_mean"] = mean;
  rec.final["norm_std"] = std;

  // Model and optimiser.
  torch::manual_seed(static_cast<uint64_t>(t.get_int("seed")));
  Model model = build_model(c, registry, num_classes);
  if (const fs::path init = t.get_string("init_weights"); !init.empty()) {
    import_weights(model, init.is_relative() ? opts.base_dir / init : init);
  }
  const Cost cost = model.cost();
  rec.final["tokens"] = static_cast<double>(model.grid().tokens());
  rec.final["params"] = static_cast<double>(cost.params);
  rec.final["paper_macs"] = static_cast<double>(cost.paper_macs);
  rec.final["flops"] = static_cast<double>(cost.flops);
  if (!model.matched_option.empty()) {
    rec.final["matched_" + model.matched_option] = static_cast<double>(model.matched_value);
  }

  const auto betas = t.get_real_list("betas");
  const double lr = t.get_real("lr");
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  if (t.get_string("optimizer") == "adamw") {
    optimizer = std::make_unique<torch::optim::AdamW>(
        model.parameters(), torch::optim::AdamWOptions(lr).betas({betas.at(0), betas.at(1)})
                                .weight_decay(t.get_real("weight_decay")));
  } else {
    optimizer = std::make_unique<torch::optim::Adam>(
        model.parameters(), torch::optim::AdamOptions(lr).betas({betas.at(0), betas.at(1)})
                                .weight_decay(t.get_real("weight_decay")));
  }

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
  const int64_t steps_per_epoch = (train.size() + batch_size - 1) / batch_size;
  const int64_t total_steps = epochs * steps_per_epoch;
  const std::string select = t.get_string("select");
  const bool use_map = select == "mAP" || (select == "auto" && multi_label);
  const std::string metric_name = use_map ? "mAP" : "acc";
  const double grad_clip = t.get_real("grad_clip");
  const double smoothing = t.get_real("label_smoothing");
  const double mixup = t.get_real("mixup");
  const double mixup_alpha = t.get_real("mixup_alpha");
  const bool mixup_on_waveform = t.get_string("mixup_on") == "waveform";
  const FbankOptions fbank_options = request.frontend;
  const Fbank fbank(fbank_options);
  const int64_t eval_batch = t.get_int("eval_batch_size");

  // A progress record for a phase without a running loss (evaluation, measurement).
  const auto phase_progress = [&](const char* phase, int64_t epoch, int64_t at_step) {
    TrainProgress p;
    p.run_id = run.id;
    p.phase = phase;
    p.epoch = epoch;
    p.epochs = epochs;
    p.step = at_step;
    p.total_steps = total_steps;
    return p;
  };

  Resumed state;
  state.best_state = copy_state(model);
  // Only rank 0 of a distributed run has the record and the checkpoint; share_resume() hands
  // what it read to the other ranks.
  const bool resumable = !opts.checkpoint.empty() && fs::exists(opts.checkpoint) && !rec.curves.empty();
  if (resumable && writer) {
    try {
      state = load_checkpoint(opts.checkpoint, model, *optimizer);
      log::info("run {}: resuming after epoch {} (step {})", run.id, state.epoch, state.step);
    } catch (const std::exception& e) {
      log::warn("run {}: checkpoint '{}' cannot be read ({}); starting the run again", run.id,
               opts.checkpoint.string(), e.what());
      torch::manual_seed(static_cast<uint64_t>(t.get_int("seed")));
      state = Resumed{};
      state.best_state = copy_state(model);
    }
  }
  if (dist) share_resume(*dist, model, *optimizer, state, t.get_int("seed"), run.id);
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

  for (int64_t epoch = state.epoch + 1; epoch <= epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    model.train(true);
    const auto perm = torch::randperm(train.size(), generator, torch::kLong);
    if (dist) {
      // Rank 0's shuffle for all: the ranks' generators differ (masks), the shards must not.
      std::vector<at::Tensor> shuffle{perm};
      dist->broadcast(shuffle, fmt::format("broadcasting the shuffle of epoch {}", epoch));
    }
    // Rank r takes positions r, r + world, ... of the shuffle in batches of batch_size / world:
    // batch k of every rank comes from positions [k batch_size, (k + 1) batch_size), so the
    // ranks' batches k together are the one-process run's batch k.
    std::vector<int64_t> order;
    for (int64_t i = rank; i < perm.numel(); i += world) order.push_back(perm.data_ptr<int64_t>()[i]);
    Prefetcher batches(train, std::move(order), batch_size / world, mean, scale, loader_threads);
    double loss_sum = 0.0, data_seconds = 0.0, step_seconds = 0.0, epoch_masked = 0.0;
    int64_t seen = 0;
    // steps_per_epoch on every rank: in the last step of an epoch a rank may have no example
    // left, and still takes part in the step's collectives.
    for (int64_t in_epoch = 0; in_epoch < steps_per_epoch; ++in_epoch) {
      const auto data_start = Clock::now();
      Batch b;
      if (!batches.done()) b = batches.next();
      const int64_t n = b.spec.defined() ? b.spec.size(0) : 0;
      at::Tensor spec, targets;
      double step_masked = 0.0;
      if (n > 0) {
        targets = multi_label ? b.multi_hot : F::one_hot(b.labels, num_classes).to(torch::kFloat);
        // Mixup draws come first, so both modes consume the generator in the same order.
        bool mix = false;
        double lambda = 1.0;
        at::Tensor partner;
        if (mixup > 0.0 && torch::rand({1}, generator).item<double>() < mixup) {
          const auto gammas = at::_standard_gamma(torch::full({2}, mixup_alpha, torch::kDouble), generator);
          lambda = (gammas[0] / (gammas[0] + gammas[1])).item<double>();
          partner = torch::randperm(n, generator, torch::kLong);
          mix = true;
          targets = lambda * targets + (1.0 - lambda) * targets.index_select(0, partner);
        }
        if (mix && mixup_on_waveform) {
          // AST's way: mix the decoded waveforms (the shorter zero-padded), then compute the
          // fbank of the mixture; the masker then sees the mixture's spectrogram.
          std::vector<at::Tensor> specs;
          for (int64_t i = 0; i < n; ++i) {
            const auto a = b.rows[i].item<int64_t>();
            const auto z = b.rows[partner[i].item<int64_t>()].item<int64_t>();
            Waveform wa = read_audio(train.paths[static_cast<size_t>(a)], fbank_options.sample_rate);
            const Waveform wz = read_audio(train.paths[static_cast<size_t>(z)], fbank_options.sample_rate);
            const int64_t len = std::max(wa.samples.size(0), wz.samples.size(0));
            const auto pad = [len](const at::Tensor& x) {
              return x.size(0) == len ? x : at::constant_pad_nd(x, {0, len - x.size(0)});
            };
            wa.samples = lambda * pad(wa.samples) + (1.0 - lambda) * pad(wz.samples);
            specs.push_back(pad_or_crop(fbank.compute(wa), fbank_options.target_frames).t());
          }
          b.spec = ((torch::stack(specs) - mean) / scale).contiguous();
        }
        const auto masked = model.masker->apply(b.spec, model.grid(), generator);
        spec = masked.spec;
        step_masked = masked.masked_cells.sum().item<double>();
        if (mix && !mixup_on_waveform) spec = lambda * spec + (1.0 - lambda) * spec.index_select(0, partner);
      }
      data_seconds += seconds_since(data_start);

      const auto step_start = Clock::now();
      const double current_lr = schedule_lr(t, step, total_steps, epoch);
      set_lr(*optimizer, current_lr);
      optimizer->zero_grad();
      at::Tensor loss;
      double loss_value = 0.0;
      if (n > 0) {
        const auto logits = model.forward(spec.unsqueeze(1));
        if (multi_label) {
          loss = F::binary_cross_entropy_with_logits(logits, targets);
        } else {
          loss = F::cross_entropy(logits, targets, F::CrossEntropyFuncOptions().label_smoothing(smoothing));
        }
        loss_value = loss.item<double>();
      }
      int64_t step_examples = n;
      if (dist) {
        // Before backward, one small all-reduce: the combined batch's loss (the curves, and a
        // NaN check every rank must agree on, or one rank would stop while the others wait),
        // its size and its masked cells.
        at::Tensor stats = torch::tensor({loss_value * static_cast<double>(n), static_cast<double>(n), step_masked},
                                         torch::kDouble);
        dist->all_reduce_sum(stats, fmt::format("all-reducing step {}'s loss", step + 1));
        step_examples = static_cast<int64_t>(stats[1].item<double>());
        loss_value = stats[0].item<double>() / static_cast<double>(std::max<int64_t>(1, step_examples));
        step_masked = stats[2].item<double>();
      }
      epoch_masked += step_masked;
      if (!std::isfinite(loss_value)) {
        throw RunFailure{fmt::format("training loss became {} at step {} (epoch {}); lower "
                                     "train.lr or set train.grad_clip",
                                     loss_value, step + 1, epoch),
                         step + 1};
      }
      if (n > 0) loss.backward();
      if (dist) {
        // Each rank's gradient is the mean over its n examples: weighted by n and divided by
        // the step's examples, the sum is the combined batch's mean gradient, also when the
        // last batch splits unevenly. Every rank then clips and steps identically.
        dist->reduce_gradients(model.parameters(), static_cast<double>(n), static_cast<double>(step_examples),
                               fmt::format("all-reducing step {}'s gradients", step + 1));
      }
      if (grad_clip > 0.0) torch::nn::utils::clip_grad_norm_(model.parameters(), grad_clip);
      optimizer->step();
      ++step;
      step_seconds += seconds_since(step_start);
      loss_sum += loss_value * static_cast<double>(step_examples);
      seen += step_examples;
      ++timed_steps;

      TrainProgress p;
      p.run_id = run.id;
      p.phase = "train";
      p.epoch = epoch;
      p.epochs = epochs;
      p.step = step;
      p.total_steps = total_steps;
      p.loss = loss_sum / static_cast<double>(seen);
      p.lr = current_lr;
      p.metric = last_metric;
      p.metric_name = metric_name;
      const double elapsed = seconds_since(epoch_start);
      p.examples_per_s = static_cast<double>(seen) / std::max(1e-9, elapsed);
      const double per_step = (train_seconds_total + elapsed) / static_cast<double>(timed_steps);
      p.eta_seconds = per_step * static_cast<double>(total_steps - step) * 1.1;
      report(p);
      if (opts.after_step) opts.after_step(step);
    }
    const double train_elapsed = seconds_since(epoch_start);
    train_seconds_total += train_elapsed;

    report(phase_progress("eval", epoch, step));
    const Evaluation v = evaluate(model, valid.size() > 0 ? valid : train, multi_label, eval_batch,
                                  mean, scale, loader_threads, dist);
    const double score = select_metric(v, use_map);
    last_metric = score;
    if (state.best_epoch == 0 || score > state.best_score) {
      state.best_score = score;
      state.best_epoch = epoch;
      state.best_state = copy_state(model);
    }
    state.masked_sum += epoch_masked;
    state.masked_count += static_cast<double>(seen);

    EpochRow row;
    row.epoch = epoch;
    row.step = step;
    row.lr = schedule_lr(t, std::max<int64_t>(0, step - 1), total_steps, epoch);
    row.train_loss = loss_sum / static_cast<double>(std::max<int64_t>(1, seen));
    row.valid_loss = v.loss;
    row.valid_accuracy = v.metrics.accuracy;
    row.valid_mAP = v.metrics.mAP;
    row.valid_auc = v.metrics.auc;
    row.epoch_seconds = seconds_since(epoch_start);
    row.train_seconds = step_seconds;
    row.data_seconds = data_seconds;
    row.masked_cells = epoch_masked / static_cast<double>(std::max<int64_t>(1, seen));
    rec.curves.push_back(row);
    step_out = step;

    if (writer && opts.on_epoch) opts.on_epoch(rec);
    // A checkpoint (model, best weights, optimiser: ~35 MB for AST-tiny) costs more than a
    // short epoch's worth of overhead; write one when checkpoint_every_s have passed, and
    // always after the last epoch (`patchbay weights export` reads it).
    // A distributed run saves every rank's generator state with rank 0's checkpoint; they are
    // gathered each epoch (a few KB), since only rank 0 knows when it writes one.
    at::Tensor rank_rngs;
    if (dist) {
      const at::Tensor mine = generator.get_state().unsqueeze(0);
      const auto rows = dist->all_gather_rows(mine, fmt::format("gathering the generator states after epoch {}", epoch));
      if (writer) rank_rngs = at::cat(rows, 0);
    }
    if (writer && !opts.checkpoint.empty() &&
        (epoch == epochs || seconds_since(last_checkpoint) >= checkpoint_every_s)) {
      last_checkpoint = Clock::now();
      save_checkpoint(opts.checkpoint, model, *optimizer, state.best_state, epoch, step,
                      state.best_score, state.best_epoch, state.masked_sum, state.masked_count, rank_rngs);
    }
    if (opts.after_checkpoint) opts.after_checkpoint(epoch);
  }

  // Test the best-on-validation weights.
  restore_state(model, state.best_state);
  report(phase_progress("eval", epochs, step));
  const auto test_start = Clock::now();
  const Evaluation tested = evaluate(model, test, multi_label, eval_batch, mean, scale, loader_threads, dist);
  rec.final["test_seconds"] = seconds_since(test_start);
  rec.final["best_epoch"] = static_cast<double>(state.best_epoch);
  // The best epoch was validated when it ran: its row holds the numbers (no second pass).
  for (const auto& row : rec.curves) {
    if (row.epoch != state.best_epoch) continue;
    rec.final["valid_accuracy"] = row.valid_accuracy;
    rec.final["valid_mAP"] = row.valid_mAP;
    rec.final["valid_auc"] = row.valid_auc;
  }
  rec.final["test_loss"] = tested.loss;
  rec.final["test_accuracy"] = test.size() ? tested.metrics.accuracy : kNaN;
  rec.final["test_mAP"] = test.size() ? tested.metrics.mAP : kNaN;
  rec.final["test_auc"] = test.size() ? tested.metrics.auc : kNaN;
  rec.final["test_d_prime"] = test.size() ? tested.metrics.d_prime : kNaN;
  rec.test_ap_per_class = tested.metrics.ap_per_class;
  rec.final["masked_cells_per_example"] = state.masked_sum / std::max(1.0, state.masked_count);
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

}  // namespace

RunRecord train_run(const PlannedRun& run, const Registry& registry, const TrainerOptions& opts,
                    RunRecord rec) {
  const auto start = Clock::now();
  const double wall_before = rec.wall_seconds;
  rec.id = run.id;
  rec.slug = run.slug;
  rec.axes.clear();
  for (const auto& [k, v] : run.axes) rec.axes.emplace_back(k, to_toml(v));
  rec.config_toml = run.config.to_toml();
  rec.seed = run.config.train.get_int("seed");
  rec.host = host_name();
  if (rec.started.empty()) rec.started = utc_now();
  rec.attempts += 1;
  rec.status = RunStatus::running;
  rec.reason.clear();
  rec.failed_step = -1;
  rec.finished.clear();
  int64_t step = 0;
  try {
    run_training(run, registry, opts, rec, step);
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
    rec.reason = fmt::format("[internal] {}", e.what());
  }
  rec.finished = utc_now();
  rec.wall_seconds = wall_before + seconds_since(start);
  return rec;
}

}  // namespace patchbay

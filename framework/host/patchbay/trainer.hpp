// Trains, validates and tests one planned run, and measures it.
//
//   TrainerOptions opts;
//   opts.base_dir = experiment.file.parent_path();
//   opts.checkpoint = store.run_dir(run.id) / "checkpoint.pt";
//   opts.on_epoch = [&](const RunRecord& r) { store.write_run(r); };
//   RunRecord done = train_run(run, registry, opts, store.read_run(run.id).value_or(RunRecord{}));
//
// The loop (docs/design.md): dataset clips -> cached log-mel features [T, F] -> mixup (training
// only; per example, AST's, train/batches.hpp) -> normalise -> masker (training only; it sees
// the mixture) -> patcher -> backbone -> loss. Every test clip's logits are kept in the
// record (RunRecord::test_logits).
// Single-label: cross-entropy on logits (label smoothing optional, soft targets under
// mixup); multi-label: BCE-with-logits (never a sigmoid before it). AdamW or Adam with
// [train] betas / weight decay; linear warm-up + cosine decay, AST's step decay, or constant;
// optional gradient-norm clipping. Each epoch is validated; the best epoch on validation
// (accuracy, or mAP for multi-label) is evaluated on test.
//
// Randomness: everything (initialisation, shuffling, masks, mixup, dropout) comes from
// LibTorch's default CPU generator seeded with train.seed, consumed only on the calling
// thread in a fixed order; batches are gathered ahead on train.loader_threads background
// threads, which draw no random numbers. So with train.threads = 1 a run is bit-for-bit
// repeatable, and a run resumed from its checkpoint ends exactly as an uninterrupted one.
//
// Checkpoints: after each epoch, `on_epoch` is called with the record (curves so far), then
// the checkpoint (model, optimiser, generator state, epoch, step, best weights and score) is
// written to opts.checkpoint atomically (train/checkpoint.hpp). A later call with the same
// checkpoint and the stored record continues after the checkpoint's epoch; when the
// checkpoint cannot be read, the run starts again from nothing and ends as a fresh run.
//
// Data-parallel (opts.distributed set, distributed.hpp): every rank calls train_run for the
// same run. Rank 0's parameters and buffers are broadcast at the start; each epoch rank 0's
// shuffle is broadcast and rank r trains on every world_size-th example of it, in batches of
// batch_size / world_size (train.batch_size stays the combined batch, so the steps are those
// of one process); per step the loss statistics and then the gradients are all-reduced (the
// gradient of the combined batch's mean loss) before clipping and the optimiser step, so the
// ranks stay identical. Validation and test are sharded the same way and their logits
// gathered, so every rank computes the same metrics and picks the same best epoch. Only rank
// 0 calls on_epoch and writes checkpoints; a distributed run does not resume from a
// checkpoint (it starts again). Ranks other than 0 draw masks, mixup and dropout from their
// own seed (train.seed + rank). A lost peer is a FAILED run ("[dist.peer_lost] ...").
//
// Failures are results, not exceptions: a NaN or Inf loss, a bad clip, a plugin error all
// return the record with status FAILED, `reason` and (during training) `failed_step`.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "patchbay/config.hpp"
#include "patchbay/export.hpp"
#include "patchbay/registry.hpp"
#include "patchbay/results.hpp"

namespace patchbay {

class Distributed;  // distributed.hpp

struct TrainProgress {
  std::string run_id;
  std::string phase;            // "features", "train", "eval", "measure"
  int64_t epoch = 0;            // 1-based, the epoch in progress
  int64_t epochs = 0;
  int64_t step = 0;             // optimiser steps so far
  int64_t total_steps = 0;
  double loss = 0.0;            // mean training loss of the epoch so far
  double lr = 0.0;
  double metric = 0.0;          // last validation metric (NaN before the first)
  std::string metric_name;      // "acc" or "mAP"
  double examples_per_s = 0.0;  // training throughput this epoch
  double eta_seconds = 0.0;     // for the rest of the run (NaN when unknown)
  size_t done = 0, total = 0;   // phase "features": clips done / total
};

struct TrainerOptions {
  std::filesystem::path base_dir;    // the experiment file's folder (relative dataset paths)
  std::filesystem::path checkpoint;  // where the epoch checkpoint lives (empty: none)
  std::function<void(const TrainProgress&)> progress;   // may be empty
  std::function<void(const RunRecord&)> on_epoch;       // may be empty
  // Intra-op threads when train.threads = 0 (auto); 0 here: all cores. `patchbay run --jobs N`
  // gives each of its N runs its share. Threads are an execution resource, not part of a
  // run's identity.
  int threads = 0;
  bool measure_latency = true;       // batch-1 latency and throughput at the end
  // Called after each epoch's checkpoint is written (may be empty). The CLI's crash test
  // uses it to SIGKILL the whole `patchbay run` at a known point.
  std::function<void(int64_t epoch)> after_checkpoint;
  // Called after each optimiser step with the steps done so far (may be empty): the
  // distributed test's "a rank dies mid-run" hook.
  std::function<void(int64_t step)> after_step;
  // Null: this process trains the run alone. Set: this process is one rank of a data-parallel
  // run (see the header comment); every rank must be given the same run.
  std::shared_ptr<Distributed> distributed;
};

// The record a run is stored with as it starts, before its first epoch: `previous` (the
// stored record of earlier attempts, or empty) with the run's identity set: id, slug, its
// sweep axes, resolved configuration and seed, status RUNNING. Everything that places a run
// (report, compare, claims) can read it from then on.
PATCHBAY_API RunRecord start_record(const PlannedRun& run, RunRecord previous);

// See the header comment. `record` is the stored record of earlier attempts (empty for a
// fresh run). Returns the finished record (COMPLETED or FAILED).
PATCHBAY_API RunRecord train_run(const PlannedRun& run, const Registry& registry,
                                 const TrainerOptions& options, RunRecord record);

}  // namespace patchbay

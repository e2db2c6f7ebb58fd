// The results of an experiment: one HDF5 file anyone can open with h5py / pandas / xarray,
// written crash-safely. The schema is documented in results/README.md (schema
// "patchbay.results", version kResultsSchemaVersion).
//
// On disk, for results file R (default results/<experiment>.h5):
//   R                  the published file: every run of the plan, the sweep, a flat table and
//                      summary grids. Only ever replaced whole (write R.tmp-<pid>, rename), so
//                      a reader or a kill at any moment sees the previous or the next
//                      complete file, never a torn one.
//   R.runs/<run id>/run.h5         one run's record (status, config, curves, final metrics),
//                                  also replaced whole on every update.
//   R.runs/<run id>/checkpoint.pt  the run's last epoch checkpoint (the trainer's).
//   R.runs/<run id>/log.txt        the run's log.
//   R.lock             flock() held by the `patchbay run` that owns the results.
//
// Publishing rebuilds R from the run files that exist, so a lost R is rebuilt by the next
// `patchbay run` or `patchbay report`: the run files are the truth.
//
//   ResultsStore store("results/quickstart.h5");
//   auto lock = store.lock();                       // throws Error "results.locked"
//   RunRecord rec = store.read_run(id).value_or(RunRecord{});
//   store.write_run(rec);
//   store.publish(experiment);
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "patchbay/config.hpp"
#include "patchbay/export.hpp"

namespace patchbay {

inline constexpr int64_t kResultsSchemaVersion = 1;

enum class RunStatus { planned, running, completed, failed };
PATCHBAY_API const char* to_string(RunStatus status);   // "PLANNED", "RUNNING", ...
PATCHBAY_API RunStatus parse_run_status(const std::string& text);

// One row of a run's per-epoch curves. Every column is a 1-D dataset under
// /runs/<id>/curves in the file (NaN where a value does not apply).
struct EpochRow {
  int64_t epoch = 0;              // 1-based
  int64_t step = 0;               // optimiser steps so far
  double lr = 0.0;                // learning rate at the epoch's last step
  double train_loss = 0.0;        // mean over the epoch
  double valid_loss = 0.0;
  double valid_accuracy = 0.0;
  double valid_mAP = 0.0;
  double valid_auc = 0.0;
  double epoch_seconds = 0.0;     // wall time of the epoch's training + validation
  double train_seconds = 0.0;     // of which training steps
  double data_seconds = 0.0;      // of which waiting for batches, masking and mixup
  double masked_cells = 0.0;      // mean masked cells per training example this epoch
};

struct RunRecord {
  std::string id, slug;
  std::vector<std::pair<std::string, std::string>> axes;   // swept key -> value (TOML text)
  RunStatus status = RunStatus::planned;
  std::string reason;              // why it FAILED (empty otherwise)
  int64_t failed_step = -1;        // step at which it failed, -1 if not during training
  std::string config_toml;         // ResolvedConfig::to_toml()
  int64_t seed = 0;
  std::string host, started, finished;  // ISO 8601 UTC
  // Summed over resumed attempts (one killed counts to its last epoch); a FAILED run's rerun
  // starts again from nothing, its wall time with it.
  double wall_seconds = 0.0;
  int64_t attempts = 0;            // times the run was started (1 + resumes)
  int64_t threads = 0, loader_threads = 0;
  std::string blas;                // blas_summary() of the last attempt: library, core, threads
  std::vector<EpochRow> curves;
  // Final scalars: test_* and valid_* metrics of the best-on-validation epoch, best_epoch,
  // tokens, params, paper_macs, flops, latency_ms, throughput, peak_rss_mb,
  // masked_cells_per_example, norm_mean, norm_std, train_clips, ... (attributes of
  // /runs/<id>/final and columns of /table).
  std::map<std::string, double> final;
  std::vector<std::string> class_names;
  std::vector<double> test_ap_per_class;   // [C] (NaN for a class without test positives)
  std::vector<std::string> skipped_clips;  // "path: reason"
  // Per-clip test predictions of the tested (best-on-validation) weights, so that any metric
  // can be recomputed, and compared clip by clip, later (patchbay report / compare). Empty
  // for a run without a test split, and in records written before they were kept.
  std::vector<std::string> test_clip_ids;  // [N] the clips' ids (Clip::id, stable across runs)
  std::vector<float> test_logits;          // [N * C] row-major, before softmax / sigmoid
  std::vector<uint8_t> test_targets;       // [N * C] row-major multi-hot (single-label: one-hot)
  // "FILE#ID" when `patchbay run --reuse FILE` copied this run from FILE's run ID (same
  // configuration) instead of training it; empty for a run trained into these results.
  std::string reused_from;
};

// What `patchbay run` records about the experiment beside the runs.
struct ExperimentRecord {
  std::string name;
  std::string file;        // the experiment file as given
  std::string text;        // its contents
  std::vector<std::string> overrides;
  std::vector<std::string> run_ids;                        // the plan, in order
  std::vector<std::string> slugs;
  std::vector<std::vector<std::pair<std::string, std::string>>> axes;  // per run
  // "K/N" when the results hold shard K of N (`patchbay run --shard K/N`): the plan above is
  // still the whole plan, and runs of other shards stay PLANNED. Empty otherwise.
  std::string shard;
};

PATCHBAY_API ExperimentRecord record_of(const Experiment& experiment);

// flock()-based exclusive lock; released by the destructor or process death.
class PATCHBAY_API ResultsLock {
 public:
  explicit ResultsLock(int fd) : fd_(fd) {}
  ResultsLock(ResultsLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  ResultsLock(const ResultsLock&) = delete;
  ResultsLock& operator=(const ResultsLock&) = delete;
  ~ResultsLock();

 private:
  int fd_ = -1;
};

class PATCHBAY_API ResultsStore {
 public:
  explicit ResultsStore(std::filesystem::path results_file);

  const std::filesystem::path& file() const { return file_; }
  std::filesystem::path runs_dir() const;                  // R.runs
  std::filesystem::path run_dir(const std::string& id) const;

  // Takes the exclusive lock (non-blocking) and removes temporary files that a killed
  // writer left behind. Throws Error "results.locked" naming the file and the holder's pid
  // when another process holds it.
  ResultsLock lock() const;

  // Writes R.runs/<id>/run.h5 atomically (temp file + rename, then the folder is synced).
  void write_run(const RunRecord& record) const;
  // Reads a run file back; nullopt when it does not exist. Throws Error "results.corrupt"
  // when it exists but cannot be read (the message says to delete it to rerun the run).
  std::optional<RunRecord> read_run(const std::string& id) const;

  // Makes R.runs/<id>/ a copy of `from`'s folder for that run (run.h5, checkpoint.pt,
  // log.txt; `patchbay merge`). Each file is placed atomically and run.h5 is removed first
  // and placed last, so a kill midway leaves the run without a record (PLANNED, redone from
  // scratch) rather than a record beside another attempt's checkpoint. The checkpoint is
  // hard-linked when both are on one file system (the trainer replaces checkpoints by
  // rename, never in place, so the two results never see each other's writes).
  void import_run(const ResultsStore& from, const std::string& id) const;
  // The same for a run recorded under another id in `from` (`patchbay run --reuse`): its
  // checkpoint.pt and log.txt are placed in R.runs/<record.id>/, then `record` (the copied
  // record with this plan's id, slug and axes) is written last.
  void import_run_as(const ResultsStore& from, const std::string& from_id, const RunRecord& record) const;

  // The experiment text stored by the last publish (nullopt when R does not exist).
  std::optional<ExperimentRecord> read_experiment() const;

  // When R exists but cannot be read (a damaged file: the per-run files in R.runs/ are what
  // counts), moves it aside to R.unreadable-<UTC time> and returns that path, so the next
  // publish rebuilds R from the run files; nullopt when R is absent or readable. `patchbay
  // run` calls it under the lock and says so. Throws Error "results.write" when the rename fails.
  // Throws Error "results.not_a_file" for a folder and "results.not_results" for a file that
  // is not patchbay's results with no R.runs/ beside it: such a path, given as --results by
  // mistake, is never moved or overwritten.
  std::optional<std::filesystem::path> set_aside_unreadable() const;
  // The same refusals, and nothing else: `run` checks the path before it creates R.lock.
  void refuse_foreign() const;

  // When none of R's planned runs has its file in R.runs/ (a results file copied without its runs
  // folder), writes R.runs/<id>/run.h5 back from R for each started run, so that the next publish
  // keeps them rather than rebuilding them as PLANNED; a kill midway is finished by the next call.
  // No checkpoints: a run that had not finished starts again. One run file deleted of several (to
  // run that run again) is left deleted. Returns how many were restored. Call it under the lock,
  // after set_aside_unreadable().
  size_t restore_run_files() const;

  // Rebuilds R from the run files of `experiment`'s plan (runs without a file are PLANNED),
  // with /sweep, /runs/<id>, /table and /summary, and publishes it atomically. A record
  // without axes (what read_experiment() returns: they live in the runs) takes each run's
  // from its run file; a run without one is PLANNED with none.
  void publish(const ExperimentRecord& experiment) const;

  // Removes the temporaries of R and of every run folder (run.h5, checkpoint.pt, log.txt):
  // what writers killed mid-write left. Call it only under the results lock with no worker
  // running, when every temporary there is such a leftover (lock() does, as does `run` when a
  // sweep stops on an error). Errors are ignored.
  void remove_stale_temporaries() const;

 private:
  std::filesystem::path file_;
};

// What a published results file holds (read from R alone, not from R.runs/): the plan and
// every run, in plan order. Throws Error "results.corrupt" / "results.not_results" naming
// the file when it is not a patchbay results file.
struct PublishedResults {
  ExperimentRecord experiment;
  std::vector<RunRecord> runs;
};
PATCHBAY_API PublishedResults read_results(const std::filesystem::path& results_file);

// A swept value as text for tables and plot labels: RunRecord::axes hold TOML text, whose
// strings are quoted ("\"fftp-stride4\"" -> "fftp-stride4"); other values are unchanged.
PATCHBAY_API std::string axis_value_text(const std::string& toml_value);

// The host name, and the current UTC time as ISO 8601.
PATCHBAY_API std::string host_name();
PATCHBAY_API std::string utc_now();

}  // namespace patchbay

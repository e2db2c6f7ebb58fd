// The worker pool of `patchbay run`: one worker process per planned run, at most `jobs` at a
// time, with live progress and the results file republished as runs progress.
//
// A worker is a fork of the host (or, with PATCHBAY_WORKER_EXEC=1, a fresh `patchbay
// run-worker` process): it trains its run, writes the run's file (R.runs/<id>/run.h5) and
// sends progress lines on a pipe (PATCHBAY_PROGRESS_FD). A worker that crashes, even with a
// segfault inside a plugin, fails only its own run: the host records it FAILED with the
// signal or exit code and the log to read, and the sweep goes on.
#pragma once
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "patchbay/config.hpp"
#include "patchbay/results.hpp"
#include "patchbay/trainer.hpp"
#include "sweep_eta.hpp"

namespace patchbay::cli {

struct PoolPlan {
  const ResultsStore* store = nullptr;
  const ExperimentRecord* record = nullptr;  // republished as runs progress and finish
  std::vector<const PlannedRun*> todo;       // in order
  size_t done_before = 0;  // runs of this process's share COMPLETED before (progress line)
  size_t share = 0;        // runs in this process's share of the plan
  int jobs = 1;            // workers at a time, >= 1
  int threads_per_job = 1;
  std::vector<std::string> worker_args;  // `run-worker FILE... --results R`, for exec'ed workers
  bool quiet = false;                    // no progress lines
  // For the sweep's ETA (sweep_eta.hpp): what each run of `todo` will cost (same order; empty
  // or shorter: those runs count as equal), and the runs of this share COMPLETED before, timed.
  std::vector<RunCost> todo_costs;
  std::vector<TimedRun> timed_before;
  // Trains one run inside a forked worker and returns its exit code.
  std::function<int(const PlannedRun& run, int threads)> train;
};

struct PoolOutcome {
  size_t finished = 0;  // runs that ended, COMPLETED or FAILED
  size_t failed = 0;
};

// Runs every run of plan.todo; returns when all have ended. Throws Error "run.spawn" when
// no process or pipe can be made.
PoolOutcome run_worker_pool(const PoolPlan& plan);

// The worker's side of the progress pipe: one line per record (read by run_worker_pool).
void send_progress(std::FILE* pipe, const TrainProgress& progress);

}  // namespace patchbay::cli

// patchbay run: trains every planned run not yet COMPLETED into one results file.
//
// The host process plans, locks the results, and starts one worker process per run
// (`patchbay run-worker`, the same executable), at most --jobs at a time. A worker trains
// its run and writes the run's file; the host renders progress from the workers' progress
// pipes and republishes the results file after each run. A worker that crashes (even a
// segfault inside a plugin) fails only its own run; the sweep goes on.
#include "commands.hpp"
#include "cli_common.hpp"
#include "run_costs.hpp"
#include "worker_pool.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "patchbay/device.hpp"
#include "patchbay/error.hpp"
#include "patchbay/log.hpp"
#include "patchbay/results.hpp"
#include "patchbay/shard.hpp"
#include "patchbay/trainer.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace patchbay::cli {

// More workers than this is a typo, not a machine: each one is a process with LibTorch loaded.
constexpr int kMaxJobs = 1024;
namespace {

using Clock = std::chrono::steady_clock;

int train_planned(const Experiment& exp, const PlannedRun& planned, const Registry& registry,
                  const ResultsStore& store, int threads);

}  // namespace

namespace {

// The plugin_version lines of a resolved configuration's TOML, in order.
std::string plugin_versions(const std::string& toml) {
  std::string out;
  std::istringstream in(toml);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("plugin_version =", 0) == 0) out += line + "\n";
  }
  return out;
}

// --reuse: replaces the runs of `todo` that another results file has COMPLETED with an
// identical configuration by copies of those runs (record, checkpoint, log); returns how
// many. Identical means the same identity text (ResolvedConfig::identity_text(): no
// [experiment], no thread, checkpoint or cache settings; plugin versions included).
size_t reuse_finished_runs(const std::vector<std::string>& sources, const fs::path& results,
                           const ResultsStore& store, const Registry& registry,
                           std::vector<const PlannedRun*>& todo, bool quiet) {
  struct Finished {
    fs::path file;
    RunRecord record;
  };
  std::map<std::string, Finished> by_identity;
  for (const auto& source : sources) {
    const fs::path file(source);
    std::error_code ec;
    if (fs::equivalent(file, results, ec)) continue;  // false (ec set) when either is missing
    const PublishedResults pub = read_results(file);  // a missing or foreign file: a clear error
    for (const auto& r : pub.runs) {
      if (r.status != RunStatus::completed || r.config_toml.empty()) continue;
      try {
        // Loading the text again gives this build's plugin versions; a run made with other
        // versions is not the same run.
        const auto loaded = load_experiment_text(without_plugin_versions(r.config_toml),
                                                 file.string() + "#" + r.id, {}, registry);
        if (loaded.runs.size() != 1) continue;
        const std::string identity = loaded.runs.front().config.identity_text();
        if (plugin_versions(identity) != plugin_versions(r.config_toml)) continue;
        by_identity.emplace(identity, Finished{file, r});
      } catch (const Error& e) {
        // A plugin this build lacks, an option renamed since: that run cannot match.
        log::debug("--reuse: run {} of '{}' is not comparable ({})", r.id, file.string(), e.what());
      }
    }
  }
  size_t reused = 0;
  std::vector<const PlannedRun*> still;
  for (const PlannedRun* run : todo) {
    const auto it = by_identity.find(run->config.identity_text());
    if (it == by_identity.end()) {
      still.push_back(run);
      continue;
    }
    RunRecord rec = it->second.record;
    const std::string from_id = rec.id;
    rec.id = run->id;
    rec.slug = run->slug;
    rec.axes.clear();
    for (const auto& [k, v] : run->axes) rec.axes.emplace_back(k, to_toml(v));
    rec.config_toml = run->config.to_toml();  // this experiment's text; the identity is the same
    rec.reused_from = it->second.file.string() + "#" + from_id;
    store.import_run_as(ResultsStore(it->second.file), from_id, rec);
    if (!quiet) fmt::print("REUSED    {} ({}) from {}\n", run->slug, run->id, rec.reused_from);
    ++reused;
  }
  todo = still;
  return reused;
}

}  // namespace

int run_run(const std::vector<std::string>& args) {
  auto desc = common_options("patchbay run options", /*offers_json=*/false);
  desc.add_options()("results", po::value<std::string>(),
                     "results file (default: results/<experiment name>.h5)")(
      "jobs,j", po::value<int>()->default_value(1), "runs trained side by side; the cores are split between them")(
      "force", "run even though the experiment file plans other runs than the results file was "
                 "written for (an edit that plans the same runs needs no --force)")(
      "shard", po::value<std::string>(),
      "K/N: run only shard K (0..N-1) of N; results default to results/<name>.shard-K-of-N.h5")(
      "reuse", po::value<std::vector<std::string>>()->composing(),
      "R2.h5: copy runs COMPLETED in another results file whose configuration is this plan's "
      "run's (repeat for several files) instead of training them again")(
      "quiet,q", "no progress lines, only the summary");
  const auto p = parse(args, desc);
  if (wants_help(p, "Usage: patchbay run FILE [key=value...] [--results R.h5] [--jobs N] [--force]\n"
                    "                         [--shard K/N] [--reuse R2.h5]...\n\n"
                    "Trains, validates, tests and measures every run the experiment plans that is "
                    "not COMPLETED in the results file yet. Rerunning the same command resumes: "
                    "completed runs are skipped, interrupted runs continue from their last epoch "
                    "checkpoint, failed runs start again. Each run's file is written as it "
                    "progresses (R.runs/<id>/run.h5) and R is republished after every run; "
                    "`patchbay report R` turns it into tables and plots.\n\n"
                    "--shard K/N runs one N-th of the plan, for one task of a job array: K counts "
                    "from 0, as $SLURM_ARRAY_TASK_ID with sbatch --array=0-(N-1). The split "
                    "depends only on the run ids (the same on every rerun), every run is in "
                    "exactly one shard, and shard sizes differ by at most 1. The shard's "
                    "results file still lists the whole plan, runs of other shards PLANNED; "
                    "`patchbay merge OUT.h5 SHARD.h5...` combines the shards' files, and "
                    "`patchbay slurm` writes the job scripts that do all of it.\n\n"
                    "--reuse R2.h5 takes runs another experiment already trained: a run of this "
                    "plan whose configuration is identical to a COMPLETED run in R2 (everything "
                    "but [experiment] and the thread, checkpoint and cache settings, plugin "
                    "versions included) is copied with its checkpoint and marked reused_from "
                    "instead of trained. Ablations that share rows then train them once.",
                 desc)) {
    return kExitOk;
  }
  if (const int j = p.vm["jobs"].as<int>(); j < 1 || j > kMaxJobs) {
    throw po::error(fmt::format("--jobs must be between 1 and {}, got {}", kMaxJobs, j));
  }
  Registry registry;
  load_plugins(registry, p);
  const Experiment exp = plan_from(p, registry, "run");
  std::optional<Shard> shard;
  if (p.vm.count("shard")) shard = parse_shard(p.vm["shard"].as<std::string>());
  const std::string default_name =
      shard ? fmt::format("{}.shard-{}-of-{}.h5", exp.name, shard->index, shard->count) : exp.name + ".h5";
  const fs::path results = p.vm.count("results") ? fs::path(p.vm["results"].as<std::string>())
                                                 : fs::path("results") / default_name;
  // The runs this process trains: the whole plan, or one shard of it (checked before the
  // lock, so a bad --shard touches nothing).
  std::vector<const PlannedRun*> mine;
  ExperimentRecord record = record_of(exp);
  if (shard) {
    for (size_t i : shard_positions(record.run_ids, *shard)) mine.push_back(&exp.runs[i]);
    record.shard = shard->text();
  } else {
    for (const auto& run : exp.runs) mine.push_back(&run);
  }
  const ResultsStore store(results);
  const auto lock = open_results_for_run(store, record, p.vm.count("force") > 0, "run");

  // What to do.
  std::vector<const PlannedRun*> todo;
  size_t completed = 0;
  std::vector<double> completed_seconds(mine.size(), NAN);  // for the sweep's ETA
  for (size_t i = 0; i < mine.size(); ++i) {
    const PlannedRun& run = *mine[i];
    auto rec = store.read_run(run.id);
    if (rec && rec->status == RunStatus::completed) {
      ++completed;
      if (rec->reused_from.empty()) completed_seconds[i] = rec->wall_seconds;
      continue;
    }
    if (rec && rec->status == RunStatus::failed) {
      // A failed run starts again from scratch.
      std::error_code ec;
      fs::remove(store.run_dir(run.id) / "checkpoint.pt", ec);
    }
    todo.push_back(&run);
  }
  const bool quiet = p.vm.count("quiet") > 0;
  size_t reused = 0;
  if (p.vm.count("reuse")) {
    reused = reuse_finished_runs(p.vm["reuse"].as<std::vector<std::string>>(), results, store, registry, todo, quiet);
    completed += reused;
  }
  {  // a device this machine lacks would fail every run the same way: refuse before the first
    std::set<std::string> devices;
    for (const auto* run : todo) devices.insert(run->config.train.get_string("device"));
    for (const auto& device : devices) require_device(device_of(device));
  }
  store.publish(record);
  if (!quiet) {
    const std::string scope = shard ? fmt::format(" (shard {}: {} of them)", shard->text(), mine.size()) : "";
    const std::string reused_text = reused > 0 ? fmt::format(" ({} reused)", reused) : "";
    fmt::print("experiment '{}': {} run{}{}, {} completed before{}, {} to do; results: {}\n", exp.name,
               exp.runs.size(), exp.runs.size() == 1 ? "" : "s", scope, completed, reused_text, todo.size(),
               results.string());
    std::fflush(stdout);
  }

  const int jobs = std::max(1, std::min<int>(p.vm["jobs"].as<int>(), static_cast<int>(std::max<size_t>(1, todo.size()))));
  const int cores = usable_cores();
  const int threads_per_job = std::max(1, cores / jobs);
  std::vector<std::string> base_args = {"run-worker"};
  for (const auto& a : p.positional) base_args.push_back(a);
  base_args.push_back("--results");
  base_args.push_back(fs::absolute(results).string());
  if (p.vm.count("plugin-dir")) {
    for (const auto& d : p.vm["plugin-dir"].as<std::vector<std::string>>()) {
      base_args.push_back("--plugin-dir");
      base_args.push_back(d);
    }
  }
  PoolPlan pool;
  pool.store = &store;
  pool.record = &record;
  pool.todo = todo;
  pool.done_before = completed;
  pool.share = mine.size();
  pool.jobs = jobs;
  pool.threads_per_job = threads_per_job;
  pool.worker_args = base_args;
  pool.quiet = quiet;
  if (!quiet) {
    const std::vector<RunCost> costs = run_costs(mine, registry);
    std::map<const PlannedRun*, const RunCost*> cost_of;
    for (size_t i = 0; i < mine.size(); ++i) {
      cost_of[mine[i]] = &costs[i];
      if (std::isfinite(completed_seconds[i])) pool.timed_before.push_back({costs[i], completed_seconds[i]});
    }
    for (const PlannedRun* run : todo) pool.todo_costs.push_back(*cost_of.at(run));
  }
  // The host's plan, not the experiment file read again: the file may have been edited
  // since the sweep started, and this run must be the run that was planned.
  pool.train = [&](const PlannedRun& run, int threads) { return train_planned(exp, run, registry, store, threads); };
  const PoolOutcome outcome = run_worker_pool(pool);
  const size_t finished = outcome.finished, failed = outcome.failed;
  store.publish(record);
  if (!quiet) {
    fmt::print("\n{} of {} runs COMPLETED, {} FAILED; results in {}\n", completed + finished - failed,
               mine.size(), failed, results.string());
    if (shard) {
      fmt::print("next, once every shard has run: patchbay merge OUT.h5 {} and the other shards' files\n",
                 results.string());
    } else {
      fmt::print("next: patchbay report {}\n", results.string());
    }
  }
  return failed == 0 ? kExitOk : kExitError;
}

namespace {

// One planned run, trained in this process (a worker): progress to PATCHBAY_PROGRESS_FD,
// the run's file rewritten after every epoch and at the end.
int train_planned(const Experiment& exp, const PlannedRun& planned, const Registry& registry,
                  const ResultsStore& store, int threads) {
  const PlannedRun* run = &planned;
  const std::string& id = planned.id;
  FILE* progress = nullptr;
  if (const char* fd = std::getenv("PATCHBAY_PROGRESS_FD")) progress = ::fdopen(std::atoi(fd), "w");
  TrainerOptions opts;
  opts.base_dir = fs::absolute(exp.file).parent_path();
  opts.checkpoint = store.run_dir(id) / "checkpoint.pt";
  opts.threads = threads;
  // Crash test hook: SIGKILL the host and this worker right after the checkpoint of epoch K,
  // as a kill -9 of the whole `patchbay run` would.
  if (const char* k = std::getenv("PATCHBAY_TEST_KILL_AFTER_EPOCH")) {
    const int64_t kill_epoch = std::atoll(k);
    opts.after_checkpoint = [kill_epoch](int64_t epoch) {
      if (epoch != kill_epoch) return;
      ::kill(::getppid(), SIGKILL);
      ::kill(::getpid(), SIGKILL);
    };
  }
  auto last_sent = Clock::now() - std::chrono::seconds(10);
  opts.progress = [&](const TrainProgress& tp) {
    if (!progress) return;
    const auto now = Clock::now();
    if (tp.phase == "train" && now - last_sent < std::chrono::milliseconds(200)) return;
    last_sent = now;
    send_progress(progress, tp);
  };
  opts.on_epoch = [&](const RunRecord& r) { store.write_run(r); };
  RunRecord rec = store.read_run(id).value_or(RunRecord{});
  if (rec.status == RunStatus::failed) rec = RunRecord{};
  rec = start_record(*run, std::move(rec));  // with its axes: a RUNNING run has its sweep point
  store.write_run(rec);
  rec = train_run(*run, registry, opts, rec);
  store.write_run(rec);
  if (progress) {  // the record is on disk: the host may start the next run while this exits
    TrainProgress done;
    done.run_id = id;
    done.phase = "done";
    send_progress(progress, done);
    // Test hook: a slow exit, to show that the next run does not wait for it.
    if (const char* ms = std::getenv("PATCHBAY_TEST_EXIT_DELAY_MS")) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::atoll(ms)));
    }
  }
  fmt::print(stderr, "run {}: {}{}\n", id, to_string(rec.status), rec.reason.empty() ? "" : ": " + rec.reason);
  return rec.status == RunStatus::completed ? kExitOk : kExitError;
}


}  // namespace

int run_worker(const std::vector<std::string>& args) {
  auto desc = common_options("patchbay run-worker options", /*offers_json=*/false);
  desc.add_options()("results", po::value<std::string>()->required(), "results file")(
      "run", po::value<std::string>()->required(), "run id")(
      "threads", po::value<int>()->default_value(0), "threads when train.threads = 0");
  const auto p = parse(args, desc);
  Registry registry;
  load_plugins(registry, p);
  const Experiment exp = plan_from(p, registry, "run-worker");
  const std::string id = p.vm["run"].as<std::string>();
  const PlannedRun* run = nullptr;
  for (const auto& r : exp.runs) {
    if (r.id == id) run = &r;
  }
  if (run == nullptr) throw ConfigError("run.unknown", fmt::format("no run '{}' in the plan", id));
  const ResultsStore store(p.vm["results"].as<std::string>());
  // A worker started with exec reads the experiment file again: it must still plan the runs the
  // host planned (recorded in the results file; an edited comment changes none of their ids,
  // which hash every option), or the run would not be the planned one.
  if (const auto recorded = store.read_experiment(); recorded && recorded->run_ids != record_of(exp).run_ids) {
    throw ConfigError("run.experiment_changed",
                      fmt::format("'{}' changed while the sweep was running; run patchbay run "
                                  "again to plan it anew (finished runs are kept)", fs::path(exp.file).string()));
  }
  return train_planned(exp, *run, registry, store, p.vm["threads"].as<int>());
}

}  // namespace patchbay::cli

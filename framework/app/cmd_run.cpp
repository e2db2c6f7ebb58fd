// patchbay run: trains every planned run not yet COMPLETED into one results file.
//
// The host process plans, locks the results, and starts one worker process per run
// (`patchbay run-worker`, the same executable), at most --jobs at a time. A worker trains
// its run and writes the run's file; the host renders progress from the workers' progress
// pipes and republishes the results file after each run. A worker that crashes (even a
// segfault inside a plugin) fails only its own run; the sweep goes on.
#include "commands.hpp"
#include "cli_common.hpp"

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

std::string duration_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

// Progress records travel from worker to host as one tab-separated line each.
std::string encode(const TrainProgress& p) {
  return fmt::format("{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n", p.run_id, p.phase,
                     p.epoch, p.epochs, p.step, p.total_steps, p.loss, p.lr, p.metric,
                     p.metric_name.empty() ? "-" : p.metric_name, p.examples_per_s, p.eta_seconds,
                     p.done, p.total);
}

bool decode(const std::string& line, TrainProgress& p) {
  std::vector<std::string> f;
  std::stringstream ss(line);
  std::string item;
  while (std::getline(ss, item, '\t')) f.push_back(item);
  if (f.size() != 14) return false;
  try {
    p.run_id = f[0];
    p.phase = f[1];
    p.epoch = std::stoll(f[2]);
    p.epochs = std::stoll(f[3]);
    p.step = std::stoll(f[4]);
    p.total_steps = std::stoll(f[5]);
    p.loss = std::stod(f[6]);
    p.lr = std::stod(f[7]);
    p.metric = std::stod(f[8]);
    p.metric_name = f[9];
    p.examples_per_s = std::stod(f[10]);
    p.eta_seconds = std::stod(f[11]);
    p.done = std::stoull(f[12]);
    p.total = std::stoull(f[13]);
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

std::string progress_text(const TrainProgress& p, const std::string& slug) {
  const std::string who = fmt::format("{:<36}", slug.size() > 36 ? slug.substr(0, 36) : slug);
  if (p.phase == "features") return fmt::format("{} features {}/{} clips", who, p.done, p.total);
  if (p.phase == "measure") return fmt::format("{} measuring latency", who);
  if (p.phase == "eval") return fmt::format("{} epoch {}/{} evaluating", who, p.epoch, p.epochs);
  if (p.phase == "start") return fmt::format("{} starting", who);
  const std::string metric = std::isfinite(p.metric) ? fmt::format(" {} {:.3f}", p.metric_name, p.metric) : "";
  return fmt::format("{} epoch {}/{} step {}/{} loss {:.4f}{} {:.0f} ex/s ETA {}", who, p.epoch,
                     p.epochs, p.step, p.total_steps, p.loss, metric, p.examples_per_s,
                     duration_text(p.eta_seconds));
}

struct Worker {
  pid_t pid = -1;
  int fd = -1;
  std::string buffer;
  std::string run_id, slug;
  TrainProgress last;
  Clock::time_point started;
  // The worker said "done": its run record is written and it is only exiting (tearing down
  // a few hundred MB takes ~30 ms), so its slot is free for the next run.
  bool exiting = false;
};

// Renders live lines on a terminal, plain periodic lines otherwise.
class ProgressView {
 public:
  explicit ProgressView(bool quiet) : tty_(::isatty(STDOUT_FILENO) == 1), quiet_(quiet) {}

  void draw(const std::vector<Worker>& workers, size_t done, size_t total, double sweep_eta,
            bool force) {
    if (quiet_) return;
    const auto now = Clock::now();
    const double since = std::chrono::duration<double>(now - last_).count();
    if (!force && since < (tty_ ? 0.5 : 30.0)) return;
    last_ = now;
    std::vector<std::string> lines;
    for (const auto& w : workers) lines.push_back(progress_text(w.last, w.slug));
    lines.push_back(fmt::format("sweep: {}/{} runs done, ETA {}", done, total, duration_text(sweep_eta)));
    if (tty_) {
      std::string out;
      for (size_t i = 0; i < drawn_; ++i) out += "\x1b[1A\x1b[2K";
      out += "\r";
      for (const auto& l : lines) out += l.substr(0, 150) + "\x1b[K\n";
      std::fputs(out.c_str(), stdout);
      drawn_ = lines.size();
    } else {
      for (const auto& l : lines) std::fputs((l + "\n").c_str(), stdout);
    }
    std::fflush(stdout);
  }
  // A line that stays (a run finished): printed above the live block.
  void say(const std::string& text) {
    if (tty_ && drawn_ > 0) {
      std::string out;
      for (size_t i = 0; i < drawn_; ++i) out += "\x1b[1A\x1b[2K";
      std::fputs(out.c_str(), stdout);
      drawn_ = 0;
    }
    std::fputs((text + "\n").c_str(), stdout);
    std::fflush(stdout);
  }

 private:
  bool tty_;
  bool quiet_;
  size_t drawn_ = 0;
  Clock::time_point last_{};
};

std::string self_exe() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("patchbay") : p.string();
}

// In a forked worker: closes every descriptor marked close-on-exec, as an exec would (the
// results lock, the other workers' progress pipes), so a worker never holds the host's lock.
void close_cloexec_fds() {
  std::vector<int> fds;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc/self/fd", ec)) {
    const int fd = std::atoi(entry.path().filename().c_str());
    if (fd > 2) fds.push_back(fd);
  }
  for (const int fd : fds) {  // after the listing: its own descriptor is closed by then
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0 && (flags & FD_CLOEXEC)) ::close(fd);
  }
}

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
  auto desc = common_options("patchbay run options");
  desc.add_options()("results", po::value<std::string>(),
                     "results file (default: results/<experiment name>.h5)")(
      "jobs,j", po::value<int>()->default_value(1), "runs trained side by side; the cores are split between them")(
      "force", "run even though the experiment file changed since the results were written")(
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
  const auto lock = store.lock();
  if (!p.vm.count("force")) refuse_changed_experiment(store, record);

  // What to do.
  std::vector<const PlannedRun*> todo;
  size_t completed = 0;
  for (const PlannedRun* planned : mine) {
    const PlannedRun& run = *planned;
    auto rec = store.read_run(run.id);
    if (rec && rec->status == RunStatus::completed) {
      ++completed;
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
  const std::string exe = self_exe();
  // PATCHBAY_WORKER_EXEC=1: start each worker as a fresh `patchbay run-worker` process (exec)
  // instead of a fork of this one; for a plugin that cannot live in a forked process.
  const char* exec_env = std::getenv("PATCHBAY_WORKER_EXEC");
  const bool exec_workers = exec_env != nullptr && *exec_env == '1';

  ProgressView view(quiet);
  std::vector<Worker> workers;
  size_t next = 0, finished = 0, failed = 0;
  const auto sweep_start = Clock::now();
  double finished_seconds = 0.0;

  const auto start_worker = [&](const PlannedRun& run) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw Error("run.spawn", "cannot create a pipe");
    std::error_code ec;
    fs::create_directories(store.run_dir(run.id), ec);
    const std::string log_file = (store.run_dir(run.id) / "log.txt").string();
    std::vector<std::string> argv_s = base_args;
    argv_s.push_back("--run");
    argv_s.push_back(run.id);
    argv_s.push_back("--threads");
    argv_s.push_back(std::to_string(threads_per_job));
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = ::fork();
    if (pid < 0) throw Error("run.spawn", "cannot start a worker process (fork failed)");
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int progress_fd = ::dup(pipe_fds[1]);  // without O_CLOEXEC
      ::setenv("PATCHBAY_PROGRESS_FD", std::to_string(progress_fd).c_str(), 1);
      const int log = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (log >= 0) {
        ::dup2(log, STDOUT_FILENO);
        ::dup2(log, STDERR_FILENO);
      }
      if (exec_workers) {
        std::vector<char*> argv;
        argv.push_back(const_cast<char*>(exe.c_str()));
        for (auto& a : argv_s) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execv(exe.c_str(), argv.data());
        std::_Exit(127);
      }
      // The worker runs in the forked copy of this process: LibTorch's start-up (~0.5 s of
      // static initialisers here) and the plugins' dlopen were paid once by the host, not per
      // run. Safe because the host has run no tensor code (no OpenMP pool, no intra-op
      // threads exist yet) and holds no HDF5 file open between publishes. What exec would
      // have closed is closed here: the lock, the other workers' pipes.
      close_cloexec_fds();
      prepare_compute_process();
      // The host's plan, not the experiment file read again: the file may have been edited
      // since the sweep started, and this run must be the run that was planned.
      const int code = guarded("run-worker", [&] { return train_planned(exp, run, registry, store, threads_per_job); });
      std::fflush(stdout);
      std::fflush(stderr);
      std::_Exit(code);  // not exit(): the host's atexit handlers and static objects are not ours
    }
    ::close(pipe_fds[1]);
    Worker w;
    w.pid = pid;
    w.fd = pipe_fds[0];
    w.run_id = run.id;
    w.slug = run.slug;
    w.last.run_id = run.id;
    w.last.phase = "start";
    w.started = Clock::now();
    workers.push_back(std::move(w));
  };

  const auto sweep_eta = [&]() {
    if (finished == 0) {
      double best = NAN;
      for (const auto& w : workers) {
        if (std::isfinite(w.last.eta_seconds) && w.last.phase == "train") {
          const double elapsed = std::chrono::duration<double>(Clock::now() - w.started).count();
          const double per_run = elapsed + w.last.eta_seconds;
          best = per_run * static_cast<double>(todo.size()) / jobs - std::chrono::duration<double>(Clock::now() - sweep_start).count();
        }
      }
      return best;
    }
    const double per_run = finished_seconds / static_cast<double>(finished);
    return per_run * static_cast<double>(todo.size() - finished) / jobs;
  };

  const auto start_workers = [&]() {
    const auto busy = [&]() {
      return static_cast<size_t>(std::count_if(workers.begin(), workers.end(), [](const Worker& w) { return !w.exiting; }));
    };
    while (busy() < static_cast<size_t>(jobs) && next < todo.size()) start_worker(*todo[next++]);
  };
  bool publish_due = false;  // a run finished since R was last written
  while (next < todo.size() || !workers.empty()) {
    start_workers();
    std::vector<pollfd> fds;
    for (const auto& w : workers) fds.push_back({w.fd, POLLIN, 0});
    ::poll(fds.data(), fds.size(), 500);
    for (size_t i = 0; i < workers.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      const ssize_t n = ::read(workers[i].fd, buf, sizeof(buf));
      if (n > 0) {
        workers[i].buffer.append(buf, static_cast<size_t>(n));
        size_t nl;
        while ((nl = workers[i].buffer.find('\n')) != std::string::npos) {
          TrainProgress tp;
          if (!decode(workers[i].buffer.substr(0, nl), tp)) {
            // not a progress line: ignored
          } else if (tp.phase == "done") {
            workers[i].exiting = true;
          } else {
            // A new epoch means the worker has written the previous one: republish so R
            // shows the run RUNNING with its curves so far.
            const bool first = workers[i].last.phase == "start";
            const bool new_epoch = tp.epoch > workers[i].last.epoch && workers[i].last.epoch > 0;
            workers[i].last = tp;
            if (first || new_epoch) store.publish(record);
          }
          workers[i].buffer.erase(0, nl + 1);
        }
      }
    }
    // Reap finished workers.
    for (size_t i = 0; i < workers.size();) {
      int status = 0;
      const pid_t r = ::waitpid(workers[i].pid, &status, WNOHANG);
      if (r != workers[i].pid) {
        ++i;
        continue;
      }
      ::close(workers[i].fd);
      const Worker w = workers[i];
      workers.erase(workers.begin() + static_cast<long>(i));
      std::optional<RunRecord> rec;
      try {
        rec = store.read_run(w.run_id);
      } catch (const Error&) {
        rec.reset();
      }
      if (!rec || rec->status != RunStatus::completed) {
        if (!rec) {
          rec = RunRecord{};
          rec->id = w.run_id;
          rec->slug = w.slug;
        }
        if (rec->status != RunStatus::failed) {
          rec->status = RunStatus::failed;
          rec->reason = WIFSIGNALED(status)
                            ? fmt::format("the worker process was killed by signal {} ({}); see {}",
                                          WTERMSIG(status), strsignal(WTERMSIG(status)),
                                          (store.run_dir(w.run_id) / "log.txt").string())
                            : fmt::format("the worker process exited with code {}; see {}",
                                          WEXITSTATUS(status), (store.run_dir(w.run_id) / "log.txt").string());
          rec->finished = utc_now();
          store.write_run(*rec);
        }
      }
      ++finished;
      finished_seconds += std::chrono::duration<double>(Clock::now() - w.started).count();
      if (rec->status == RunStatus::completed) {
        const auto metric = [&](const char* k) {
          auto it = rec->final.find(k);
          return it == rec->final.end() ? NAN : it->second;
        };
        view.say(fmt::format("COMPLETED {} ({}): test acc {:.3f}, mAP {:.3f}, {:.3f} paper GMACs, {} epochs in {}",
                             w.slug, w.run_id, metric("test_accuracy"), metric("test_mAP"),
                             metric("paper_macs") / 1e9, rec->curves.size(), duration_text(rec->wall_seconds)));
      } else {
        ++failed;
        view.say(fmt::format("FAILED    {} ({}): {}", w.slug, w.run_id, rec->reason));
      }
      publish_due = true;
      view.draw(workers, completed + finished, mine.size(), sweep_eta(), true);
    }
    if (publish_due) {
      // The next run starts first: the worker reads its data and builds its model on one
      // core while R is rewritten on the other, instead of after it (~25 ms per run).
      start_workers();
      store.publish(record);
      publish_due = false;
    }
    view.draw(workers, completed + finished, mine.size(), sweep_eta(), false);
  }
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
    std::fputs(encode(tp).c_str(), progress);
    std::fflush(progress);
  };
  opts.on_epoch = [&](const RunRecord& r) { store.write_run(r); };
  RunRecord rec = store.read_run(id).value_or(RunRecord{});
  if (rec.status == RunStatus::failed) rec = RunRecord{};
  rec.id = run->id;
  rec.slug = run->slug;
  rec.status = RunStatus::running;
  store.write_run(rec);
  rec = train_run(*run, registry, opts, rec);
  store.write_run(rec);
  if (progress) {  // the record is on disk: the host may start the next run while this exits
    TrainProgress done;
    done.run_id = id;
    done.phase = "done";
    std::fputs(encode(done).c_str(), progress);
    std::fflush(progress);
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
  auto desc = common_options("patchbay run-worker options");
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
  // A worker started with exec reads the experiment file again: it must still be the file the
  // host planned (recorded in the results file), or the run would not be the planned one.
  if (const auto recorded = store.read_experiment(); recorded && recorded->text != record_of(exp).text) {
    throw ConfigError("run.experiment_changed",
                      fmt::format("'{}' changed while the sweep was running; run patchbay run "
                                  "again to plan it anew (finished runs are kept)", fs::path(exp.file).string()));
  }
  return train_planned(exp, *run, registry, store, p.vm["threads"].as<int>());
}

}  // namespace patchbay::cli

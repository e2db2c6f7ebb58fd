// The worker pool of `patchbay run` (contract in worker_pool.hpp).
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
#include <optional>
#include <sstream>

#include <fmt/format.h>

#include "cli_common.hpp"
#include "patchbay/error.hpp"

namespace fs = std::filesystem;

namespace patchbay::cli {
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
  size_t todo_index = 0;  // position in PoolPlan::todo
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

}  // namespace

void send_progress(std::FILE* pipe, const TrainProgress& progress) {
  std::fputs(encode(progress).c_str(), pipe);
  std::fflush(pipe);
}

namespace {

// Starts the worker of `run`: a fork of this process that trains it (or, exec_workers, a
// fresh `patchbay run-worker`), its stdout and stderr in the run's log.txt, its progress on
// a pipe. Throws Error "run.spawn".
Worker spawn_worker(const PoolPlan& plan, size_t todo_index, const std::string& exe, bool exec_workers) {
  const PlannedRun& run = *plan.todo[todo_index];
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw Error("run.spawn", "cannot create a pipe");
  std::error_code ec;
  fs::create_directories(plan.store->run_dir(run.id), ec);
  const std::string log_file = (plan.store->run_dir(run.id) / "log.txt").string();
  std::vector<std::string> argv_s = plan.worker_args;
  for (const std::string& a : {std::string("--run"), run.id, std::string("--threads"),
                               std::to_string(plan.threads_per_job)}) {
    argv_s.push_back(a);
  }
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
    const int code = guarded("run-worker", [&] { return plan.train(run, plan.threads_per_job); });
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
  w.todo_index = todo_index;
  w.last.run_id = run.id;
  w.last.phase = "start";
  w.started = Clock::now();
  return w;
}

// Reads what the worker sent; true when the results file should be republished (the run
// started, or finished an epoch: R then shows it RUNNING with its curves so far).
bool read_progress(Worker& w) {
  char buf[4096];
  const ssize_t n = ::read(w.fd, buf, sizeof(buf));
  if (n <= 0) return false;
  w.buffer.append(buf, static_cast<size_t>(n));
  bool publish = false;
  for (size_t nl; (nl = w.buffer.find('\n')) != std::string::npos; w.buffer.erase(0, nl + 1)) {
    TrainProgress tp;
    if (!decode(w.buffer.substr(0, nl), tp)) continue;  // not a progress line: ignored
    if (tp.phase == "done") {
      w.exiting = true;
      continue;
    }
    const bool first = w.last.phase == "start";
    const bool new_epoch = tp.epoch > w.last.epoch && w.last.epoch > 0;
    w.last = tp;
    publish = publish || first || new_epoch;
  }
  return publish;
}

// The record of a run whose worker exited with `status`: as the worker wrote it when it
// COMPLETED or FAILED; otherwise (a crash, a kill) written FAILED here, with the signal or
// exit code and the log to read.
RunRecord ended_run(const ResultsStore& store, const Worker& w, int status) {
  std::optional<RunRecord> rec;
  try {
    rec = store.read_run(w.run_id);
  } catch (const Error&) {
    rec.reset();
  }
  if (rec && (rec->status == RunStatus::completed || rec->status == RunStatus::failed)) return *rec;
  if (!rec) {
    rec = RunRecord{};
    rec->id = w.run_id;
    rec->slug = w.slug;
  }
  const std::string log = (store.run_dir(w.run_id) / "log.txt").string();
  rec->status = RunStatus::failed;
  rec->reason = WIFSIGNALED(status)
                    ? fmt::format("the worker process was killed by signal {} ({}); see {}",
                                  WTERMSIG(status), strsignal(WTERMSIG(status)), log)
                    : fmt::format("the worker process exited with code {}; see {}", WEXITSTATUS(status), log);
  rec->finished = utc_now();
  store.write_run(*rec);
  return *rec;
}

std::string ended_line(const Worker& w, const RunRecord& rec) {
  if (rec.status != RunStatus::completed) return fmt::format("FAILED    {} ({}): {}", w.slug, w.run_id, rec.reason);
  const auto metric = [&](const char* k) {
    auto it = rec.final.find(k);
    return it == rec.final.end() ? NAN : it->second;
  };
  return fmt::format("COMPLETED {} ({}): test acc {:.3f}, mAP {:.3f}, {:.3f} paper GMACs, {} epochs in {}",
                     w.slug, w.run_id, metric("test_accuracy"), metric("test_mAP"),
                     metric("paper_macs") / 1e9, rec.curves.size(), duration_text(rec.wall_seconds));
}

}  // namespace

PoolOutcome run_worker_pool(const PoolPlan& plan) {
  const ResultsStore& store = *plan.store;
  const std::vector<const PlannedRun*>& todo = plan.todo;
  const int jobs = plan.jobs;
  const std::string exe = self_exe();
  // PATCHBAY_WORKER_EXEC=1: start each worker as a fresh `patchbay run-worker` process (exec)
  // instead of a fork of this one; for a plugin that cannot live in a forked process.
  const char* exec_env = std::getenv("PATCHBAY_WORKER_EXEC");
  const bool exec_workers = exec_env != nullptr && *exec_env == '1';

  ProgressView view(plan.quiet);
  std::vector<Worker> workers;
  size_t next = 0, finished = 0, failed = 0;

  // The sweep's ETA from each run's own cost (sweep_eta.hpp), calibrated on the runs timed so
  // far: those COMPLETED before, those ended here, and until one has, the runs in training
  // (elapsed + their own ETA).
  std::vector<TimedRun> timed = plan.timed_before;
  const auto cost_of = [&](size_t todo_index) {
    return todo_index < plan.todo_costs.size() ? plan.todo_costs[todo_index] : RunCost{};
  };
  const auto sweep_eta = [&]() {
    std::vector<TimedRun> calibration = timed;
    std::vector<double> running_left;
    std::vector<RunCost> left;  // runs not yet training first (their elapsed is start-up), then the rest
    for (const auto& w : workers) {
      if (w.exiting) continue;
      if (w.last.phase == "train" && std::isfinite(w.last.eta_seconds)) {
        running_left.push_back(w.last.eta_seconds);
        if (timed.empty()) {
          const double elapsed = std::chrono::duration<double>(Clock::now() - w.started).count();
          calibration.push_back({cost_of(w.todo_index), elapsed + w.last.eta_seconds});
        }
      } else {
        left.push_back(cost_of(w.todo_index));
      }
    }
    for (size_t i = next; i < todo.size(); ++i) left.push_back(cost_of(i));
    return sweep_seconds_left(calibration, running_left, left, jobs);
  };
  const auto start_workers = [&]() {
    const auto busy = [&]() {
      return static_cast<size_t>(std::count_if(workers.begin(), workers.end(), [](const Worker& w) { return !w.exiting; }));
    };
    while (busy() < static_cast<size_t>(jobs) && next < todo.size()) {
      workers.push_back(spawn_worker(plan, next, exe, exec_workers));
      ++next;
    }
  };

  // A failure of the host itself (a full disk while publishing R) ends the sweep: its
  // workers go with it (as they would with the host gone), and once none is left what they
  // were half-way through writing is removed, so their temporaries do not keep the disk full.
  const auto stop_workers = [&]() {
    for (const auto& w : workers) ::kill(w.pid, SIGKILL);
    for (const auto& w : workers) {
      int status = 0;
      ::waitpid(w.pid, &status, 0);
      ::close(w.fd);
    }
    workers.clear();
    store.remove_stale_temporaries();
  };
  try {
    while (next < todo.size() || !workers.empty()) {
      start_workers();
      std::vector<pollfd> fds;
      for (const auto& w : workers) fds.push_back({w.fd, POLLIN, 0});
      ::poll(fds.data(), fds.size(), 500);
      bool publish = false;
      for (size_t i = 0; i < workers.size(); ++i) {
        if (fds[i].revents & (POLLIN | POLLHUP)) publish = read_progress(workers[i]) || publish;
      }
      if (publish) store.publish(*plan.record);
      bool ended = false;  // a run ended since R was last written
      for (size_t i = 0; i < workers.size();) {
        int status = 0;
        if (::waitpid(workers[i].pid, &status, WNOHANG) != workers[i].pid) {
          ++i;
          continue;
        }
        ::close(workers[i].fd);
        const Worker w = workers[i];
        workers.erase(workers.begin() + static_cast<long>(i));
        const RunRecord rec = ended_run(store, w, status);
        ++finished;
        failed += rec.status == RunStatus::completed ? 0 : 1;
        if (rec.status == RunStatus::completed) {
          // A resumed run's record holds all its attempts; this process saw only the last.
          const double seconds = std::chrono::duration<double>(Clock::now() - w.started).count();
          timed.push_back({cost_of(w.todo_index), std::max(seconds, rec.wall_seconds)});
        }
        view.say(ended_line(w, rec));
        ended = true;
        view.draw(workers, plan.done_before + finished, plan.share, sweep_eta(), true);
      }
      if (ended) {
        // The next run starts first: the worker reads its data and builds its model on one
        // core while R is rewritten on the other, instead of after it (~25 ms per run).
        start_workers();
        store.publish(*plan.record);
      }
      view.draw(workers, plan.done_before + finished, plan.share, sweep_eta(), false);
    }
  } catch (...) {
    stop_workers();
    throw;
  }
  return {finished, failed};
}

}  // namespace patchbay::cli

// patchbay run-dist: one planned run trained by several processes (data-parallel, Gloo).
//
// Every rank runs the same command with its own rank; each is one process that trains in
// itself (no worker fork: the rank *is* the worker, and a crash is the peers' business, which
// they report as dist.peer_lost). Rank 0 owns the results file as `patchbay run` does (lock,
// record, checkpoint, publish); the other ranks read the experiment and the data only.
#include "commands.hpp"
#include "cli_common.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <optional>

#include <fmt/format.h>
#include <torch/types.h>

#include "patchbay/distributed.hpp"
#include "patchbay/error.hpp"
#include "patchbay/results.hpp"
#include "patchbay/trainer.hpp"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace patchbay::cli {

int run_dist(const std::vector<std::string>& args) {
  auto desc = common_options("patchbay run-dist options", /*offers_json=*/false);
  desc.add_options()("run", po::value<std::string>(),
                     "the run's id or slug (needed when the plan has several runs)")(
      "results", po::value<std::string>(),
      "results file (default: results/<experiment name>.h5); rank 0 writes it")(
      "force", "run even though the experiment file plans other runs than the results file was "
                 "written for (an edit that plans the same runs needs no --force)")(
      "dist-rank", po::value<int>(), "this process's rank, 0..world-1 (default: $RANK)")(
      "dist-world-size", po::value<int>(), "number of processes (default: $WORLD_SIZE)")(
      "dist-addr", po::value<std::string>(),
      "rank 0's address (default: $MASTER_ADDR, else 127.0.0.1)")(
      "dist-port", po::value<int>(), "rank 0's port (default: $MASTER_PORT, else 29500)")(
      "dist-timeout", po::value<double>()->default_value(60.0),
      "seconds to wait for the other ranks, at the start and in every collective")(
      "dist-iface", po::value<std::string>(),
      "network interface for Gloo (default: $GLOO_SOCKET_IFNAME; see the README)")(
      "threads", po::value<int>()->default_value(0),
      "threads when train.threads = 0 (0: this machine's cores / $LOCAL_WORLD_SIZE)");
  const auto p = parse(args, desc);
  if (wants_help(p,
                 "Usage: patchbay run-dist FILE [key=value...] [--run ID] [--results R.h5]\n"
                 "         --dist-rank R --dist-world-size N [--dist-addr A] [--dist-port P]\n"
                 "         [--dist-timeout S] [--dist-iface IF]\n\n"
                 "Trains ONE planned run on N processes, data-parallel over LibTorch's Gloo "
                 "backend: start the same command once per rank (on one machine or several), "
                 "each with its rank. train.batch_size is the combined batch (each rank takes "
                 "batch_size / N of it), so the run's steps do not depend on N. Rank 0 listens "
                 "on --dist-port at --dist-addr for the others, writes the results file and "
                 "the checkpoint, and prints progress. The usual environment (RANK, "
                 "WORLD_SIZE, MASTER_ADDR, MASTER_PORT, GLOO_SOCKET_IFNAME, LOCAL_WORLD_SIZE) "
                 "works instead of the flags. A rank that dies or stops answering makes the "
                 "others fail within --dist-timeout with [dist.peer_lost], naming it. A run "
                 "already COMPLETED in the results is skipped. Run the same commands again "
                 "after a crash, a kill or a lost rank: rank 0's last checkpoint "
                 "(train.checkpoint_every_s) carries every rank's state, and with the same "
                 "number of ranks the run ends as it would have without the interruption. A run "
                 "that FAILED for another reason (e.g. a diverging loss) starts again.",
                 desc)) {
    return kExitOk;
  }
  DistributedConfig dc = DistributedConfig::from_environment();
  const bool rank_given = p.vm.count("dist-rank") || std::getenv("RANK");
  const bool world_given = p.vm.count("dist-world-size") || std::getenv("WORLD_SIZE");
  if (!rank_given || !world_given) {
    throw ConfigError("cli.missing_rank",
                      "which rank of how many? give --dist-rank R and "
                      "--dist-world-size N (or set RANK and WORLD_SIZE)");
  }
  if (p.vm.count("dist-rank")) dc.rank = p.vm["dist-rank"].as<int>();
  if (p.vm.count("dist-world-size")) dc.world_size = p.vm["dist-world-size"].as<int>();
  if (p.vm.count("dist-addr")) dc.addr = p.vm["dist-addr"].as<std::string>();
  if (p.vm.count("dist-port")) dc.port = p.vm["dist-port"].as<int>();
  if (p.vm.count("dist-iface")) dc.iface = p.vm["dist-iface"].as<std::string>();
  dc.timeout_s = p.vm["dist-timeout"].as<double>();
  dc.validate();
  const int threads_option = p.vm["threads"].as<int>();
  if (threads_option < 0) throw po::error(fmt::format("--threads {}: give 0 (the machine's share) or more", threads_option));
  const int rank = dc.rank;

  // Everything that can be refused is refused before the rendezvous, so a typo fails at once
  // on every rank rather than as a timeout on the others.
  Registry registry;
  load_plugins(registry, p);
  const Experiment exp = plan_from(p, registry, "run-dist");
  const PlannedRun* run = nullptr;
  if (p.vm.count("run")) {
    const std::string want = p.vm["run"].as<std::string>();
    for (const auto& r : exp.runs) {
      if (r.id == want || r.slug == want) run = &r;
    }
    if (run == nullptr) {
      throw ConfigError("run.unknown",
                        fmt::format("no run '{}' in the plan; `patchbay plan {}` lists "
                                    "the ids and slugs",
                                    want, p.positional.at(0)));
    }
  } else if (exp.runs.size() == 1) {
    run = &exp.runs.front();
  } else {
    throw ConfigError("run.which",
                      fmt::format("the experiment plans {} runs; name one with --run ID "
                                  "(`patchbay plan {}` lists them)",
                                  exp.runs.size(), p.positional.at(0)));
  }
  const int64_t batch = run->config.train.get_int("batch_size");
  if (batch % dc.world_size != 0) {
    throw ConfigError("dist.batch_size",
                      fmt::format("train.batch_size = {} is the combined batch of the {} ranks and "
                                  "must be a multiple of {}; set train.batch_size={}",
                                  batch, dc.world_size, dc.world_size,
                                  (batch / dc.world_size + 1) * dc.world_size));
  }
  require_cpu_for_distributed(run->config.train.get_string("device"));  // before any rendezvous

  const fs::path results = p.vm.count("results") ? fs::path(p.vm["results"].as<std::string>())
                                                 : fs::path("results") / (exp.name + ".h5");
  const ResultsStore store(results);
  const ExperimentRecord record = record_of(exp);
  std::optional<ResultsLock> lock;
  bool already_done = false;
  if (rank == 0) {
    lock.emplace(open_results_for_run(store, record, p.vm.count("force") > 0, "run-dist"));
    const auto previous = store.read_run(run->id);
    already_done = previous && previous->status == RunStatus::completed;
  }

  const auto dist = Distributed::connect(dc);
  {
    // Rank 0 alone knows whether the run is done; all ranks must agree to train or not.
    at::Tensor done = torch::tensor({already_done ? 1 : 0}, torch::kInt);
    std::vector<at::Tensor> one{done};
    dist->broadcast(one, "broadcasting whether the run is already done");
    if (done.item<int>() == 1) {
      if (rank == 0)
        fmt::print("run {} is COMPLETED in {} already; nothing to do\n", run->id, results.string());
      return kExitOk;
    }
  }

  TrainerOptions opts;
  opts.base_dir = fs::absolute(exp.file).parent_path();
  opts.distributed = dist;
  // Ranks sharing a machine share its cores (torchrun's LOCAL_WORLD_SIZE says how many do).
  int threads = threads_option;
  if (threads == 0) {
    int local = 1;
    if (const char* l = std::getenv("LOCAL_WORLD_SIZE")) local = std::max(1, std::atoi(l));
    threads = std::max(1, usable_cores() / local);
  }
  opts.threads = threads;
  // Test hook: this process SIGKILLs itself after optimiser step K, as a crashed or
  // OOM-killed rank would vanish (the peers must notice, not hang).
  if (const char* k = std::getenv("PATCHBAY_TEST_KILL_AFTER_STEP")) {
    const int64_t kill_step = std::atoll(k);
    opts.after_step = [kill_step](int64_t step) {
      if (step == kill_step) ::kill(::getpid(), SIGKILL);
    };
  }
  RunRecord rec;
  if (rank == 0) {
    opts.checkpoint = store.run_dir(run->id) / "checkpoint.pt";
    opts.on_epoch = [&](const RunRecord& r) {
      store.write_run(r);
      store.publish(record);
    };
    rec = store.read_run(run->id).value_or(RunRecord{});
    // A lost rank is the interruption a resume is for; any other failure starts again, as
    // `patchbay run` does.
    if (rec.status == RunStatus::failed && rec.reason.find("dist.peer_lost") == std::string::npos) {
      rec = RunRecord{};
    }
    rec = start_record(*run, std::move(rec));
    store.write_run(rec);
    store.publish(record);
    fmt::print("run {} ({}) on {} rank{}; results: {}\n", run->slug, run->id, dc.world_size,
               dc.world_size == 1 ? "" : "s", results.string());
    std::fflush(stdout);
    // Plain progress lines, at most every 10 s, and one per epoch.
    auto last = std::chrono::steady_clock::now() - std::chrono::seconds(60);
    int64_t last_epoch = 0;
    opts.progress = [last, last_epoch](const TrainProgress& tp) mutable {
      const auto now = std::chrono::steady_clock::now();
      if (tp.phase != "train") return;
      if (tp.epoch == last_epoch && now - last < std::chrono::seconds(10)) return;
      last = now;
      last_epoch = tp.epoch;
      fmt::print("epoch {}/{} step {}/{} loss {:.4f} {:.0f} ex/s\n", tp.epoch, tp.epochs, tp.step,
                 tp.total_steps, tp.loss, tp.examples_per_s);
      std::fflush(stdout);
    };
  }
  rec = train_run(*run, registry, opts, rec);
  if (rank == 0) {
    store.write_run(rec);
    store.publish(record);
  }
  if (rec.status == RunStatus::completed) {
    if (rank == 0) {
      fmt::print(
          "COMPLETED {} ({}) on {} rank{}: test acc {:.3f}, {} epochs; next: patchbay report {}\n",
          run->slug, run->id, dc.world_size, dc.world_size == 1 ? "" : "s",
          rec.final.count("test_accuracy") ? rec.final.at("test_accuracy") : NAN, rec.curves.size(),
          results.string());
    }
    return kExitOk;
  }
  // The reason holds the error's id ("[dist.peer_lost] rank 0 of 2: ...").
  fmt::print(stderr, "patchbay run-dist: rank {}: run {} FAILED: {}\n", rank, run->id, rec.reason);
  return kExitError;
}

}  // namespace patchbay::cli

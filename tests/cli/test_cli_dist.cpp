// `patchbay run-dist`: one run on two processes over Gloo on 127.0.0.1. Two ranks reach the
// parameters one process reaches with the combined batch, and a rank that dies makes the
// other fail with [dist.peer_lost] naming it, within the timeout (never a hang).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>

#include <torch/serialize.h>

#include "helpers.hpp"
#include "patchbay/results.hpp"
#include "test_paths.hpp"

namespace fs = std::filesystem;

namespace {

std::string cli() { return std::string("'") + patchbay::test::kCli + "'"; }
std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

// A port the kernel just handed out and took back: free unless another process grabs it in
// the next instant (TCPStore then says "address already in use").
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// 15 training clips (3 words x 7 clips, seed 3): with batch_size 14 an epoch is a step of 14
// examples (7 + 7 on two ranks) and a step of 1 (rank 0 has it, rank 1 none), so the test
// covers an even split, an uneven one and a rank without examples.
const fs::path& dist_keywords() {
  static patchbay::test::TempDir dir;
  static const fs::path root = [] {
    const fs::path out = dir.path() / "keywords";
    const auto r = patchbay::test::run(cli() + " data keywords --out " + quoted(out) +
                                       " --per-class 7 --words yes,no,up --seed 3");
    REQUIRE_MESSAGE(r.code == 0, r.err);
    return out;
  }();
  return root;
}

// Masking and mixup off: they draw random numbers per batch, so ranks (own seeds, half
// batches) cannot draw what one process draws.
fs::path write_experiment(const fs::path& dir, const std::string& masker = "plugin = \"none\"",
                          const std::string& train = "epochs = 3\nmixup = 0.0\n") {
  const fs::path file = dir / "tiny.toml";
  std::ofstream(file)
      << "[experiment]\nname = \"tiny\"\n\n"
      << "[dataset]\nplugin = \"speech_commands\"\nroot = \"" << dist_keywords().string()
      << "\"\n\n[frontend]\nnum_mel_bins = 64\ntarget_frames = 100\n\n"
      << "[patcher]\nplugin = \"fftp\"\npatch_frames = 16\nstride = 8\n\n"
      << "[masker]\n" << masker << "\n\n"
      << "[backbone]\nplugin = \"linear_probe\"\nembed_dim = 32\n\n"
      << "[train]\nbatch_size = 14\nlr = 0.003\nthreads = 1\n" << train;
  return file;
}

std::map<std::string, at::Tensor> model_of(const fs::path& checkpoint) {
  torch::serialize::InputArchive archive;
  archive.load_from(checkpoint.string());
  std::map<std::string, at::Tensor> out;
  for (const auto& key : archive.keys()) {
    if (key.rfind("model/", 0) != 0) continue;
    at::Tensor t;
    archive.read(key, t, /*is_buffer=*/true);
    out[key] = t;
  }
  return out;
}

// The largest |difference| between the model parameters of two checkpoints, which must hold
// the same tensors (names and shapes).
double max_parameter_difference(const fs::path& a, const fs::path& b) {
  const auto pa = model_of(a);
  const auto pb = model_of(b);
  REQUIRE(pa.size() >= 4);
  REQUIRE(pa.size() == pb.size());
  double worst = 0.0;
  for (const auto& [name, t] : pa) {
    CAPTURE(name);
    REQUIRE(pb.count(name));
    REQUIRE(pb.at(name).sizes() == t.sizes());
    worst = std::max(worst, (pb.at(name) - t).abs().max().item<double>());
  }
  return worst;
}

// Rank 0 by flags, rank 1 by the environment (both ways are supported), each under a
// coreutils `timeout -s KILL` so that no failure of this code can hang the test; the ranks'
// exit codes land in r0.rc and r1.rc.
patchbay::test::Outcome run_two_ranks(const fs::path& dir, const fs::path& exp,
                                      const fs::path& results, const std::string& rank1_env,
                                      int timeout_s) {
  const int port = free_port();
  const std::string guard = "timeout -s KILL " + std::to_string(timeout_s + 30) + " ";
  const std::string common = " run-dist " + quoted(exp) + " --results " + quoted(results) +
                             " --dist-timeout " + std::to_string(timeout_s);
  const std::string rank0 =
      guard + cli() + common +
      " --dist-rank 0 --dist-world-size 2 --dist-addr 127.0.0.1 --dist-port " +
      std::to_string(port) + " >" + quoted(dir / "r0.out") + " 2>" + quoted(dir / "r0.err");
  const std::string rank1 =
      "RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) + " " +
      rank1_env + " " + guard + cli() + common + " >" + quoted(dir / "r1.out") + " 2>" +
      quoted(dir / "r1.err");
  return patchbay::test::run("sh -c \"" + rank0 + " & p0=\\$!; " + rank1 + "; echo \\$? >" +
                             quoted(dir / "r1.rc") + "; wait \\$p0; echo \\$? >" +
                             quoted(dir / "r0.rc") + "\"");
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int exit_code(const fs::path& p) { return std::stoi(slurp(p)); }

}  // namespace

TEST_SUITE("cli") {
  TEST_CASE(
      "cli: run-dist on 2 processes reaches the parameters of 1 process with the combined batch") {
    patchbay::test::TempDir dir;
    const fs::path exp = write_experiment(dir.path());

    // The reference: the ordinary one-process `patchbay run`.
    const fs::path one = dir.path() / "one.h5";
    auto r =
        patchbay::test::run(cli() + " run " + quoted(exp) + " --quiet --results " + quoted(one));
    REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));

    const fs::path two = dir.path() / "two.h5";
    r = run_two_ranks(dir.path(), exp, two, "", 60);
    const std::string logs =
        slurp(dir.path() / "r0.out") + slurp(dir.path() / "r0.err") + slurp(dir.path() / "r1.err");
    REQUIRE_MESSAGE(exit_code(dir.path() / "r0.rc") == 0, logs);
    REQUIRE_MESSAGE(exit_code(dir.path() / "r1.rc") == 0, logs);
    CHECK(slurp(dir.path() / "r0.out").find("COMPLETED") != std::string::npos);

    const patchbay::ResultsStore one_store(one), two_store(two);
    const auto ids = one_store.read_experiment().value().run_ids;
    REQUIRE(ids.size() == 1);
    CHECK(two_store.read_experiment().value().run_ids == ids);  // the same plan, the same run id
    const auto a = one_store.read_run(ids[0]);
    const auto b = two_store.read_run(ids[0]);
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    CHECK(b->status == patchbay::RunStatus::completed);
    CHECK(b->final.at("world_size") == 2);
    CHECK(a->final.at("train_clips") == 15);
    REQUIRE(b->curves.size() == 3);
    CHECK(b->curves[2].step == a->curves[2].step);  // 2 steps per epoch either way
    CHECK(b->curves[2].step == 6);
    for (size_t i = 0; i < 3; ++i) {
      CAPTURE(i);
      CHECK(b->curves[i].train_loss == doctest::Approx(a->curves[i].train_loss).epsilon(1e-5));
      CHECK(b->curves[i].valid_loss == doctest::Approx(a->curves[i].valid_loss).epsilon(1e-5));
      CHECK(b->curves[i].valid_accuracy == a->curves[i].valid_accuracy);
    }
    CHECK(b->final.at("test_accuracy") == a->final.at("test_accuracy"));

    // The parameters after 6 steps (the last epoch's checkpoint, written by rank 0 only). The
    // ranks sum float32 gradients in another order than one process (per-rank means, weighted,
    // all-reduced) and multiply matrices of half the rows: rounding differences of ~1e-7
    // relative. 1e-5 absolute leaves that room over 6 Adam steps while a real mistake (an
    // example counted twice or lost, a rank's gradient not averaged) moves parameters by the
    // order of lr = 3e-3 per step.
    const double worst = max_parameter_difference(one_store.run_dir(ids[0]) / "checkpoint.pt",
                                                  two_store.run_dir(ids[0]) / "checkpoint.pt");
    CHECK(worst < 1e-5);
    MESSAGE("max |parameter difference| after 6 steps, 2 ranks vs 1 process: " << worst);

    // Run again: rank 0 finds the run COMPLETED, both ranks agree to do nothing.
    r = run_two_ranks(dir.path(), exp, two, "", 60);
    CHECK(exit_code(dir.path() / "r0.rc") == 0);
    CHECK(exit_code(dir.path() / "r1.rc") == 0);
    CHECK(slurp(dir.path() / "r0.out").find("nothing to do") != std::string::npos);

    // Refused before any rendezvous: a batch the ranks cannot split, no rank given.
    r = patchbay::test::run(cli() + " run-dist " + quoted(exp) +
                            " train.batch_size=15 --dist-rank 0 --dist-world-size 2");
    CHECK(r.code == 1);
    CHECK(r.err.find("dist.batch_size") != std::string::npos);
    r = patchbay::test::run(cli() + " run-dist " + quoted(exp) + " train.device=cuda --dist-rank 0 --dist-world-size 2");
    CHECK(r.code == 1);
    CHECK(r.err.find("dist.device") != std::string::npos);
    r = patchbay::test::run("env -u RANK -u WORLD_SIZE " + cli() + " run-dist " + quoted(exp));
    CHECK(r.code == 2);
    CHECK(r.err.find("cli.missing_rank") != std::string::npos);
  }

  TEST_CASE(
      "cli: run-dist: a rank that dies makes the other fail with dist.peer_lost naming it, not "
      "hang") {
    patchbay::test::TempDir dir;
    const fs::path exp = write_experiment(dir.path());
    const fs::path results = dir.path() / "killed.h5";
    const int timeout_s = 20;
    const auto start = std::chrono::steady_clock::now();
    // Rank 1 SIGKILLs itself after its first optimiser step; rank 0 is then in step 2's
    // collectives with a peer that is gone.
    run_two_ranks(dir.path(), exp, results, "PATCHBAY_TEST_KILL_AFTER_STEP=1", timeout_s);
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const std::string err0 = slurp(dir.path() / "r0.err");
    CAPTURE(err0);
    CHECK(exit_code(dir.path() / "r1.rc") == 128 + 9);  // the SIGKILL
    CHECK(exit_code(dir.path() / "r0.rc") == 1);        // an error, not the guard's SIGKILL (137)
    CHECK(err0.find("[dist.peer_lost]") != std::string::npos);
    CHECK(err0.find("rank 1 (") != std::string::npos);
    CHECK(err0.find("was lost") != std::string::npos);
    // Normally in step 2's first collective; step 1's last one if the kill's reset beat the
  // final bytes of step 1 to rank 0.
  CHECK(err0.find("all-reducing step ") != std::string::npos);
    // A dead peer closes its sockets: noticed at once, well inside the timeout.
    CHECK(elapsed < timeout_s);
    MESSAGE("rank 0 gave up after " << elapsed << " s (timeout " << timeout_s << " s)");

    // Rank 0 recorded the run FAILED with the reason.
    const patchbay::ResultsStore store(results);
    const auto ids = store.read_experiment().value().run_ids;
    const auto rec = store.read_run(ids.at(0));
    REQUIRE(rec.has_value());
    CHECK(rec->status == patchbay::RunStatus::failed);
    CHECK(rec->reason.find("dist.peer_lost") != std::string::npos);
  }

  TEST_CASE(
      "cli: run-dist resumes from rank 0's checkpoint after a rank is lost and ends as the "
      "uninterrupted run") {
    patchbay::test::TempDir dir;
    // Masking and mixup on: every rank's generator must continue where it stopped. A
    // checkpoint after every epoch; 2 steps per epoch.
    const fs::path exp = write_experiment(dir.path(), "plugin = \"specmask\"\nbudget = 64\nrect_size = [8, 8]",
                                          "epochs = 4\nmixup = 0.5\ncheckpoint_every_s = 0\n");
    const fs::path whole = dir.path() / "whole.h5";
    run_two_ranks(dir.path(), exp, whole, "", 60);
    REQUIRE_MESSAGE(exit_code(dir.path() / "r0.rc") == 0, slurp(dir.path() / "r0.err"));

    // Rank 1 dies after step 5 (in epoch 3): rank 0 records FAILED [dist.peer_lost] and keeps
    // epoch 2's checkpoint.
    const fs::path cut = dir.path() / "cut.h5";
    run_two_ranks(dir.path(), exp, cut, "PATCHBAY_TEST_KILL_AFTER_STEP=5", 30);
    CHECK(exit_code(dir.path() / "r0.rc") == 1);
    const patchbay::ResultsStore whole_store(whole), cut_store(cut);
    const auto ids = cut_store.read_experiment().value().run_ids;
    REQUIRE(ids.size() == 1);
    const auto failed = cut_store.read_run(ids[0]);
    REQUIRE(failed.has_value());
    CHECK(failed->status == patchbay::RunStatus::failed);
    CHECK(failed->curves.size() == 2);

    // The same two commands again: rank 0 resumes after epoch 2 and hands the state over.
    run_two_ranks(dir.path(), exp, cut, "", 60);
    const std::string logs = slurp(dir.path() / "r0.out") + slurp(dir.path() / "r0.err") + slurp(dir.path() / "r1.err");
    REQUIRE_MESSAGE(exit_code(dir.path() / "r0.rc") == 0, logs);
    REQUIRE_MESSAGE(exit_code(dir.path() / "r1.rc") == 0, logs);
    CHECK_MESSAGE(logs.find("resuming after epoch 2 (step 4)") != std::string::npos, logs);
    const auto a = whole_store.read_run(ids[0]);
    const auto b = cut_store.read_run(ids[0]);
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    CHECK(b->status == patchbay::RunStatus::completed);
    REQUIRE(b->curves.size() == 4);
    // Epochs 3 and 4 ran after the resume: the same losses and masked cells as without the
    // interruption. A rank with a fresh generator draws other masks and mixup partners, and a
    // fresh optimiser state moves every parameter by ~lr in the first step; either shows here.
    for (size_t i = 0; i < 4; ++i) {
      CAPTURE(i);
      CHECK(b->curves[i].train_loss == doctest::Approx(a->curves[i].train_loss).epsilon(1e-6));
      CHECK(b->curves[i].valid_loss == doctest::Approx(a->curves[i].valid_loss).epsilon(1e-6));
      CHECK(b->curves[i].masked_cells == a->curves[i].masked_cells);
    }
    CHECK(b->final.at("test_accuracy") == a->final.at("test_accuracy"));
    CHECK(b->final.at("best_epoch") == a->final.at("best_epoch"));
    const double worst = max_parameter_difference(whole_store.run_dir(ids[0]) / "checkpoint.pt",
                                                  cut_store.run_dir(ids[0]) / "checkpoint.pt");
    CHECK(worst < 1e-6);
    MESSAGE("max |parameter difference|, resumed vs uninterrupted 2-rank run: " << worst);
  }
}

// End-to-end checks of `patchbay run`: real training of a tiny model on a tiny generated
// keyword set, results that h5py/pandas read, resume after kill -9, failed runs recorded,
// the results lock, and a changed experiment refused.
#include <doctest/doctest.h>

#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include "helpers.hpp"
#include "patchbay/error.hpp"
#include "patchbay/results.hpp"
#include "patchbay_datasets/layout.hpp"
#include "test_paths.hpp"

namespace fs = std::filesystem;

namespace {

std::string cli() { return std::string("'") + patchbay::test::kCli + "'"; }
std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

fs::path write_experiment(const fs::path& dir, int epochs = 3, const std::string& extra_train = "") {
  const fs::path file = dir / "tiny.toml";
  std::ofstream(file) << "[experiment]\nname = \"tiny\"\n\n"
                      << "[dataset]\nplugin = \"speech_commands\"\nroot = \"" << patchbay::test::tiny_keywords().string()
                      << "\"\n\n[frontend]\nnum_mel_bins = 64\ntarget_frames = 100\n\n"
                      << "[patcher]\nplugin = \"fftp\"\npatch_frames = 16\nstride = 8\n\n"
                      << "[masker]\nplugin = \"specmask\"\nbudget = 64\nrect_size = [8, 8]\n\n"
                      << "[backbone]\nplugin = \"linear_probe\"\nembed_dim = 32\n\n"
                      << "[train]\nepochs = " << epochs
                      << "\nbatch_size = 8\nlr = 0.003\nthreads = 1\nmixup = 0.5\n" << extra_train;
  return file;
}

std::string h5_attr(const fs::path& results, const std::string& expr) {
  const auto r = patchbay::test::run("/usr/bin/python3 -c \"import h5py; f = h5py.File('" +
                                     results.string() + "', 'r'); print(" + expr + ")\"");
  REQUIRE_MESSAGE(r.code == 0, r.err);
  std::string out = r.out;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

TEST_SUITE("cli") {
TEST_CASE("cli: run trains, records and resumes; results open in h5py and pandas") {
  patchbay::test::TempDir dir;
  const fs::path exp = write_experiment(dir.path());
  const fs::path results = dir.path() / "out" / "tiny.h5";
  auto r = patchbay::test::run(cli() + " run " + quoted(exp) + " --results " + quoted(results));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  CHECK(r.out.find("COMPLETED") != std::string::npos);
  CHECK(r.out.find("1 of 1 runs COMPLETED") != std::string::npos);
  REQUIRE(fs::exists(results));

  const patchbay::ResultsStore store(results);
  const auto exp_rec = store.read_experiment();
  REQUIRE(exp_rec.has_value());
  REQUIRE(exp_rec->run_ids.size() == 1);
  const auto rec = store.read_run(exp_rec->run_ids[0]);
  REQUIRE(rec.has_value());
  CHECK(rec->status == patchbay::RunStatus::completed);
  CHECK(rec->curves.size() == 3);
  CHECK(rec->class_names == std::vector<std::string>{"no", "up", "yes"});
  CHECK(rec->final.at("test_accuracy") >= 0.0);
  CHECK(rec->final.at("test_accuracy") <= 1.0);
  CHECK(rec->final.at("paper_macs") > 0);
  CHECK(rec->final.at("latency_ms") > 0);
  CHECK(rec->final.at("masked_cells_per_example") > 0);
  CHECK(rec->final.at("tokens") == 11);  // (100 - 16) / 8 + 1
  CHECK(rec->curves[2].step == 3 * ((static_cast<int64_t>(rec->final.at("train_clips")) + 7) / 8));
  CHECK(rec->threads == 1);
  // The final validation numbers are those of the best epoch's row.
  const auto best = static_cast<size_t>(rec->final.at("best_epoch"));
  REQUIRE(best >= 1);
  REQUIRE(best <= rec->curves.size());
  CHECK(rec->final.at("valid_accuracy") == rec->curves[best - 1].valid_accuracy);

  // Per-clip test predictions, in the record and for h5py: logits [N, C] float32, targets
  // [N, C] uint8 whose argmax agreement is the recorded accuracy.
  const auto n = static_cast<size_t>(rec->final.at("test_clips"));
  REQUIRE(rec->test_clip_ids.size() == n);
  CHECK(rec->test_logits.size() == 3 * n);
  const std::string preds = "f['runs']['" + exp_rec->run_ids[0] + "']['test_predictions']";
  CHECK(h5_attr(results, preds + "['logits'].shape") == fmt::format("({}, 3)", n));
  CHECK(h5_attr(results, preds + "['targets'].dtype") == "uint8");
  CHECK(std::stod(h5_attr(results, "(" + preds + "['logits'][()].argmax(1) == " + preds +
                                       "['targets'][()].argmax(1)).mean()")) ==
        doctest::Approx(rec->final.at("test_accuracy")));

  // The README's snippet reads it.
  std::ifstream readme(std::string(patchbay::test::kSourceDir) + "/results/README.md");
  std::stringstream text;
  text << readme.rdbuf();
  const std::string md = text.str();
  const auto begin = md.find("```python", md.find("<!-- snippet"));
  const auto end = md.find("```", begin + 9);
  REQUIRE(begin != std::string::npos);
  std::ofstream(dir.path() / "snippet.py") << md.substr(begin + 9, end - begin - 9);
  r = patchbay::test::run("/usr/bin/python3 " + quoted(dir.path() / "snippet.py") + " " + quoted(results));
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK(r.out.find(exp_rec->run_ids[0]) != std::string::npos);
  CHECK(r.out.find("COMPLETED") != std::string::npos);

  // Rerunning does nothing.
  r = patchbay::test::run(cli() + " run " + quoted(exp) + " --results " + quoted(results));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  CHECK(r.out.find("1 completed before, 0 to do") != std::string::npos);

  // An edit that leaves every run the same (a comment, the layout) is accepted, and the file
  // records the edited text: the run ids hash every option.
  const fs::path commented = write_experiment(dir.path(), 3, "# a note added while the sweep ran\n");
  r = patchbay::test::run(cli() + " run " + quoted(commented) + " --results " + quoted(results));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  CHECK(r.out.find("1 completed before, 0 to do") != std::string::npos);
  CHECK_MESSAGE(r.err.find("edited since") != std::string::npos, r.err);
  CHECK(store.read_experiment().value().text.find("# a note added") != std::string::npos);

  // A changed experiment is refused, naming the change; --force accepts it.
  const fs::path changed = write_experiment(dir.path(), 3, "seed = 5\n");
  r = patchbay::test::run(cli() + " run " + quoted(changed) + " --results " + quoted(results));
  CHECK(r.code == 1);
  CHECK(r.err.find("results.changed") != std::string::npos);
  CHECK(r.err.find("+ seed = 5") != std::string::npos);
  CHECK_MESSAGE(r.err.find("run with --force to replace its plan with this one (runs both plans have are kept; the "
                           "earlier plan's other runs leave the table, their files stay in ") != std::string::npos,
                r.err);
  // --force does what it says: the new plan's run trains, the earlier one leaves the table and
  // stderr says so; its run file stays, so the earlier plan brings it back untrained.
  const std::string first_id = store.read_experiment().value().run_ids.at(0);
  r = patchbay::test::run(cli() + " run " + quoted(changed) + " --results " + quoted(results) + " --force");
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  CHECK_MESSAGE(r.err.find("--force: 1 run of the earlier plan is not in this one: it leaves the table of") !=
                    std::string::npos, r.err);
  CHECK(patchbay::read_results(results).runs.size() == 1);
  CHECK(patchbay::read_results(results).runs.at(0).id != first_id);
  CHECK(store.read_run(first_id).has_value());
  // A results file copied without its runs folder keeps its runs: their files are restored
  // from it (before, the publish rebuilt them as PLANNED and the sweep trained them again).
  const fs::path alone = dir.path() / "copied" / "alone.h5";
  fs::create_directories(alone.parent_path());
  fs::copy_file(results, alone);
  r = patchbay::test::run(cli() + " run " + quoted(changed) + " --results " + quoted(alone));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  CHECK_MESSAGE(r.err.find("1 run in '" + alone.string() + "' had no file in") != std::string::npos, r.err);
  CHECK_MESSAGE(r.out.find("1 completed before, 0 to do") != std::string::npos, r.out);
  const fs::path earlier = write_experiment(dir.path(), 3, "# a note added while the sweep ran\n");
  r = patchbay::test::run(cli() + " run " + quoted(earlier) + " --results " + quoted(results) + " --force");
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  CHECK_MESSAGE(r.out.find("1 completed before, 0 to do") != std::string::npos, r.out);
  CHECK(patchbay::read_results(results).runs.at(0).id == first_id);
  write_experiment(dir.path(), 3, "seed = 5\n");  // `changed` again, for what follows

  // The same text whose runs' ids changed (what a plugin's version bump or a new default
  // does: ids hash every option) is refused too, saying the file itself is unchanged. The
  // file is made to record another id for the same text, as an older patchbay would have.
  {
    auto older = store.read_experiment().value();
    const fs::path same_text = dir.path() / "same.toml";
    std::ofstream(same_text) << older.text;
    older.file = same_text.string();
    older.run_ids[0] = std::string(older.run_ids[0].size(), '0');
    store.publish(older);
    r = patchbay::test::run(cli() + " run " + quoted(same_text) + " --results " + quoted(results));
    CHECK(r.code == 1);
    CHECK_MESSAGE(r.err.find("results.changed") != std::string::npos, r.err);
    CHECK_MESSAGE(r.err.find("the file is the same") != std::string::npos, r.err);
  }

  // While the lock is held, another run is refused with the holder's pid.
  {
    const auto lock = store.lock();
    r = patchbay::test::run(cli() + " run " + quoted(exp) + " --results " + quoted(results));
    CHECK(r.code == 1);
    CHECK(r.err.find("results.locked") != std::string::npos);
    CHECK(r.err.find(std::to_string(::getpid())) != std::string::npos);
  }
}

TEST_CASE("cli: a run killed with SIGKILL resumes and ends exactly as an uninterrupted run") {
  patchbay::test::TempDir dir;
  const fs::path exp = write_experiment(dir.path(), 4);

  const fs::path straight = dir.path() / "straight.h5";
  auto r = patchbay::test::run(cli() + " run " + quoted(exp) + " --results " + quoted(straight));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));

  // A checkpoint after every epoch (an execution-only key: same run ids as above).
  const fs::path killed = dir.path() / "killed.h5";
  r = patchbay::test::run("PATCHBAY_TEST_KILL_AFTER_EPOCH=2 " + cli() + " run " + quoted(exp) +
                          " train.checkpoint_every_s=0 --results " + quoted(killed));
  CHECK(r.code != 0);  // the host was killed too
  // The published file is readable and the run is RUNNING with two epochs recorded.
  const patchbay::ResultsStore store(killed);
  const auto ids = store.read_experiment().value().run_ids;
  REQUIRE(ids.size() == 1);
  auto rec = store.read_run(ids[0]);
  REQUIRE(rec.has_value());
  CHECK(rec->status == patchbay::RunStatus::running);
  CHECK(rec->curves.size() == 2);
  CHECK(h5_attr(killed, "f['table/status'].asstr()[0]") == "RUNNING");
  // Its wall time so far is recorded with each epoch, so the time of an attempt that is
  // killed still counts in the run's compute (patchbay claims sums it).
  const double killed_wall = rec->wall_seconds;
  CHECK(killed_wall >= rec->curves[0].epoch_seconds + rec->curves[1].epoch_seconds);

  r = patchbay::test::run(cli() + " run " + quoted(exp) + " --results " + quoted(killed));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  rec = store.read_run(ids[0]);
  const auto reference = patchbay::ResultsStore(straight).read_run(ids[0]);
  REQUIRE(rec.has_value());
  REQUIRE(reference.has_value());
  CHECK(rec->status == patchbay::RunStatus::completed);
  CHECK(rec->attempts == 2);
  REQUIRE(rec->curves.size() == 4);
  CHECK(rec->wall_seconds >= killed_wall + rec->curves[2].epoch_seconds + rec->curves[3].epoch_seconds);
  for (size_t i = 0; i < 4; ++i) {
    CAPTURE(i);
    CHECK(rec->curves[i].train_loss == reference->curves[i].train_loss);
    CHECK(rec->curves[i].valid_accuracy == reference->curves[i].valid_accuracy);
  }
  for (const char* key : {"test_accuracy", "test_mAP", "test_loss", "valid_accuracy", "best_epoch"}) {
    CAPTURE(key);
    CHECK(rec->final.at(key) == reference->final.at(key));
  }

  // With the default checkpoint_every_s (60 s) this short run writes no checkpoint before its
  // last epoch: killed after epoch 2, it starts again from scratch and still ends the same.
  const fs::path unsaved = dir.path() / "unsaved.h5";
  r = patchbay::test::run("PATCHBAY_TEST_KILL_AFTER_EPOCH=2 " + cli() + " run " + quoted(exp) +
                          " --results " + quoted(unsaved));
  CHECK(r.code != 0);
  const patchbay::ResultsStore unsaved_store(unsaved);
  CHECK_FALSE(fs::exists(unsaved_store.run_dir(ids[0]) / "checkpoint.pt"));
  r = patchbay::test::run(cli() + " run " + quoted(exp) + " --results " + quoted(unsaved));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  CHECK(fs::exists(unsaved_store.run_dir(ids[0]) / "checkpoint.pt"));  // the last epoch's
  rec = unsaved_store.read_run(ids[0]);
  REQUIRE(rec.has_value());
  CHECK(rec->attempts == 2);
  REQUIRE(rec->curves.size() == 4);
  CHECK(rec->curves[3].train_loss == reference->curves[3].train_loss);
  CHECK(rec->final.at("test_accuracy") == reference->final.at("test_accuracy"));

  // kill -9 while a file is being replaced (issue "faults"): the temporary is complete, the
  // rename has not happened. The checkpoint of epoch 3 dies mid-write: epoch 2's survives and
  // the rerun resumes from it, ending as the straight run.
  const fs::path torn = dir.path() / "torn.h5";
  r = patchbay::test::run("PATCHBAY_TEST_KILL_WRITING=checkpoint:3 " + cli() + " run " + quoted(exp) +
                          " train.checkpoint_every_s=0 --results " + quoted(torn));
  CHECK(r.code != 0);
  const patchbay::ResultsStore torn_store(torn);
  size_t leftovers = 0;
  for (const auto& e : fs::directory_iterator(torn_store.run_dir(ids[0]))) {
    leftovers += e.path().filename().string().rfind(".checkpoint.pt.tmp-", 0) == 0;
  }
  CHECK(leftovers == 1);  // the dead writer's temporary, swept by the next run
  r = patchbay::test::run(cli() + " run " + quoted(exp) + " --results " + quoted(torn));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  rec = torn_store.read_run(ids[0]);
  REQUIRE(rec.has_value());
  CHECK(rec->attempts == 2);
  REQUIRE(rec->curves.size() == 4);
  CHECK(rec->curves[3].train_loss == reference->curves[3].train_loss);
  CHECK(rec->final.at("test_accuracy") == reference->final.at("test_accuracy"));
  for (const auto& e : fs::directory_iterator(torn_store.run_dir(ids[0]))) {
    CHECK_MESSAGE(e.path().filename().string().find(".tmp-") == std::string::npos, e.path());
  }
  // The host dies publishing R for the second time: the first R stays readable by h5py.
  const fs::path half = dir.path() / "half.h5";
  r = patchbay::test::run("PATCHBAY_TEST_KILL_WRITING='results file:2' " + cli() + " run " + quoted(exp) +
                          " --results " + quoted(half));
  CHECK(r.code != 0);
  CHECK(h5_attr(half, "f['table/status'].asstr()[0]") == "PLANNED");
  r = patchbay::test::run(cli() + " run " + quoted(exp) + " --results " + quoted(half));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  CHECK(h5_attr(half, "f['table/status'].asstr()[0]") == "COMPLETED");
}

TEST_CASE("cli: editing the experiment file during a sweep changes none of the planned runs") {
  patchbay::test::TempDir dir;
  const fs::path exp = write_experiment(dir.path(), 8, "\n[sweep]\nseeds = [0, 1]\n");
  const fs::path results = dir.path() / "edit.h5";
  const std::string command = cli() + " run " + quoted(exp) + " --results " + quoted(results) +
                              " >" + quoted(dir.path() / "out.txt") + " 2>&1";
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  // As soon as the first worker has started, replace the file with one that does not parse.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool started = false;
  while (!started && std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(fs::path(results.string() + ".runs"), ec)) {
      started = started || fs::exists(e.path() / "run.h5");
    }
    if (!started) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(started);
  std::ofstream(exp) << "this is = not [ an experiment\n";
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  std::ifstream in(dir.path() / "out.txt");
  const std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK_MESSAGE(WIFEXITED(status), out);
  CHECK_MESSAGE(WEXITSTATUS(status) == 0, out);
  CHECK_MESSAGE(out.find("2 of 2 runs COMPLETED") != std::string::npos, out);

  // A worker started with exec (PATCHBAY_WORKER_EXEC=1) reads the file again: a file that now
  // plans other runs than the recorded ones is refused rather than trained, even when the
  // worker's own run is still among them (lr 0.003 -> 0.004 changes every id but the plan's
  // size; a third seed keeps the first two ids).
  const std::string id = patchbay::ResultsStore(results).read_experiment().value().run_ids.front();
  const fs::path again = write_experiment(dir.path(), 8, "\n[sweep]\nseeds = [0, 1, 2]\n");
  auto r = patchbay::test::run(cli() + " run-worker " + quoted(again) + " --results " + quoted(results) +
                               " --run " + id);
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("run.experiment_changed") != std::string::npos, r.err);
}

TEST_CASE("cli: with --jobs 1 the next run starts once a worker has written its run, not when it exits") {
  patchbay::test::TempDir dir;
  const fs::path exp = write_experiment(dir.path(), 1, "\n[sweep]\nseeds = [0, 1]\n");
  const fs::path results = dir.path() / "overlap.h5";
  // Each worker lingers 4 s after saying it is done, as a slow teardown would.
  const auto r = patchbay::test::run("PATCHBAY_TEST_EXIT_DELAY_MS=4000 " + cli() + " run " + quoted(exp) +
                                     " --results " + quoted(results) + " --jobs 1 --quiet");
  REQUIRE_MESSAGE(r.code == 0, r.err);
  const patchbay::ResultsStore store(results);
  const auto ids = store.read_experiment().value().run_ids;
  REQUIRE(ids.size() == 2);
  const auto seconds = [](const std::string& utc) {
    std::tm tm{};
    REQUIRE(strptime(utc.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm) != nullptr);
    return static_cast<double>(timegm(&tm));
  };
  auto a = store.read_run(ids[0]).value(), b = store.read_run(ids[1]).value();
  if (seconds(b.started) < seconds(a.started)) std::swap(a, b);
  CHECK((a.status == patchbay::RunStatus::completed && b.status == patchbay::RunStatus::completed));
  // Waiting for the first worker's exit would put 4 s between them (timestamps have 1 s steps).
  CHECK_MESSAGE(seconds(b.started) - seconds(a.finished) <= 2.0, a.finished, " -> ", b.started);
}

TEST_CASE("cli: run --reuse copies runs another experiment finished with the same configuration") {
  patchbay::test::TempDir dir;
  // Study A: seeds 0 and 1, trained.
  const fs::path a = write_experiment(dir.path(), 2, "\n[sweep]\nseeds = [0, 1]\n");
  fs::rename(a, dir.path() / "a.toml");
  const fs::path a_results = dir.path() / "a.h5";
  auto r = patchbay::test::run(cli() + " run " + quoted(dir.path() / "a.toml") + " --quiet --results " + quoted(a_results));
  REQUIRE_MESSAGE(r.code == 0, r.err);
  // Study B, another name and description, 2 threads: seed 1 as in A (reused), and a
  // learning rate A never ran (trained).
  std::ifstream a_in(dir.path() / "a.toml");
  std::string text((std::istreambuf_iterator<char>(a_in)), std::istreambuf_iterator<char>());
  text.replace(text.find("name = \"tiny\""), 13, "name = \"other\"\ndescription = \"B\"");
  text.replace(text.find("seeds = [0, 1]"), 14, "seeds = [1]\n\"train.lr\" = [0.003, 0.001]");
  text.replace(text.find("threads = 1"), 11, "threads = 2");
  std::ofstream(dir.path() / "b.toml") << text;
  const fs::path b_results = dir.path() / "b.h5";
  r = patchbay::test::run(cli() + " run " + quoted(dir.path() / "b.toml") + " --results " +
                          quoted(b_results) + " --reuse " + quoted(a_results));
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK_MESSAGE(r.out.find("1 completed before (1 reused), 1 to do") != std::string::npos, r.out);
  CHECK(r.out.find("REUSED") != std::string::npos);

  const patchbay::ResultsStore sa(a_results), sb(b_results);
  const auto a_ids = sa.read_experiment().value().run_ids;
  const auto b_ids = sb.read_experiment().value().run_ids;
  REQUIRE(a_ids.size() == 2);
  REQUIRE(b_ids.size() == 2);
  // The same configuration has the same hash (the part of the id before '-').
  const auto hash = [](const std::string& id) { return id.substr(0, id.find('-')); };
  const auto source = sa.read_run(a_ids[1]).value();
  std::optional<patchbay::RunRecord> copied, trained;
  for (const auto& id : b_ids) {
    auto rec = sb.read_run(id).value();
    (hash(id) == hash(a_ids[1]) ? copied : trained) = rec;
  }
  REQUIRE(copied.has_value());
  REQUIRE(trained.has_value());
  CHECK(copied->status == patchbay::RunStatus::completed);
  CHECK(copied->reused_from == a_results.string() + "#" + a_ids[1]);
  CHECK(copied->final.at("test_accuracy") == source.final.at("test_accuracy"));
  CHECK(copied->curves.size() == source.curves.size());
  CHECK(copied->started == source.started);
  CHECK(copied->config_toml.find("name = \"other\"") != std::string::npos);
  CHECK(fs::exists(sb.run_dir(copied->id) / "checkpoint.pt"));
  CHECK(trained->status == patchbay::RunStatus::completed);
  CHECK(trained->reused_from.empty());
  CHECK(h5_attr(b_results, "f['runs/" + copied->id + "'].attrs['reused_from']") == copied->reused_from);

  // Nothing comparable: a file without such runs reuses nothing; a missing file is an error.
  r = patchbay::test::run(cli() + " run " + quoted(dir.path() / "a.toml") + " train.epochs=1 --quiet --results " +
                          quoted(dir.path() / "c.h5") + " --reuse " + quoted(b_results));
  REQUIRE_MESSAGE(r.code == 0, r.err);
  const patchbay::ResultsStore sc(dir.path() / "c.h5");
  const auto c_ids = sc.read_experiment().value().run_ids;
  CHECK(c_ids.size() == 2);
  for (const auto& id : c_ids) CHECK(sc.read_run(id).value().reused_from.empty());
  // A run trained by another version of a plugin is not the same run: A's records edited to
  // say so, B's plan again into a fresh file reuses nothing.
  fs::copy_file(a_results, dir.path() / "old.h5");
  r = patchbay::test::run("/usr/bin/python3 -c \"import h5py; f = h5py.File('" + (dir.path() / "old.h5").string() +
                          "', 'r+'); [g.attrs.__setitem__('config', g.attrs['config'].replace('plugin_version = ', "
                          "'plugin_version = \\\"0.0.1-old\\\" # ')) for g in f['runs'].values()]\"");
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK(h5_attr(dir.path() / "old.h5", "list(f['runs'].values())[0].attrs['config'].count('0.0.1-old')") != "0");
  r = patchbay::test::run(cli() + " run " + quoted(dir.path() / "b.toml") + " --results " +
                          quoted(dir.path() / "d.h5") + " --reuse " + quoted(dir.path() / "old.h5"));
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK_MESSAGE(r.out.find("0 completed before, 2 to do") != std::string::npos, r.out);
  r = patchbay::test::run(cli() + " run " + quoted(dir.path() / "a.toml") + " --results " + quoted(a_results) +
                          " --reuse " + quoted(dir.path() / "nope.h5"));
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("no results file") != std::string::npos, r.err);
}

TEST_CASE("cli: a diverging run is recorded FAILED with the reason and the step; the sweep goes on") {
  patchbay::test::TempDir dir;
  // The completed run also exercises mixup on waveforms (AST's way).
  const fs::path exp = write_experiment(dir.path(), 2, "mixup_on = \"waveform\"\n\n[sweep]\n\"train.lr\" = [1e30, 0.003]\n");
  const fs::path results = dir.path() / "nan.h5";
  auto r = patchbay::test::run(cli() + " run " + quoted(exp) + " --jobs 2 --results " + quoted(results));
  CHECK(r.code == 1);
  CHECK(r.out.find("FAILED") != std::string::npos);
  CHECK(r.out.find("training loss became") != std::string::npos);
  CHECK(r.out.find("1 of 2 runs COMPLETED, 1 FAILED") != std::string::npos);
  const patchbay::ResultsStore store(results);
  const auto ids = store.read_experiment().value().run_ids;
  REQUIRE(ids.size() == 2);
  const auto failed = store.read_run(ids[0]);
  REQUIRE(failed.has_value());
  CHECK(failed->status == patchbay::RunStatus::failed);
  CHECK(failed->failed_step >= 1);
  CHECK(store.read_run(ids[1])->status == patchbay::RunStatus::completed);
  CHECK(h5_attr(results, "f['runs/" + ids[0] + "'].attrs['status']") == "FAILED");
  CHECK(h5_attr(results, "list(f['summary/test_accuracy'].shape)") == "[2]");

  // The report lists both, explains the failure, and draws its plots.
  const fs::path out = dir.path() / "report";
  r = patchbay::test::run(cli() + " report " + quoted(results) + " --out " + quoted(out));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  std::ifstream md_in(out / "report.md");
  std::stringstream md;
  md << md_in.rdbuf();
  CHECK(md.str().find(ids[1]) != std::string::npos);
  CHECK(md.str().find("## Failed runs") != std::string::npos);
  CHECK(md.str().find("training loss became") != std::string::npos);
  CHECK(md.str().find("train.lr=0.003") != std::string::npos);
  // The swept key's values label the vertical axis; the completed run's accuracy is its mean.
  std::ifstream axis_gp(out / "metric_vs_train.lr.gp");
  std::stringstream axis_script;
  axis_script << axis_gp.rdbuf();
  CHECK_MESSAGE(axis_script.str().find("set ytics (\"0.003\" 0)") != std::string::npos, axis_script.str());
  std::ifstream axis_dat(out / "axis_train.lr.dat");
  std::stringstream axis_data;
  axis_data << axis_dat.rdbuf();
  CHECK_MESSAGE(axis_data.str().find("# means: level metric\n0 " +
                                     fmt::format("{}", store.read_run(ids[1])->final.at("test_accuracy"))) !=
                    std::string::npos,
                axis_data.str());
  for (const char* png : {"metric_vs_gmacs.png", "metric_vs_train.lr.png", "curves.png"}) {
    CAPTURE(png);
    std::ifstream in(out / png, std::ios::binary);
    char magic[8] = {0};
    in.read(magic, 8);
    CHECK(std::string(magic + 1, 3) == "PNG");
    CHECK(fs::file_size(out / png) > 2000);
  }
  // Not a results file: a clear error.
  std::ofstream(dir.path() / "x.h5") << "nope";
  r = patchbay::test::run(cli() + " report " + quoted(dir.path() / "x.h5"));
  CHECK(r.code == 1);
  CHECK(r.err.find("cannot read results file") != std::string::npos);
}
}

TEST_SUITE("cli") {
TEST_CASE("cli: every experiment file in experiments/ plans, every claims file reads") {
  size_t files = 0, claims = 0;
  for (const auto& e : fs::recursive_directory_iterator(fs::path(patchbay::test::kSourceDir) / "experiments")) {
    if (e.path().extension() != ".toml") continue;
    CAPTURE(e.path().string());
    if (e.path().filename() == "claims.toml") {
      // Read from the repository root, which its results paths are relative to; a claim
      // whose results are not there is pending, not an error.
      ++claims;
      const auto r = patchbay::test::run("cd " + quoted(patchbay::test::kSourceDir) + " && " + cli() + " claims " +
                                         quoted(e.path()) + " --json --bootstrap 100");
      CHECK_MESSAGE(r.code == 0, r.err);
      continue;
    }
    ++files;
    const auto r = patchbay::test::run(cli() + " plan " + quoted(e.path()) + " --json");
    CHECK_MESSAGE(r.code == 0, r.err);
  }
  CHECK(files >= 7);
  CHECK(claims >= 1);
}
TEST_CASE("cli: export writes the runs and their curves as CSV that pandas reads back as recorded") {
  patchbay::test::TempDir dir;
  // A FAILED run (no test metrics, a reason to quote) beside a COMPLETED one.
  // Two keys swept together: the point's name holds a comma, so the quoting is exercised.
  const fs::path exp = write_experiment(dir.path(), 2, "\n[sweep.zip.pair]\n\"train.lr\" = [1e30, 0.003]\n"
                                                       "\"train.mixup\" = [0.5, 0.25]\n");
  const fs::path results = dir.path() / "r.h5";
  auto r = patchbay::test::run(cli() + " run " + quoted(exp) + " --results " + quoted(results));
  REQUIRE(r.code == 1);
  const fs::path runs = dir.path() / "runs.csv", curves = dir.path() / "curves.csv";
  r = patchbay::test::run(cli() + " export " + quoted(results) + " --csv " + quoted(runs) + " --curves " +
                          quoted(curves));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  CHECK(r.out.find("2 rows") != std::string::npos);
  const auto json = patchbay::test::run(cli() + " export " + quoted(results) + " --csv " + quoted(runs) + " --json");
  CHECK_MESSAGE(json.out.find("\"runs\":{\"columns\":") == 1, json.out);
  CHECK_MESSAGE(json.out.find("\"rows\":2}") != std::string::npos, json.out);
  const patchbay::ResultsStore store(results);
  const auto ids = store.read_experiment().value().run_ids;
  const auto failed = store.read_run(ids[0]).value(), done = store.read_run(ids[1]).value();
  std::ofstream(dir.path() / "check.py") << fmt::format(
      "import math, sys\nimport pandas as pd\n"
      "runs, curves = pd.read_csv(sys.argv[1]), pd.read_csv(sys.argv[2])\n"
      "assert list(runs['id']) == ['{}', '{}'], runs['id']\n"
      "assert list(runs['status']) == ['FAILED', 'COMPLETED']\n"
      "assert runs['reason'][0] == open(sys.argv[3]).read(), runs['reason'][0]\n"
      "assert list(runs['train.lr']) == [1e30, 0.003]\n"
      "assert runs['patcher.plugin'][1] == 'fftp' and runs['patcher.stride'][1] == 8\n"
      "assert runs['point'][1] == 'train.lr=0.003, train.mixup=0.25', runs['point'][1]\n"
      "assert list(runs['train.mixup']) == [0.5, 0.25]\n"
      "assert math.isnan(runs['test_accuracy'][0])\n"
      "assert runs['test_accuracy'][1] == {} and runs['paper_macs'][1] == {}\n"
      "assert list(runs['epochs_done']) == [{}, 2]\n"
      "assert list(curves.groupby('id').size().reindex(runs['id'], fill_value=0)) == list(runs['epochs_done'])\n"
      "assert list(curves[curves['id'] == '{}']['valid_accuracy']) == [{}, {}]\n"
      "print('ok')\n",
      ids[0], ids[1], done.final.at("test_accuracy"), done.final.at("paper_macs"),
      failed.curves.size(), ids[1], done.curves.at(0).valid_accuracy, done.curves.at(1).valid_accuracy);
  std::ofstream(dir.path() / "reason.txt") << failed.reason;
  r = patchbay::test::run("/usr/bin/python3 " + quoted(dir.path() / "check.py") + " " + quoted(runs) + " " +
                          quoted(curves) + " " + quoted(dir.path() / "reason.txt"));
  CHECK_MESSAGE(r.out == "ok\n", (r.out + r.err));

  // To standard output, the table alone; without a target, a usage error.
  r = patchbay::test::run(cli() + " export " + quoted(results) + " --csv -");
  REQUIRE(r.code == 0);
  std::ifstream in(runs);
  std::stringstream written;
  written << in.rdbuf();
  CHECK(r.out == written.str());
  r = patchbay::test::run(cli() + " export " + quoted(results));
  CHECK(r.code == 2);
  CHECK(r.err.find("nothing to export") != std::string::npos);
  r = patchbay::test::run(cli() + " export " + quoted(dir.path() / "none.h5") + " --csv " + quoted(runs));
  CHECK(r.code == 1);
  CHECK(r.err.find("none.h5") != std::string::npos);
}

TEST_CASE("cli: a sweep onto a full disk stops with io.disk_full, keeps readable results and resumes") {
  patchbay::test::TempDir dir;
  const fs::path exp = write_experiment(dir.path(), 3, "seed = 0\n");
  std::ofstream(exp, std::ios::app) << "\n[sweep]\nseeds = [0, 1]\n";
  const fs::path straight = dir.path() / "straight.h5";
  auto r = patchbay::test::run(cli() + " run " + quoted(exp) + " --results " + quoted(straight));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));

  const fs::path disk = dir.path() / "disk";
  fs::create_directories(disk);
  if (::geteuid() != 0 || ::mount("tmpfs", disk.c_str(), "tmpfs", 0, "size=96k") != 0) {
    MESSAGE("skipped: mounting a small tmpfs needs root (this test fills a disk on purpose)");
    return;
  }
  struct Unmount {
    fs::path p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{disk};
  const fs::path full = disk / "r.h5";
  r = patchbay::test::run(cli() + " run " + quoted(exp) + " --results " + quoted(full));
  CAPTURE(r.out + r.err);
  CHECK(r.code == 1);  // an error, not a crash (a signal would be 128 + n)
  CHECK(r.err.find("io.disk_full") != std::string::npos);
  CHECK(r.err.find("no space left") != std::string::npos);
  CHECK(r.err.find("internal") == std::string::npos);
  if (fs::exists(full)) CHECK(h5_attr(full, "len(f['runs'])") == "2");  // whatever was published opens
  for (const auto& e : fs::recursive_directory_iterator(disk)) {  // nothing keeps the disk full
    CHECK_MESSAGE(e.path().filename().string().find(".tmp-") == std::string::npos, e.path().string());
  }

  // Room again: the same command finishes the sweep, sweeps its temporaries away and ends as
  // the run on a disk that never filled.
  REQUIRE(::mount("tmpfs", disk.c_str(), "tmpfs", MS_REMOUNT, "size=64m") == 0);
  r = patchbay::test::run(cli() + " run " + quoted(exp) + " --results " + quoted(full));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  for (const auto& e : fs::recursive_directory_iterator(disk)) {
    CHECK_MESSAGE(e.path().filename().string().find(".tmp-") == std::string::npos, e.path().string());
  }
  const patchbay::ResultsStore store(full), reference(straight);
  const auto ids = store.read_experiment().value().run_ids;
  REQUIRE(ids.size() == 2);
  for (const auto& id : ids) {
    CAPTURE(id);
    const auto rec = store.read_run(id), ref = reference.read_run(id);
    REQUIRE(rec.has_value());
    REQUIRE(ref.has_value());
    CHECK(rec->status == patchbay::RunStatus::completed);
    CHECK(rec->final.at("test_accuracy") == ref->final.at("test_accuracy"));
    CHECK(rec->final.at("test_loss") == ref->final.at("test_loss"));
  }
}

TEST_CASE("cli: a sweep over dataset.fold is one cross-validated point, compared over every fold's clips") {
  patchbay::test::TempDir dir;
  // 3 folds of 2, 3 and 4 tones per class, two classes: 18 clips, each tested in exactly one
  // fold. Unequal folds make the mean of the folds' metrics differ from the pooled metric.
  std::ofstream manifest(dir.path() / "folds.csv");
  manifest << "path,labels,fold\n";
  for (int fold = 1; fold <= 3; ++fold) {
    for (int k = 0; k < fold + 1; ++k) {
      const std::string low = fmt::format("low{}{}.wav", fold, k), high = fmt::format("high{}{}.wav", fold, k);
      patchbay::datasets::write_tone_wav(dir.path() / low, 220.0 + 30.0 * k + fold, 0.3);
      patchbay::datasets::write_tone_wav(dir.path() / high, 2600.0 + 90.0 * k + fold, 0.3);
      manifest << low << ",low," << fold << "\n" << high << ",high," << fold << "\n";
    }
  }
  manifest.close();
  const fs::path exp = dir.path() / "folds.toml";
  std::ofstream(exp) << "[dataset]\nplugin = \"folder\"\nmanifest = \"folds.csv\"\n\n"
                     << "[frontend]\nnum_mel_bins = 32\ntarget_frames = 32\n\n"
                     << "[patcher]\nplugin = \"fftp\"\npatch_frames = 8\nstride = 8\n\n"
                     << "[backbone]\nplugin = \"linear_probe\"\nembed_dim = 16\n\n"
                     << "[train]\nepochs = 2\nbatch_size = 4\nlr = 0.003\nthreads = 1\n\n"
                     << "[sweep]\n\"patcher.stride\" = [4, 8]\n\"dataset.fold\" = [1, 2, 3]\n";
  const fs::path results = dir.path() / "r.h5";
  auto r = patchbay::test::run(cli() + " run " + quoted(exp) + " --results " + quoted(results));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  // Each run tested its own fold's clips: 4, 6 or 8.
  const patchbay::ResultsStore store(results);
  const auto experiment = store.read_experiment();
  REQUIRE(experiment.has_value());
  CHECK(experiment->run_ids.size() == 6);
  for (const auto& id : experiment->run_ids) {
    const auto run = store.read_run(id).value();
    const auto fold = std::find_if(run.axes.begin(), run.axes.end(), [](const auto& a) { return a.first == "dataset.fold"; });
    REQUIRE(fold != run.axes.end());
    CHECK(run.test_clip_ids.size() == static_cast<size_t>(2 * (std::stoi(fold->second) + 1)));
  }
  // Two points (the strides) of 3 runs (the folds), paired over all 18 clips.
  r = patchbay::test::run(cli() + " compare " + quoted(results) + " 1 2 --json --bootstrap 200");
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  CHECK_MESSAGE(r.out.find("\"common_clips\": 18") != std::string::npos, r.out);
  CHECK_MESSAGE(r.out.find("\"name\": \"patcher.stride=4\"") != std::string::npos, r.out);
  CHECK_MESSAGE(r.out.find("\"runs\": 3") != std::string::npos, r.out);
  CHECK_MESSAGE(r.out.find("\"note\": \"\"") != std::string::npos, r.out);
  // The paired estimate is the difference of the points' means over their folds (each fold
  // scored on its own clips), not a metric of the pooled predictions.
  const auto json = nlohmann::json::parse(r.out);
  CHECK(json.at("difference").get<double>() ==
        doctest::Approx(json.at("a").at("mean").get<double>() - json.at("b").at("mean").get<double>()).epsilon(1e-9));
  r = patchbay::test::run(cli() + " report " + quoted(results) + " --bootstrap 200");
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
}
}

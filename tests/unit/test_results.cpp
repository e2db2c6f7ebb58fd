// The results store: run files round-trip, the published file's table and summary grids,
// atomic replacement, and the lock.
#include <doctest/doctest.h>

#include <sys/mount.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "helpers.hpp"
#include "patchbay/error.hpp"
#include "patchbay/results.hpp"

namespace fs = std::filesystem;

namespace {

patchbay::RunRecord make_run(const std::string& id, const std::string& stride, int64_t seed,
                             patchbay::RunStatus status, double accuracy) {
  patchbay::RunRecord r;
  r.id = id;
  r.slug = "stride" + stride + "_s" + std::to_string(seed);
  r.axes = {{"patcher.stride", stride}, {"train.seed", std::to_string(seed)}};
  r.status = status;
  r.seed = seed;
  r.config_toml = "[train]\nseed = " + std::to_string(seed) + "\n";
  for (int e = 1; e <= 2; ++e) {
    patchbay::EpochRow row;
    row.epoch = e;
    row.step = 10 * e;
    row.train_loss = 1.0 / e;
    row.valid_accuracy = accuracy * e / 2;
    r.curves.push_back(row);
  }
  if (status == patchbay::RunStatus::completed) {
    r.final["test_accuracy"] = accuracy;
    r.final["paper_macs"] = 1e6;
  }
  r.class_names = {"a", "b"};
  r.test_ap_per_class = {0.5, std::nan("")};
  r.skipped_clips = {"x.wav: empty"};
  return r;
}

patchbay::ExperimentRecord make_experiment(const std::vector<patchbay::RunRecord>& runs) {
  patchbay::ExperimentRecord e;
  e.name = "grid";
  e.file = "grid.toml";
  e.text = "[sweep]\n";
  for (const auto& r : runs) {
    e.run_ids.push_back(r.id);
    e.slugs.push_back(r.slug);
    e.axes.push_back(r.axes);
  }
  return e;
}

// Two COMPLETED runs written to `store` and published.
std::vector<patchbay::RunRecord> publish_two_runs(const patchbay::ResultsStore& store) {
  std::vector<patchbay::RunRecord> runs = {make_run("a-stride4_s0", "4", 0, patchbay::RunStatus::completed, 0.5),
                                           make_run("b-stride8_s0", "8", 0, patchbay::RunStatus::completed, 0.6)};
  for (const auto& r : runs) store.write_run(r);
  store.publish(make_experiment(runs));
  return runs;
}

// A small tmpfs mounted on `dir` for as long as it lives (root only; `ok` says whether it is).
struct SmallDisk {
  explicit SmallDisk(const fs::path& dir, const char* size) : dir_(dir) {
    fs::create_directories(dir);
    ok = ::geteuid() == 0 && ::mount("tmpfs", dir.c_str(), "tmpfs", 0, (std::string("size=") + size).c_str()) == 0;
  }
  ~SmallDisk() {
    if (ok) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool ok = false;

 private:
  fs::path dir_;
};

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("results: a full disk is named, and the last good files stay readable") {
  patchbay::test::TempDir dir;
  SmallDisk disk(dir.path() / "disk", "1m");
  if (!disk.ok) {
    MESSAGE("skipped: mounting a small tmpfs needs root (this test fills a disk on purpose)");
    return;
  }
  const patchbay::ResultsStore store(dir.path() / "disk" / "r.h5");
  auto run = make_run("aaaa1111-s0", "4", 0, patchbay::RunStatus::completed, 0.5);
  const auto exp = make_experiment({run});
  store.write_run(run);
  store.publish(exp);
  // A record too big for the disk (3 MB of predictions on a 1 MB disk).
  auto big = run;
  big.test_clip_ids.assign(100000, "clip");
  big.test_logits.assign(big.test_clip_ids.size() * 8, 0.5f);
  big.test_targets.assign(big.test_logits.size(), 0);
  try {
    store.write_run(big);
    FAIL("writing 3 MB to a 1 MB disk succeeded");
  } catch (const patchbay::Error& e) {
    CHECK(std::string(e.id()) == "io.disk_full");
    CHECK(std::string(e.what()).find("no space left") != std::string::npos);
    CHECK(std::string(e.what()).find("run.h5") != std::string::npos);
  }
  // The previous record and the published file are intact; no temporary keeps the disk full.
  CHECK(store.read_run(run.id)->test_clip_ids.empty());
  CHECK(patchbay::read_results(store.file()).runs.at(0).final.at("test_accuracy") == 0.5);
  for (const auto& e : fs::recursive_directory_iterator(dir.path() / "disk")) {
    CHECK_MESSAGE(e.path().filename().string().find(".tmp-") == std::string::npos, e.path().string());
  }
  // Publishing an experiment too big for the disk fails the same way and keeps the old file.
  auto huge = exp;
  huge.text.assign(3 << 20, '#');
  CHECK_THROWS_WITH_AS(store.publish(huge), doctest::Contains("no space left"), patchbay::Error);
  CHECK(patchbay::read_results(store.file()).experiment.text == exp.text);
}

TEST_CASE("results: a run file round-trips, and is replaced atomically") {
  patchbay::test::TempDir dir;
  const patchbay::ResultsStore store(dir.path() / "r.h5");
  CHECK_FALSE(store.read_run("nope").has_value());
  auto run = make_run("aaaa-stride4_s0", "4", 0, patchbay::RunStatus::completed, 0.75);
  run.test_clip_ids = {"a.wav", "b.wav"};
  run.test_logits = {0.5f, -1.0f, 2.0f, 0.25f};
  run.test_targets = {1, 0, 0, 1};
  store.write_run(run);
  store.write_run(run);  // replacing works
  const auto back = store.read_run(run.id);
  REQUIRE(back.has_value());
  CHECK(back->slug == run.slug);
  CHECK(back->status == patchbay::RunStatus::completed);
  CHECK(back->curves.size() == 2);
  CHECK(back->curves[1].step == 20);
  CHECK(back->curves[1].valid_accuracy == doctest::Approx(0.75));
  CHECK(back->final.at("test_accuracy") == 0.75);
  CHECK(back->class_names == run.class_names);
  CHECK(std::isnan(back->test_ap_per_class[1]));
  CHECK(back->skipped_clips == run.skipped_clips);
  CHECK(back->test_clip_ids == run.test_clip_ids);
  CHECK(back->test_logits == run.test_logits);
  CHECK(back->test_targets == run.test_targets);
  CHECK(back->axes.size() == 2);
  // No temp file is left behind.
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(store.run_dir(run.id))) {
    (void)e;
    ++files;
  }
  CHECK(files == 1);

  // A damaged run file is reported with what to do.
  std::ofstream(store.run_dir(run.id) / "run.h5") << "garbage";
  try {
    (void)store.read_run(run.id);
    FAIL("expected results.corrupt");
  } catch (const patchbay::Error& e) {
    CHECK(e.id() == "results.corrupt");
    CHECK(std::string(e.what()).find("delete it") != std::string::npos);
  }
  // Publishing lists a run whose file is damaged as PLANNED (it will be redone).
  store.publish(make_experiment({run}));
  const auto published = patchbay::read_results(store.file());
  REQUIRE(published.runs.size() == 1);
  CHECK(published.runs[0].status == patchbay::RunStatus::planned);
}

TEST_CASE("results: publish builds the table and summary grids from the run files") {
  patchbay::test::TempDir dir;
  const patchbay::ResultsStore store(dir.path() / "sub" / "r.h5");
  std::vector<patchbay::RunRecord> runs = {
      make_run("a-stride4_s0", "4", 0, patchbay::RunStatus::completed, 0.5),
      make_run("b-stride8_s0", "8", 0, patchbay::RunStatus::completed, 0.6),
      make_run("c-stride4_s1", "4", 1, patchbay::RunStatus::failed, 0.0),
      make_run("d-stride8_s1", "8", 1, patchbay::RunStatus::planned, 0.0),
  };
  for (size_t i = 0; i < 3; ++i) store.write_run(runs[i]);  // d has no file yet
  store.publish(make_experiment(runs));
  REQUIRE(fs::exists(store.file()));
  const auto exp = store.read_experiment();
  REQUIRE(exp.has_value());
  CHECK(exp->run_ids.size() == 4);
  CHECK(exp->name == "grid");
  CHECK(exp->text == "[sweep]\n");
  // h5py sees the table, the grid with its dimension scales, and the planned run.
  const std::string py =
      "import h5py, math\n"
      "f = h5py.File('" + store.file().string() + "', 'r')\n"
      "t = f['table']\n"
      "print(list(t['status'].asstr()[()]))\n"
      "print(t['patcher.stride'][()].tolist())\n"  // tolist: numpy 2 prints np.float64(4.0) in a list
      "g = f['summary/test_accuracy']\n"
      "print(g.shape, [d.label for d in g.dims])\n"
      "print([[None if math.isnan(x) else x for x in row] for row in g[()].tolist()])\n"
      "print(g.dims[0][0][()].tolist())\n"
      "print(f['runs/d-stride8_s1'].attrs['status'])\n"
      "print(f.attrs['schema'], f.attrs['schema_version'])\n";
  std::ofstream(dir.path() / "check.py") << py;
  const auto r = patchbay::test::run("/usr/bin/python3 '" + (dir.path() / "check.py").string() + "'");
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK(r.out ==
        "['COMPLETED', 'COMPLETED', 'FAILED', 'PLANNED']\n"
        "[4.0, 8.0, 4.0, 8.0]\n"
        "(2, 2) ['patcher.stride', 'train.seed']\n"
        "[[0.5, None], [0.6, None]]\n"
        "[4.0, 8.0]\n"
        "PLANNED\n"
        "patchbay.results 1\n");

  // The record read back has no axes (they live in the runs): publishing it again takes the
  // run files' own (every run but d, which has no file) instead of reading past its end.
  store.publish(*exp);
  const auto again = patchbay::test::run("/usr/bin/python3 -c \"import h5py; t = h5py.File('" + store.file().string() +
                                         "', 'r')['table']; print(t['patcher.stride'][()].tolist(), list(t['status'].asstr()[()]))\"");
  REQUIRE_MESSAGE(again.code == 0, again.err);
  CHECK(again.out.find("[4.0, 8.0, 4.0, nan] ['COMPLETED', 'COMPLETED', 'FAILED', 'PLANNED']") == 0);
}

TEST_CASE("results: a damaged R.h5 is set aside and rebuilt from the run files, identical") {
  // issue "faults" 3: a corrupt R.h5 blocked `run` and `report` although every run file was
  // intact; deleting it by hand rebuilt it. Now `run` does that itself (set_aside_unreadable).
  patchbay::test::TempDir dir;
  const patchbay::ResultsStore store(dir.path() / "r.h5");
  const auto runs = publish_two_runs(store);
  CHECK_FALSE(store.set_aside_unreadable().has_value());  // readable: left alone
  const auto before = patchbay::read_results(store.file());

  {  // damage it: the first KB overwritten
    std::fstream f(store.file(), std::ios::in | std::ios::out | std::ios::binary);
    const std::string junk(1024, 'x');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  CHECK_THROWS_WITH_AS((void)patchbay::read_results(store.file()),
                       doctest::Contains("rebuilds the file from the runs' own files"), patchbay::Error);
  const auto aside = store.set_aside_unreadable();
  REQUIRE(aside.has_value());
  CHECK(fs::exists(*aside));  // kept, for whoever wants to look at it
  CHECK_FALSE(fs::exists(store.file()));
  CHECK(aside->filename().string().rfind("r.h5.unreadable-", 0) == 0);
  store.publish(make_experiment(runs));
  const auto after = patchbay::read_results(store.file());
  REQUIRE(after.runs.size() == before.runs.size());
  for (size_t i = 0; i < after.runs.size(); ++i) {
    CHECK(after.runs[i].id == before.runs[i].id);
    CHECK(after.runs[i].final == before.runs[i].final);
  }
  // A file that is not HDF5 at all is set aside too.
  std::ofstream(store.file(), std::ios::trunc) << "not hdf5";
  CHECK(store.set_aside_unreadable().has_value());
}

TEST_CASE("results: a --results path that is not patchbay's is refused, and nothing is moved") {
  // `run --results` once renamed whatever it was given and could not read: a dataset folder,
  // an experiment file, a weights file. Only a file whose runs folder (R.h5.runs/) says
  // patchbay wrote it is set aside (or an empty one).
  patchbay::test::TempDir dir;
  const auto refused = [](const fs::path& path) {
    try {
      (void)patchbay::ResultsStore(path).set_aside_unreadable();
    } catch (const patchbay::Error& e) {
      return e.id() + ": " + e.what();
    }
    return std::string("accepted");
  };
  fs::create_directories(dir.path() / "data" / "train");
  std::string why = refused(dir.path() / "data");
  CHECK_MESSAGE(why.rfind("results.not_a_file: '", 0) == 0, why);
  CHECK_MESSAGE(why.find("is a folder") != std::string::npos, why);
  CHECK(fs::is_directory(dir.path() / "data" / "train"));

  const fs::path toml = dir.path() / "exp.toml";
  std::ofstream(toml) << "[train]\nlr = 1\n";
  why = refused(toml);
  CHECK_MESSAGE(why.rfind("results.not_results: '", 0) == 0, why);
  CHECK_MESSAGE(why.find("not an HDF5 file") != std::string::npos, why);
  CHECK_MESSAGE(why.find("choose another --results path") != std::string::npos, why);
  std::stringstream text;
  text << std::ifstream(toml).rdbuf();
  CHECK(text.str() == "[train]\nlr = 1\n");

  // An HDF5 file of another kind (as a weights file).
  const fs::path weights = dir.path() / "weights.h5";
  REQUIRE(patchbay::test::run("/usr/bin/python3 -c \"import h5py; h5py.File('" + weights.string() +
                              "', 'w').attrs['format'] = 'patchbay.weights'\"").code == 0);
  const auto size = fs::file_size(weights);
  why = refused(weights);
  CHECK_MESSAGE(why.find("an HDF5 file, but not patchbay results") != std::string::npos, why);
  CHECK(fs::file_size(weights) == size);

  // An empty file (nothing to lose) is set aside.
  std::ofstream(dir.path() / "empty.h5").flush();
  CHECK(patchbay::ResultsStore(dir.path() / "empty.h5").set_aside_unreadable().has_value());
}

TEST_CASE("results: run files are restored from R when none is there, and a kill midway is finished") {
  patchbay::test::TempDir dir;
  const patchbay::ResultsStore store(dir.path() / "r.h5");
  const auto runs = publish_two_runs(store);
  const auto file_of = [&](const std::string& id) { return store.run_dir(id) / "run.h5"; };
  CHECK(store.restore_run_files() == 0);  // every file there
  // One deleted of two: a request to run it again, left deleted.
  fs::remove(file_of("a-stride4_s0"));
  CHECK(store.restore_run_files() == 0);
  CHECK_FALSE(fs::exists(file_of("a-stride4_s0")));
  // None there (R copied alone, or an empty R.runs/): both restored, as R recorded them.
  fs::remove(file_of("b-stride8_s0"));
  CHECK(store.restore_run_files() == 2);
  REQUIRE(store.read_run("a-stride4_s0").has_value());
  CHECK(store.read_run("a-stride4_s0")->final == runs[0].final);
  CHECK(store.read_run("b-stride8_s0")->status == patchbay::RunStatus::completed);
  CHECK_FALSE(fs::exists(dir.path() / "r.h5.restored.runs"));
  // Killed while moving the files into place: the next call moves the rest.
  fs::remove_all(store.runs_dir());
  fs::create_directories(dir.path() / "r.h5.restored.runs" / "b-stride8_s0");
  fs::copy_file(dir.path() / "r.h5", dir.path() / "copy.h5");
  const patchbay::ResultsStore copy(dir.path() / "copy.h5");
  for (const auto& r : runs) copy.write_run(r);
  fs::copy_file(copy.run_dir("b-stride8_s0") / "run.h5", dir.path() / "r.h5.restored.runs" / "b-stride8_s0" / "run.h5");
  store.write_run(runs[0]);  // a's was moved before the kill, its staging folder left empty
  fs::create_directories(dir.path() / "r.h5.restored.runs" / "a-stride4_s0");
  CHECK(store.restore_run_files() == 1);
  CHECK(fs::exists(file_of("b-stride8_s0")));
  CHECK_FALSE(fs::exists(dir.path() / "r.h5.restored.runs"));
}

TEST_CASE("results: the lock refuses a second holder and is released with it") {
  patchbay::test::TempDir dir;
  const patchbay::ResultsStore store(dir.path() / "r.h5");
  {
    const auto lock = store.lock();
    try {
      (void)store.lock();
      FAIL("expected results.locked");
    } catch (const patchbay::Error& e) {
      CHECK(e.id() == "results.locked");
      CHECK(std::string(e.what()).find("--results") != std::string::npos);
    }
  }
  CHECK_NOTHROW((void)store.lock());
}

TEST_CASE("results: taking the lock removes what a killed writer left, nothing else") {
  patchbay::test::TempDir dir;
  const patchbay::ResultsStore store(dir.path() / "r.h5");
  store.write_run(make_run("a-x", "4", 0, patchbay::RunStatus::completed, 0.5));
  const fs::path run_dir = store.run_dir("a-x");
  const std::vector<fs::path> stale = {dir.path() / ".r.h5.tmp-999999", run_dir / ".run.h5.tmp-999999",
                                       run_dir / "checkpoint.pt.tmp"};
  for (const auto& f : stale) std::ofstream(f) << "half-written";
  std::ofstream(dir.path() / "other.h5") << "keep";
  {
    const auto lock = store.lock();
    for (const auto& f : stale) CHECK_FALSE(fs::exists(f));
  }
  CHECK(fs::exists(dir.path() / "other.h5"));
  CHECK(fs::exists(run_dir / "run.h5"));
  CHECK(store.read_run("a-x").has_value());
}
}

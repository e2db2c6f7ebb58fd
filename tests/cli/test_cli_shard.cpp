// Scale-out over Slurm: `run --shard K/N` splits a plan (every run in one shard, balanced,
// stable), `merge` combines shard results (same schema, newest status wins, other
// experiments refused), and `slurm` writes the job-array and merge scripts.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include <fmt/format.h>
#include <sstream>

#include "helpers.hpp"
#include "patchbay/error.hpp"
#include "patchbay/results.hpp"
#include "patchbay/shard.hpp"
#include "test_paths.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string cli() { return std::string("'") + patchbay::test::kCli + "'"; }
std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }
const fs::path kSweep = fs::path(patchbay::test::kSourceDir) / "experiments/examples/sweep.toml";

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> plan_ids(const std::string& args) {
  const auto r = patchbay::test::run(cli() + " plan " + args + " --json");
  REQUIRE_MESSAGE(r.code == 0, r.err);
  std::vector<std::string> ids;
  const json plan = json::parse(r.out);  // kept: a range-for over parse(...)["runs"] would dangle
  for (const auto& run : plan["runs"]) ids.push_back(run["id"].get<std::string>());
  return ids;
}

using Axes = std::vector<std::pair<std::string, std::string>>;

// A results file written through the library (no training): the plan `ids` of experiment
// `name` / `text`, with `runs` recorded in R.runs/. A planned run's swept values are
// `plan_axes`' entry for its id, or its seed (the id's last character).
void make_results(const fs::path& file, const std::string& name, const std::string& text,
                  const std::vector<std::string>& ids,
                  const std::vector<patchbay::RunRecord>& runs,
                  const std::map<std::string, Axes>& plan_axes = {}) {
  patchbay::ExperimentRecord exp;
  exp.name = name;
  exp.file = name + ".toml";
  exp.text = text;
  exp.run_ids = ids;
  for (const auto& id : ids) {
    exp.slugs.push_back(id.substr(id.find('-') + 1));
    const auto given = plan_axes.find(id);
    exp.axes.push_back(given != plan_axes.end() ? given->second : Axes{{"train.seed", id.substr(id.size() - 1)}});
  }
  const patchbay::ResultsStore store(file);
  for (const auto& r : runs) store.write_run(r);
  store.publish(exp);
}

patchbay::RunRecord record(const std::string& id, patchbay::RunStatus status,
                           const std::string& when, double accuracy = NAN,
                           const std::string& reason = "") {
  patchbay::RunRecord r;
  r.id = id;
  r.slug = id.substr(id.find('-') + 1);
  r.status = status;
  r.reason = reason;
  r.started = when;
  if (status != patchbay::RunStatus::running) r.finished = when;
  if (std::isfinite(accuracy)) r.final["test_accuracy"] = accuracy;
  return r;
}

// Results with per-clip predictions (no training): 60 test clips, 2 classes (every clip's
// label is class 0). Point a (two seeds) is right on clips 0-47 and 0-46; b on 2-49 and 1-46
// (as good, on other clips); c (one run) on 0-19. `unfinished`: also c's seed 1 and d's
// seed 0 planned and still RUNNING, without predictions.
void make_paired_results(const fs::path& results, bool unfinished = false, bool failures = false) {
  struct Spec {
    const char* id;
    const char* masker;
    int first, last;  // right on clips first..last
  };
  const Spec specs[] = {{"11111111-s0", "a", 0, 47}, {"11111112-s1", "a", 0, 46}, {"22222222-s0", "b", 2, 49},
                        {"22222223-s1", "b", 1, 46}, {"33333333-s0", "c", 0, 19}};
  std::vector<std::string> ids;
  std::vector<patchbay::RunRecord> runs;
  for (const auto& sp : specs) {
    const double right = sp.last - sp.first + 1;
    runs.push_back(record(sp.id, patchbay::RunStatus::completed, "2026-12-03T00:00:00Z", right / 60.0));
    runs.back().final["valid_accuracy"] = (right - 1) / 60.0;  // a final without per-clip predictions
    runs.back().axes = {{"masker", std::string("\"") + sp.masker + "\""}, {"train.seed", std::string(1, sp.id[10])}};
    for (int i = 0; i < 60; ++i) {
      runs.back().test_clip_ids.push_back(fmt::format("clip{:02d}", 59 - i));  // any order: matched by id
      const int clip = 59 - i;
      const bool ok = clip >= sp.first && clip <= sp.last;
      runs.back().test_logits.insert(runs.back().test_logits.end(), {ok ? 1.0f : 0.0f, ok ? 0.0f : 1.0f});
      runs.back().test_targets.insert(runs.back().test_targets.end(), {1, 0});
    }
    ids.push_back(sp.id);
  }
  if (unfinished) {
    for (const auto& [id, masker] : {std::pair{"33333334-s1", "c"}, std::pair{"44444444-s0", "d"}}) {
      runs.push_back(record(id, patchbay::RunStatus::running, "2026-12-03T00:00:00Z"));
      runs.back().axes = {{"masker", std::string("\"") + masker + "\""}, {"train.seed", std::string(1, id[10])}};
      ids.push_back(id);
    }
  }
  if (failures) {  // e's only run failed; c's seed 2 is planned, not started (no run file)
    runs.push_back(record("55555555-s0", patchbay::RunStatus::failed, "2026-12-03T00:00:00Z", NAN, "out of memory"));
    runs.back().axes = {{"masker", "\"e\""}, {"train.seed", "0"}};
    ids.push_back("55555555-s0");
    ids.push_back("33333335-s2");
  }
  make_results(results, "tiny", "[train]\nlr = 1\n", ids, runs, {{"33333335-s2", {{"masker", "\"c\""}, {"train.seed", "2"}}}});
}

}  // namespace

TEST_SUITE("cli") {
TEST_CASE("cli: shards partition the plan: every run once, balanced, stable, K checked") {
  // The library's split, over many plan sizes and shard counts.
  for (size_t runs = 1; runs <= 23; runs += 3) {
    std::vector<std::string> ids;
    for (size_t i = 0; i < runs; ++i)
      ids.push_back("0000" + std::to_string(i * 7919 % 1000) + "-run" + std::to_string(i));
    for (int64_t n = 1; n <= static_cast<int64_t>(runs) && n <= 6; ++n) {
      CAPTURE(runs);
      CAPTURE(n);
      std::vector<int> seen(runs, 0);
      size_t smallest = runs, largest = 0;
      for (int64_t k = 0; k < n; ++k) {
        const auto mine = patchbay::shard_positions(ids, {k, n});
        CHECK(mine == patchbay::shard_positions(ids, {k, n}));
        CHECK(std::is_sorted(mine.begin(), mine.end()));
        for (size_t i : mine) ++seen[i];
        smallest = std::min(smallest, mine.size());
        largest = std::max(largest, mine.size());
      }
      CHECK(std::all_of(seen.begin(), seen.end(), [](int s) { return s == 1; }));
      CHECK(largest - smallest <= 1);
    }
  }
  CHECK_THROWS_WITH_AS(patchbay::shard_positions({"a", "b"}, {0, 3}),
                       doctest::Contains("has 2 runs"), patchbay::ConfigError);

  // The CLI, on the 8-run example sweep (plans without data).
  const auto all = plan_ids(quoted(kSweep));
  REQUIRE(all.size() == 8);
  std::multiset<std::string> union_of;
  std::vector<size_t> sizes;
  std::vector<std::string> shard1;
  for (int k = 0; k < 3; ++k) {
    const auto ids = plan_ids(quoted(kSweep) + " --shard " + std::to_string(k) + "/3");
    union_of.insert(ids.begin(), ids.end());
    sizes.push_back(ids.size());
    if (k == 1) shard1 = ids;
  }
  CHECK(union_of == std::multiset<std::string>(all.begin(), all.end()));  // each run exactly once
  std::sort(sizes.begin(), sizes.end());
  CHECK(sizes == std::vector<size_t>{2, 3, 3});
  CHECK(plan_ids(quoted(kSweep) + " --shard 1/3") == shard1);  // stable across invocations

  auto r = patchbay::test::run(cli() + " plan " + quoted(kSweep) + " --shard 3/3");
  CHECK(r.code == 1);
  CHECK(r.err ==
        "patchbay plan: error [cli.bad_shard]: --shard '3/3': K must be 0..2 for 3 shards "
        "(K counts from 0, as $SLURM_ARRAY_TASK_ID does with sbatch --array=0-(N-1))\n");
  r = patchbay::test::run(cli() + " plan " + quoted(kSweep) + " --shard 0/9");
  CHECK(r.code == 1);
  CHECK(r.err.find("[cli.bad_shard]: --shard 0/9: the plan has 8 runs") != std::string::npos);
  r = patchbay::test::run(cli() + " run " + quoted(kSweep) + " --shard 1");
  CHECK(r.code == 1);
  CHECK(r.err.find("[cli.bad_shard]: --shard '1': expected K/N") != std::string::npos);
}

TEST_CASE("cli: two shards of a sweep, merged, give every run COMPLETED with its metrics") {
  patchbay::test::TempDir dir;
  const fs::path exp = dir.path() / "tiny.toml";
  std::ofstream(exp) << "[experiment]\nname = \"tiny\"\n\n"
                     << "[dataset]\nplugin = \"speech_commands\"\nroot = \""
                     << patchbay::test::tiny_keywords().string() << "\"\n\n"
                     << "[frontend]\nnum_mel_bins = 32\ntarget_frames = 100\n\n"
                     << "[patcher]\nplugin = \"fftp\"\npatch_frames = 16\nstride = 8\n\n"
                     << "[backbone]\nplugin = \"linear_probe\"\nembed_dim = 16\n\n"
                     << "[train]\nepochs = 1\nbatch_size = 8\nthreads = 1\n\n"
                     << "[sweep]\nseeds = [0, 1, 2]\n";
  const auto ids = plan_ids(quoted(exp));
  REQUIRE(ids.size() == 3);

  // Shard 0 under its default name (relative to the working folder), shard 1 named.
  auto r = patchbay::test::run("cd " + quoted(dir.path()) + " && " + cli() + " run " +
                               quoted(exp) + " --shard 0/2");
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  CHECK(r.out.find("(shard 0/2: ") != std::string::npos);
  const fs::path shard0 = dir.path() / "results" / "tiny.shard-0-of-2.h5";
  const fs::path shard1 = dir.path() / "tiny.shard-1-of-2.h5";
  REQUIRE(fs::exists(shard0));
  r = patchbay::test::run(cli() + " run " + quoted(exp) + " --shard 1/2 --results " +
                          quoted(shard1));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));

  // A shard's file lists the whole plan; the other shard's runs are PLANNED.
  const auto s0 = patchbay::read_results(shard0), s1 = patchbay::read_results(shard1);
  CHECK(s0.experiment.run_ids == ids);
  CHECK(s0.experiment.shard == "0/2");
  CHECK(s1.experiment.shard == "1/2");
  std::map<std::string, patchbay::RunRecord> done;
  for (const auto* s : {&s0, &s1}) {
    REQUIRE(s->runs.size() == 3);
    for (const auto& run : s->runs) {
      if (run.status == patchbay::RunStatus::completed) {
        done[run.id] = run;
      } else {
        CHECK(run.status == patchbay::RunStatus::planned);
      }
    }
  }
  CHECK(done.size() == 3);
  const auto count = [](const patchbay::PublishedResults& s) {
    return std::count_if(s.runs.begin(), s.runs.end(), [](const auto& x) {
      return x.status == patchbay::RunStatus::completed;
    });
  };
  CHECK(count(s0) + count(s1) == 3);
  CHECK(std::abs(count(s0) - count(s1)) <= 1);

  const fs::path merged = dir.path() / "merged.h5";
  r = patchbay::test::run(cli() + " merge " + quoted(merged) + " " + quoted(shard0) + " " +
                          quoted(shard1));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  CHECK(r.out.find("3 runs, 3 COMPLETED, 0 FAILED, 0 RUNNING, 0 PLANNED") != std::string::npos);
  const auto m = patchbay::read_results(merged);
  CHECK(m.experiment.run_ids == ids);  // what one unsharded run would have planned
  CHECK(m.experiment.shard.empty());
  CHECK(m.experiment.text == slurp(exp));
  REQUIRE(m.runs.size() == 3);
  for (const auto& run : m.runs) {
    CAPTURE(run.id);
    CHECK(run.status == patchbay::RunStatus::completed);
    CHECK(run.curves.size() == 1);
    CHECK(run.final.at("test_accuracy") == done.at(run.id).final.at("test_accuracy"));
    CHECK(run.final.at("paper_macs") > 0);
    CHECK(fs::exists(patchbay::ResultsStore(merged).run_dir(run.id) / "checkpoint.pt"));
  }

  // The merged file is a results file like any other: report reads it, run resumes it.
  r = patchbay::test::run(cli() + " report " + quoted(merged) + " --no-plots --out " +
                          quoted(dir.path() / "report"));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  r = patchbay::test::run(cli() + " run " + quoted(exp) + " --results " + quoted(merged));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  CHECK(r.out.find("3 completed before, 0 to do") != std::string::npos);
  // Merging again into it changes nothing (the existing output is one more input).
  r = patchbay::test::run(cli() + " merge " + quoted(merged) + " " + quoted(shard0) + " " +
                          quoted(shard1));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  CHECK(r.out.find("3 COMPLETED") != std::string::npos);
  CHECK(r.out.find("(0 run folders copied)") != std::string::npos);
}

TEST_CASE("cli: report sums up a sweep point: mean ± std of the metric, median latency, masked cells") {
  patchbay::test::TempDir dir;
  const std::vector<std::string> ids = {"11111111-s0", "22222222-s1", "33333333-s2"};
  std::vector<patchbay::RunRecord> runs;
  const double accuracy[] = {0.1, 0.2, 0.6}, latency[] = {5.0, 100.0, 7.0};  // one busy moment
  for (size_t i = 0; i < 3; ++i) {
    runs.push_back(record(ids[i], patchbay::RunStatus::completed, "2026-12-02T00:00:00Z", accuracy[i]));
    runs.back().final["latency_ms"] = latency[i];
    runs.back().final["paper_macs"] = 1e9;
    runs.back().final["masked_cells_per_example"] = 1000.0 + 10.0 * static_cast<double>(i);
  }
  // Training curves: the third seed ran one epoch more (e.g. epochs swept, or cut short).
  const std::vector<std::vector<double>> valid = {{0.1, 0.2}, {0.3, 0.4}, {0.5, 0.6, 0.9}};
  for (size_t i = 0; i < 3; ++i) {
    for (size_t e = 0; e < valid[i].size(); ++e) {
      patchbay::EpochRow row;
      row.epoch = static_cast<int64_t>(e) + 1;
      row.valid_accuracy = valid[i][e];
      row.train_loss = 3.0 - valid[i][e];
      runs[i].curves.push_back(row);
    }
  }
  const fs::path results = dir.path() / "r.h5";
  make_results(results, "tiny", "[train]\nlr = 1\n", ids, runs);
  const auto r = patchbay::test::run(cli() + " report " + quoted(results) + " --out " +
                                     quoted(dir.path() / "report"));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  const std::string md = slurp(dir.path() / "report" / "report.md");
  CHECK_MESSAGE(md.find("| # | point | paper GMACs | latency ms (median) | masked cells | test_accuracy | 95 % CI |") != std::string::npos, md);
  // mean 0.3, sample std 0.265; the median latency 7 (the mean would be 37.3); 1010 cells.
  // These records have no per-clip predictions: no interval, and the report says why.
  CHECK_MESSAGE(md.find("| 1 | (base) | 1.0000 | 7.00 | 1010 | 0.300 ± 0.265 (n = 3) | – | – | – | best |") != std::string::npos, md);
  CHECK_MESSAGE(md.find("3 of 3 runs have no per-clip test predictions") != std::string::npos, md);

  // The curves plot draws one line per sweep point (the mean over its seeds) in a band (min to
  // max): curves.dat holds, per epoch, mean min max of validation and of training loss, and
  // how many runs reached the epoch.
  std::istringstream dat(slurp(dir.path() / "report" / "curves.dat"));
  std::vector<std::vector<double>> rows;
  for (std::string line; std::getline(dat, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    rows.emplace_back(std::istream_iterator<double>(fields), std::istream_iterator<double>());
  }
  REQUIRE(rows.size() == 3);
  const std::vector<std::vector<double>> expected = {{1, 0.3, 0.1, 0.5, 2.7, 2.5, 2.9, 3},
                                                     {2, 0.4, 0.2, 0.6, 2.6, 2.4, 2.8, 3},
                                                     {3, 0.9, 0.9, 0.9, 2.1, 2.1, 2.1, 1}};
  for (size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    REQUIRE(rows[i].size() == expected[i].size());
    for (size_t k = 0; k < expected[i].size(); ++k) CHECK(rows[i][k] == doctest::Approx(expected[i][k]));
  }
  CHECK(slurp(dir.path() / "report" / "curves.gp").find("1: (base) (3 runs)") != std::string::npos);
  // Each run's row shows its last epoch's training loss (the third seed: 3 - 0.9).
  CHECK_MESSAGE(md.find("| 2.100 | –") != std::string::npos, md);
  CHECK(fs::file_size(dir.path() / "report" / "curves.png") > 2000);
}

TEST_CASE("cli: a report of an unfinished sweep counts its runs by status and marks what is provisional") {
  patchbay::test::TempDir dir;
  const fs::path results = dir.path() / "r.h5";
  // c: 1 of 3 runs completed (seed 1 running, seed 2 not started); d: its one run running;
  // e: its one run failed.
  make_paired_results(results, /*unfinished=*/true, /*failures=*/true);
  const auto r = patchbay::test::run(cli() + " report " + quoted(results) + " --no-plots --out " +
                                     quoted(dir.path() / "report"));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  const std::string md = slurp(dir.path() / "report" / "report.md");
  CHECK_MESSAGE(md.find("Runs: 9 planned: 5 completed, 1 failed, 2 running or interrupted, 1 not started.") !=
                    std::string::npos,
                md);
  CHECK_MESSAGE(md.find("0.792 ± 0.012 (n = 2) |") != std::string::npos, md);
  CHECK_MESSAGE(md.find("0.333 (n = 1 of 3) |") != std::string::npos, md);
  CHECK_MESSAGE(md.find("Points with no completed run:\n\n- masker=d (0 of 1)\n- masker=e (0 of 1, 1 failed)\n") !=
                    std::string::npos,
                md);
  CHECK(md.find("- masker=c (") == std::string::npos);
  CHECK(md.find("\n\n\n") == std::string::npos);  // one blank line between sections
}

TEST_CASE("cli: report and compare say how sure a difference is: bootstrap CIs, paired comparisons, n = 1") {
  patchbay::test::TempDir dir;
  const fs::path results = dir.path() / "r.h5";
  make_paired_results(results);
  auto r = patchbay::test::run(cli() + " report " + quoted(results) + " --no-plots --out " +
                               quoted(dir.path() / "report"));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  const std::string md = slurp(dir.path() / "report" / "report.md");
  const auto row = [&](const std::string& start) {
    const size_t at = md.find(start);
    REQUIRE_MESSAGE(at != std::string::npos, (start + "\n" + md));
    return md.substr(at, md.find('\n', at) - at);
  };
  const std::string a = row("| 1 | masker=a |"), b = row("| 2 | masker=b |"), c = row("| 3 | masker=c |");
  CHECK_MESSAGE(a.find("0.792 ± 0.012 (n = 2) | [0.") != std::string::npos, a);
  CHECK_MESSAGE(a.find("| best |") != std::string::npos, a);
  // b: 0.783 ± 0.024, 0.008 below a on other clips: the paired interval holds 0.
  CHECK_MESSAGE(b.find("0.783 ± 0.024 (n = 2)") != std::string::npos, b);
  CHECK_MESSAGE(b.find("| -0.008 | [") != std::string::npos, b);
  CHECK_MESSAGE(b.find("no difference this study can resolve") != std::string::npos, b);
  // c: one run, shown n = 1 (not ± 0.000), clearly below the best.
  CHECK_MESSAGE(c.find("0.333 (n = 1)") != std::string::npos, c);
  CHECK_MESSAGE(c.find("| -0.458 | [") != std::string::npos, c);
  CHECK_MESSAGE(c.find("the best is higher") != std::string::npos, c);
  CHECK(md.find("± 0.000") == std::string::npos);

  // compare: the same comparison for any two points, by number, name or run id.
  r = patchbay::test::run(cli() + " compare " + quoted(results) + " 1 33333333-s0 --json");
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  const auto j = json::parse(r.out);
  CHECK(j["difference"].get<double>() == doctest::Approx(47.5 / 60 - 20.0 / 60));
  CHECK(j["resolved"].get<bool>());
  CHECK(j["verdict"] == "A is higher");
  CHECK(j["common_clips"] == 60);
  CHECK(j["b"]["runs"] == 1);
  CHECK(j["b"]["std"].is_null());
  const auto lo = j["a"]["ci95"][0].get<double>(), hi = j["a"]["ci95"][1].get<double>();
  CHECK((lo < 47.5 / 60 && 47.5 / 60 < hi));
  r = patchbay::test::run(cli() + " compare " + quoted(results) + " masker=b 1 --bootstrap 500");
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  CHECK_MESSAGE(r.out.find("no difference this study can resolve") != std::string::npos, r.out);
  CHECK_MESSAGE(r.out.find("paired over 60 common test clips") != std::string::npos, r.out);
  // The same seed gives the same intervals.
  CHECK(patchbay::test::run(cli() + " compare " + quoted(results) + " masker=b 1 --bootstrap 500").out == r.out);
  // Bad input: an unknown point lists the points; a metric it cannot recompute; too few replicates.
  r = patchbay::test::run(cli() + " compare " + quoted(results) + " 1 zzz");
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("3: masker=c") != std::string::npos, r.err);
  r = patchbay::test::run(cli() + " compare " + quoted(results) + " 1 2 --metric valid_accuracy");
  CHECK(r.code == 1);
  CHECK(r.err.find("test_accuracy, test_mAP or test_auc") != std::string::npos);
  CHECK(patchbay::test::run(cli() + " report " + quoted(results) + " --bootstrap 5").code == 1);
  CHECK(patchbay::test::run(cli() + " compare " + quoted(results) + " 1").code == 2);
  // A point against itself, however named (a number, another seed's run), is refused: its
  // "interval" would look like a finding about two points.
  for (const char* same : {" 1 1", " 1 11111112-s1", " masker=a 11111111-s0"}) {
    r = patchbay::test::run(cli() + " compare " + quoted(results) + same);
    CHECK_MESSAGE(r.code == 1, same);
    CHECK_MESSAGE(r.err.find("error [compare.same_point]: A and B are the same sweep point (#1: masker=a)") !=
                      std::string::npos, r.err);
  }
  // report --metric: a name no run has is refused with the names they have; a metric without
  // kept predictions (valid_*) gets its mean, and no interval or difference (not "nan").
  r = patchbay::test::run(cli() + " report " + quoted(results) + " --no-plots --metric tset_accuracy --out " +
                          quoted(dir.path() / "bad"));
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("error [report.metric]: --metric tset_accuracy: no completed run has such a metric") !=
                    std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find("test_accuracy") != std::string::npos, r.err);
  r = patchbay::test::run(cli() + " report " + quoted(results) + " --no-plots --metric valid_accuracy --out " +
                          quoted(dir.path() / "valid"));
  REQUIRE_MESSAGE(r.code == 0, r.err);
  const std::string valid_md = slurp(dir.path() / "valid" / "report.md");
  CHECK_MESSAGE(valid_md.find("nan") == std::string::npos, valid_md);
  CHECK_MESSAGE(valid_md.find("valid_accuracy keeps no per-clip predictions") != std::string::npos, valid_md);
}

TEST_CASE("cli: runs on other held-out sets (dataset.split_seed) are one point, compared set by set") {
  patchbay::test::TempDir dir;
  // Maskers a and b, each trained with seed s on split s + 1 (30 clips of its own per split);
  // a also on split 3, which b never ran.
  struct Spec {
    const char* id;
    const char* masker;
    int split, right;
  };
  const Spec specs[] = {{"11111111-s0", "a", 1, 27}, {"11111112-s1", "a", 2, 24}, {"11111113-s2", "a", 3, 20},
                        {"22222222-s0", "b", 1, 21}, {"22222223-s1", "b", 2, 18}, {"33333333-s0", "c", 1, 15},
                        {"33333334-s2", "c", 3, 12}};
  std::vector<std::string> ids;
  std::vector<patchbay::RunRecord> runs;
  for (const auto& sp : specs) {
    runs.push_back(record(sp.id, patchbay::RunStatus::completed, "2026-12-07T00:00:00Z", sp.right / 30.0));
    runs.back().axes = {{"train.seed", std::string(1, sp.id[10])},
                        {"dataset.split_seed", std::to_string(sp.split)},
                        {"masker", std::string("\"") + sp.masker + "\""}};
    for (int i = 0; i < 30; ++i) {
      runs.back().test_clip_ids.push_back(fmt::format("split{}-clip{:02d}", sp.split, i));
      const bool ok = i < sp.right;
      runs.back().test_logits.insert(runs.back().test_logits.end(), {ok ? 1.0f : 0.0f, ok ? 0.0f : 1.0f});
      runs.back().test_targets.insert(runs.back().test_targets.end(), {1, 0});
    }
    ids.push_back(sp.id);
  }
  const fs::path results = dir.path() / "r.h5";
  make_results(results, "voices", "[train]\nlr = 1\n", ids, runs);
  auto r = patchbay::test::run(cli() + " report " + quoted(results) + " --no-plots --out " +
                               quoted(dir.path() / "report"));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  const std::string md = slurp(dir.path() / "report" / "report.md");
  // One point per masker, over its splits: a = (0.9 + 0.8 + 0.667) / 3, b = (0.7 + 0.6) / 2.
  CHECK_MESSAGE(md.find("| 1 | masker=a |") != std::string::npos, md);
  CHECK_MESSAGE(md.find("0.789 ± 0.117 (n = 3)") != std::string::npos, md);
  CHECK_MESSAGE(md.find("| 2 | masker=b |") != std::string::npos, md);
  CHECK(md.find("split_seed=1") == std::string::npos);
  // The plot per test set: a's runs on sets 0, 1, 2 (x shifted left), b's on 0, 1 (middle),
  // c's on 0 and 2 (right), each point's mean per set; a set a point lacks is a NaN run (its
  // block keeps its index) and a break in its line. No marginal plot over split_seed, which
  // would pool the points.
  r = patchbay::test::run(cli() + " report " + quoted(results) + " --out " + quoted(dir.path() / "plots"));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  CHECK(fs::file_size(dir.path() / "plots" / "per_test_set.png") > 2000);
  CHECK_FALSE(fs::exists(dir.path() / "plots" / "metric_vs_dataset.split_seed.png"));
  CHECK(slurp(dir.path() / "plots" / "report.md").find("![per_test_set.png](per_test_set.png)") != std::string::npos);
  const std::string dat = slurp(dir.path() / "plots" / "per_test_set.dat");
  CHECK_MESSAGE(dat.find("# 1: masker=a\n# runs: set test_accuracy\n-0.08 0.9\n0.92 0.8\n1.92 0.6666") !=
                    std::string::npos,
                dat);
  CHECK_MESSAGE(dat.find("# 2: masker=b\n# runs: set test_accuracy\n0 0.7\n1 0.6\n2 NaN\n\n\n# means: set "
                         "test_accuracy\n0 0.7\n1 0.6\n\n\n") != std::string::npos,
                dat);
  CHECK_MESSAGE(dat.find("# 3: masker=c\n# runs: set test_accuracy\n0.08 0.5\n1.08 NaN\n2.08 0.4\n\n\n# means: set "
                         "test_accuracy\n0.08 0.5\n\n2.08 0.4\n\n\n") != std::string::npos,
                dat);
  CHECK(slurp(dir.path() / "plots" / "per_test_set.gp").find("\"dataset.split\\\\_seed=3\" 2") != std::string::npos);
  // Paired on splits 1 and 2 (60 clips; a - b = 0.2 on both); split 3 has no b, left out.
  r = patchbay::test::run(cli() + " compare " + quoted(results) + " masker=a masker=b --json --bootstrap 500");
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  const auto j = json::parse(r.out);
  CHECK(j["common_clips"] == 60);
  CHECK(j["difference"].get<double>() == doctest::Approx(0.2));
  CHECK(j["resolved"].get<bool>());
  CHECK_MESSAGE(j["note"].get<std::string>().find("A's runs on dataset.split_seed=3 have no counterpart in B") !=
                    std::string::npos,
                j.dump());
  r = patchbay::test::run(cli() + " compare " + quoted(results) + " masker=a masker=b --bootstrap 500");
  CHECK_MESSAGE(r.out.find("note: A's runs on dataset.split_seed=3 have no counterpart in B") != std::string::npos,
                r.out);
  // A claim on these points rests on 2 of the 3 test sets, and says so.
  const fs::path claims = dir.path() / "claims.toml";
  std::ofstream(claims) << fmt::format("[[claim]]\ntext = \"a beats b\"\nresults = \"{}\"\na = \"11111111-s0\"\n"
                                       "b = \"22222222-s0\"\nexpect = \"a > b\"\n",
                                       results.string());
  r = patchbay::test::run(cli() + " claims " + quoted(claims) + " --bootstrap 500");
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  CHECK_MESSAGE(r.out.find("| 60 (2 of 3 sets) |") != std::string::npos, r.out);
  CHECK_MESSAGE(r.out.find("a beats b: A's runs on dataset.split_seed=3 have no counterpart in B") != std::string::npos,
                r.out);
}

TEST_CASE("cli: run_cpu_studies.sh refuses a study it does not know before anything runs") {
  // The studies take hours: a typo must stop at once, not fall into the default (every study).
  const std::string script = "bash '" + std::string(patchbay::test::kSourceDir) + "/experiments/fftp-paper/run_cpu_studies.sh'";
  const std::string build = fs::path(patchbay::test::kCli).parent_path().string();
  auto r = patchbay::test::run(script + " clams");
  CHECK(r.code == 2);
  CHECK_MESSAGE(r.err.find("'clams' is neither a build folder nor a study; the studies are: cost tuning") !=
                    std::string::npos,
                r.err);
  r = patchbay::test::run(script + " '" + build + "' claims nosuch");
  CHECK(r.code == 2);
  CHECK_MESSAGE(r.err.find("'nosuch' is not a study") != std::string::npos, r.err);
  CHECK(r.out.find("==") == std::string::npos);  // no study started
  patchbay::test::TempDir empty;
  r = patchbay::test::run(script + " '" + empty.path().string() + "' claims");
  CHECK(r.code == 2);
  CHECK_MESSAGE(r.err.find("no patchbay in '" + empty.path().string() + "'") != std::string::npos, r.err);
}

TEST_CASE("cli: claims places each claim by its paired interval alone: holds, not resolved, differs, pending") {
  patchbay::test::TempDir dir;
  const fs::path results = dir.path() / "r.h5";
  make_paired_results(results, true);
  const fs::path claims = dir.path() / "claims.toml";
  std::ofstream(claims) << fmt::format(R"([[claim]]
text = "a beats c"
results = "{0}"
a = "masker=a"
b = "33333333-s0"
expect = "a > b"
source = "a paper | table 2"
[[claim]]
text = "c beats a"
results = "{0}"
a = "masker=c"
b = "11111112-s1"
expect = "a > b"
[[claim]]
text = "a beats b"
results = "{0}"
a = "masker=a"
b = "masker=b"
expect = "a > b"
[[claim]]
text = "a and b are level"
results = "{0}"
a = "masker=a"
b = "masker=b"
expect = "a = b"
margin = 0.15
[[claim]]
text = "a and b within a point"
results = "{0}"
a = "masker=a"
b = "masker=b"
expect = "a = b"
margin = 0.01
[[claim]]
text = "d beats a"
results = "{0}"
a = "44444444-s0"
b = "masker=a"
expect = "a > b"
[[claim]]
text = "not run yet"
results = "{1}"
a = "x"
b = "y"
expect = "a < b"
command = "patchbay run later.toml"
)",
                                       results.string(), (dir.path() / "later.h5").string());
  auto r = patchbay::test::run(cli() + " claims " + quoted(claims) + " --json --bootstrap 500");
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  const auto j = json::parse(r.out);
  const auto& list = j["claims"];
  REQUIRE(list.size() == 7);
  // a - c = 47.5/60 - 20/60 = 0.458, its interval far above 0.
  CHECK(list[0]["verdict"] == "holds");
  CHECK(list[0]["difference"].get<double>() == doctest::Approx(47.5 / 60 - 20.0 / 60));
  CHECK(list[0]["b"]["runs"] == 1);
  CHECK(list[0]["b"]["planned_runs"] == 2);  // c's seed 1 is still running
  CHECK(list[0]["provisional"] == true);     // so the verdict may still change
  CHECK(list[1]["verdict"] == "differs");    // the same interval, the other way round
  CHECK(list[2]["provisional"] == false);    // a and b: every planned run completed
  // a - b = 0.008 on other clips: the interval holds 0, and lies inside (-0.15, 0.15) but
  // not inside (-0.01, 0.01).
  CHECK(list[2]["verdict"] == "not resolved");
  CHECK(list[3]["verdict"] == "holds");
  CHECK(list[4]["verdict"] == "not resolved");
  CHECK(list[4]["expect"] == "A = B within 0.01");
  CHECK(list[5]["verdict"] == "pending");
  CHECK_MESSAGE(list[5]["why"].get<std::string>().find("no run of 'masker=d' has completed yet (0 of 1)") !=
                    std::string::npos,
                list[5].dump());
  CHECK(list[6]["verdict"] == "pending");
  CHECK(list[6]["why"].get<std::string>().find("no results file") != std::string::npos);

  // Markdown: one table per verdict, the pending ones with what to run; "|" escaped in cells.
  r = patchbay::test::run(cli() + " claims " + quoted(claims) + " --bootstrap 500 --out " +
                          quoted(dir.path() / "claims.md"));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  const std::string md = slurp(dir.path() / "claims.md");
  CHECK_MESSAGE(md.find("## Holds (2, 1 of them provisional)") != std::string::npos, md);
  CHECK_MESSAGE(md.find("## Not resolved (2)") != std::string::npos, md);
  CHECK_MESSAGE(md.find("## Differs (1, 1 of them provisional)") != std::string::npos, md);
  CHECK_MESSAGE(md.find("## Pending (2)") != std::string::npos, md);
  CHECK_MESSAGE(md.find("| a beats c (provisional: runs still to complete) | A > B, test_accuracy (a paper \\| "
                        "table 2) | 0.792 ± 0.012 (n = 2) | 0.333 (n = 1 of 2) | +0.458 [") != std::string::npos,
                md);
  CHECK_MESSAGE(md.find("| a beats b | A > B") != std::string::npos, md);
  CHECK_MESSAGE(md.find("`patchbay run later.toml`") != std::string::npos, md);
  CHECK(r.err.find("none of the results files exists") == std::string::npos);
  // From a folder where no results file is found, every claim is pending, and stderr says why.
  std::ofstream(dir.path() / "only_missing.toml") << "[[claim]]\ntext = \"t\"\nresults = \"results/r.h5\"\n"
                                                     "a = \"x\"\nb = \"y\"\nexpect = \"a > b\"\n";
  r = patchbay::test::run("cd " + quoted(dir.path()) + " && " + cli() + " claims only_missing.toml");
  CHECK(r.code == 0);
  CHECK_MESSAGE(r.err.find("none of the results files exists under") != std::string::npos, r.err);

  // Runs recorded without per-clip predictions cannot be compared: pending, saying why.
  const fs::path bare = dir.path() / "bare.h5";
  std::vector<patchbay::RunRecord> bare_runs;
  for (const auto& [id, masker] : {std::pair{"55555555-s0", "a"}, std::pair{"66666666-s0", "b"}}) {
    bare_runs.push_back(record(id, patchbay::RunStatus::completed, "2026-12-03T00:00:00Z", 0.5));
    bare_runs.back().axes = {{"masker", std::string("\"") + masker + "\""}, {"train.seed", "0"}};
  }
  make_results(bare, "bare", "[train]\nlr = 1\n", {"55555555-s0", "66666666-s0"}, bare_runs);
  std::ofstream(dir.path() / "bare.toml") << fmt::format("[[claim]]\ntext = \"t\"\nresults = \"{}\"\n"
                                                         "a = \"masker=a\"\nb = \"masker=b\"\nexpect = \"a > b\"\n",
                                                         bare.string());
  r = patchbay::test::run(cli() + " claims " + quoted(dir.path() / "bare.toml") + " --json --bootstrap 100");
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  const auto bare_claim = json::parse(r.out)["claims"][0];
  CHECK(bare_claim["verdict"] == "pending");
  CHECK_MESSAGE(bare_claim["why"].get<std::string>().find("not comparable: 2 of 2 runs have no per-clip test "
                                                          "predictions") != std::string::npos,
                bare_claim.dump());

  // Bad input: every problem at once, each with its line; a point no run has.
  std::ofstream(claims) << fmt::format(R"([[claim]]
text = "x"
results = "{0}"
a = 2
expect = "a >> b"
colour = "red"
[[claim]]
text = "y"
results = "{0}"
a = "masker=a"
b = "masker=b"
expect = "a = b"
)",
                                       results.string());
  r = patchbay::test::run(cli() + " claims " + quoted(claims));
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("claims.toml:1: this [[claim]] has no 'b'") != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find("claims.toml:4: a = 2: name the point by the slug") != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find("claims.toml:5: expect = \"a >> b\"") != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find("claims.toml:6: unknown key 'colour'") != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find("claims.toml:7: expect = \"a = b\" needs margin > 0") != std::string::npos, r.err);
  std::ofstream(claims) << fmt::format("[[claim]]\ntext = \"x\"\nresults = \"{}\"\na = \"masker=z\"\n"
                                       "b = \"masker=a\"\nexpect = \"a > b\"\n",
                                       results.string());
  r = patchbay::test::run(cli() + " claims " + quoted(claims));
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("claims.toml:1: 'masker=z' names no sweep point") != std::string::npos, r.err);
  CHECK_MESSAGE(r.err.find("2: masker=b") != std::string::npos, r.err);
  // A report's row number is refused (it changes as runs complete), and so are two names of
  // one point (two seeds' slugs): either would test a claim on something else than it says.
  std::ofstream(claims) << fmt::format("[[claim]]\ntext = \"x\"\nresults = \"{}\"\na = \"1\"\n"
                                       "b = \"masker=b\"\nexpect = \"a > b\"\n",
                                       results.string());
  r = patchbay::test::run(cli() + " claims " + quoted(claims));
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("claims.toml:4: a = \"1\": a number is a row of `patchbay report`") != std::string::npos,
                r.err);
  std::ofstream(claims) << fmt::format("[[claim]]\ntext = \"x\"\nresults = \"{}\"\na = \"11111111-s0\"\n"
                                       "b = \"11111112-s1\"\nexpect = \"a > b\"\nmargin = 0.1\n",
                                       results.string());
  r = patchbay::test::run(cli() + " claims " + quoted(claims));
  CHECK(r.code == 1);
  CHECK_MESSAGE(r.err.find("claims.toml:1: a ('11111111-s0') and b ('11111112-s1') name the same sweep point "
                           "(masker=a)") != std::string::npos,
                r.err);
}

TEST_CASE("cli: report of multi-label results has a per-class AP table") {
  patchbay::test::TempDir dir;
  const std::vector<std::string> ids = {"11111111-s0", "22222222-s1"};
  std::vector<patchbay::RunRecord> runs;
  const double map[] = {0.7, 0.7};
  const std::vector<std::vector<double>> ap = {{0.5, 0.9}, {0.7, NAN}};  // piano: no positive in run 2
  for (size_t i = 0; i < 2; ++i) {
    runs.push_back(record(ids[i], patchbay::RunStatus::completed, "2026-12-03T00:00:00Z"));
    runs.back().final["test_mAP"] = map[i];
    runs.back().final["multi_label"] = 1.0;
    runs.back().class_names = {"drums", "piano"};
    runs.back().test_ap_per_class = ap[i];
  }
  const fs::path results = dir.path() / "r.h5";
  make_results(results, "tiny", "[train]\nlr = 1\n", ids, runs);
  const auto r = patchbay::test::run(cli() + " report " + quoted(results) + " --no-plots --out " +
                                     quoted(dir.path() / "report"));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  const std::string md = slurp(dir.path() / "report" / "report.md");
  CHECK_MESSAGE(md.find("## Per-class test AP") != std::string::npos, md);
  CHECK_MESSAGE(md.find("| drums | 0.600 |") != std::string::npos, md);
  CHECK_MESSAGE(md.find("| piano | 0.900 |") != std::string::npos, md);
}

TEST_CASE("cli: report's Pareto front keeps the best of points at equal cost; the per-key plot their means") {
  patchbay::test::TempDir dir;
  // Three maskers on one patcher (the same cost), the first with two seeds.
  const std::vector<std::string> ids = {"11111111-s0", "11111112-s1", "22222222-s0", "33333333-s0"};
  const std::vector<std::string> maskers = {"none", "none", "specmask", "specaugment"};
  const double accuracy[] = {0.1, 0.3, 0.6, 0.4};
  std::vector<patchbay::RunRecord> runs;
  for (size_t i = 0; i < ids.size(); ++i) {
    runs.push_back(record(ids[i], patchbay::RunStatus::completed, "2026-12-02T00:00:00Z", accuracy[i]));
    runs.back().final["paper_macs"] = 2e9;
    runs.back().axes = {{"masker", maskers[i]}, {"train.seed", ids[i].substr(ids[i].size() - 1)}};
  }
  const fs::path results = dir.path() / "r.h5";
  make_results(results, "tiny", "[train]\nlr = 1\n", ids, runs);
  const auto r = patchbay::test::run(cli() + " report " + quoted(results) + " --out " +
                                     quoted(dir.path() / "report"));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  // Only the best mean at that cost is on the front (sorted by cost alone, all three were).
  const std::string front = slurp(dir.path() / "report" / "pareto.dat");
  CHECK_MESSAGE(front == "2 0.6\n", front);
  // The masker values label the vertical axis in plan order; the means follow the runs.
  const std::string gp = slurp(dir.path() / "report" / "metric_vs_masker.gp");
  CHECK_MESSAGE(gp.find("set ytics (\"none\" 0, \"specmask\" 1, \"specaugment\" 2)") != std::string::npos, gp);
  const std::string dat = slurp(dir.path() / "report" / "axis_masker.dat");
  CHECK_MESSAGE(dat.find("# means: level metric\n0 0.2\n1 0.6\n2 0.4\n") != std::string::npos, dat);
}

TEST_CASE("cli: a marginal plot keeps runs of another swept key apart, not pooled into one mean") {
  patchbay::test::TempDir dir;
  // Study 3d's shape: masker x (patcher zipped with train.lr), one seed each. Against the
  // masker, fftp's and square's runs are two groups with a mean each; against the patcher,
  // train.lr (which the patcher decides) does not split them, the masker does.
  struct Spec {
    const char* id;
    const char* masker;
    const char* patcher;
    const char* lr;
    double accuracy;
  };
  const Spec specs[] = {{"11111111-s0", "none", "fftp", "0.001", 0.8}, {"22222222-s0", "specmask", "fftp", "0.001", 0.7},
                        {"33333333-s0", "none", "square", "0.0005", 0.4},
                        {"44444444-s0", "specmask", "square", "0.0005", 0.5}};
  std::vector<std::string> ids;
  std::vector<patchbay::RunRecord> runs;
  for (const auto& sp : specs) {
    runs.push_back(record(sp.id, patchbay::RunStatus::completed, "2026-12-07T00:00:00Z", sp.accuracy));
    runs.back().axes = {{"masker", sp.masker}, {"patcher", sp.patcher}, {"train.lr", sp.lr}, {"train.seed", "0"}};
    ids.push_back(sp.id);
  }
  const fs::path results = dir.path() / "r.h5";
  make_results(results, "tiny", "[train]\nlr = 1\n", ids, runs);
  const auto r = patchbay::test::run(cli() + " report " + quoted(results) + " --out " + quoted(dir.path() / "report"));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  const std::string by_masker = slurp(dir.path() / "report" / "axis_masker.dat");
  CHECK_MESSAGE(by_masker.find("# group 1: patcher=fftp, train.lr=0.001\n# runs: level metric\n-0.1 0.8\n0.9 0.7\n\n\n"
                               "# means: level metric\n-0.1 0.8\n0.9 0.7\n") != std::string::npos,
                by_masker);
  CHECK_MESSAGE(by_masker.find("# group 2: patcher=square, train.lr=0.0005\n# runs: level metric\n0.1 0.4\n1.1 0.5\n")
                    != std::string::npos,
                by_masker);
  const std::string by_patcher = slurp(dir.path() / "report" / "axis_patcher.dat");
  CHECK_MESSAGE(by_patcher.find("# group 1: masker=none\n") != std::string::npos, by_patcher);
  CHECK(by_patcher.find("train.lr") == std::string::npos);
  const std::string gp = slurp(dir.path() / "report" / "metric_vs_masker.gp");
  CHECK_MESSAGE(gp.find("index 2 using 2:1 with points pt 7 ps 1.2 lc 2 title \"patcher=square, train.lr=0.0005\"") !=
                    std::string::npos,
                gp);
  CHECK(fs::file_size(dir.path() / "report" / "metric_vs_masker.png") > 2000);
}

TEST_CASE("cli: merge refuses files of different experiments, naming them and the difference") {
  patchbay::test::TempDir dir;
  const std::vector<std::string> ids = {"11111111-s0", "22222222-s1"};
  const fs::path a = dir.path() / "a.h5", b = dir.path() / "b.h5", c = dir.path() / "c.h5",
                 d = dir.path() / "d.h5";
  make_results(a, "tiny", "[train]\nlr = 1\n", ids, {});
  make_results(b, "other", "[train]\nlr = 1\n", ids, {});
  make_results(c, "tiny", "[train]\nlr = 2\n", {"44444444-s0", "55555555-s1"}, {});  // ids hash lr
  make_results(d, "tiny", "[train]\nlr = 1\n", {"11111111-s0", "33333333-s2"}, {});
  const fs::path e = dir.path() / "e.h5";  // a comment edited: the same runs
  make_results(e, "tiny", "[train]\n# a comment\nlr = 1\n", ids, {});
  const auto merge = [&](const fs::path& in) {
    return patchbay::test::run(cli() + " merge " + quoted(dir.path() / "out.h5") + " " +
                               quoted(a) + " " + quoted(in));
  };
  auto r = merge(b);
  CHECK(r.code == 1);
  CHECK(r.err.find("[merge.different_experiment]: '" + a.string() + "' and '" + b.string() +
                   "' hold different experiments: experiment 'tiny' vs 'other'") !=
        std::string::npos);
  r = merge(c);
  CHECK(r.code == 1);
  CHECK(r.err.find("the experiment files differ:\n  - lr = 1\n  + lr = 2") != std::string::npos);
  r = patchbay::test::run(cli() + " merge " + quoted(dir.path() / "same.h5") + " " + quoted(a) + " " + quoted(e));
  CHECK_MESSAGE(r.code == 0, (r.out + r.err));
  r = merge(d);
  CHECK(r.code == 1);
  CHECK(r.err.find("the plans differ (2 runs vs 2; only in the first: 22222222-s1; only in the "
                   "second: 33333333-s2)") != std::string::npos);
  CHECK_FALSE(fs::exists(dir.path() / "out.h5"));

  // The output as an input, and a file that is not results.
  r = patchbay::test::run(cli() + " merge " + quoted(a) + " " + quoted(a));
  CHECK(r.code == 1);
  CHECK(r.err.find("[merge.same_file]") != std::string::npos);
  std::ofstream(dir.path() / "x.h5") << "nope";
  r = merge(dir.path() / "x.h5");
  CHECK(r.code == 1);
  CHECK(r.err.find("x.h5") != std::string::npos);
  // An existing output of another experiment is not overwritten.
  r = patchbay::test::run(cli() + " merge " + quoted(b) + " " + quoted(a));
  CHECK(r.code == 1);
  CHECK(r.err.find("the output '" + b.string() + "' already holds another experiment") !=
        std::string::npos);
  CHECK(patchbay::read_results(b).experiment.name == "other");
  // An input still being written (its lock held) is refused with the writer's pid.
  {
    const auto lock = patchbay::ResultsStore(a).lock();
    r = patchbay::test::run(cli() + " merge " + quoted(dir.path() / "out.h5") + " " + quoted(a));
    CHECK(r.code == 1);
    CHECK(r.err.find("[results.locked]: input '" + a.string() +
                     "' is being written by a patchbay "
                     "process (pid " +
                     std::to_string(::getpid()) + ")") != std::string::npos);
  }
}

TEST_CASE("cli: merge keeps the newest status of a run found in several files") {
  using S = patchbay::RunStatus;
  patchbay::test::TempDir dir;
  const std::vector<std::string> ids = {"10000000-s0", "20000000-s1", "30000000-s2",
                                        "40000000-s3", "50000000-s4"};
  const std::string text = "[train]\nlr = 1\n";
  const fs::path a = dir.path() / "a.h5", b = dir.path() / "b.h5", out = dir.path() / "out.h5";
  make_results(a, "t", text, ids,
               {record(ids[0], S::failed, "2024-05-02T00:00:00Z", NAN, "diverged"),
                record(ids[1], S::completed, "2024-05-01T00:00:00Z", 0.5),
                record(ids[2], S::failed, "2024-05-01T00:00:00Z", NAN, "older failure"),
                record(ids[3], S::running, "2024-05-01T00:00:00Z")});
  std::ofstream(patchbay::ResultsStore(a).run_dir(ids[3]) / "checkpoint.pt") << "epoch 3";
  make_results(b, "t", text, ids,
               {record(ids[0], S::completed, "2024-05-01T00:00:00Z", 0.7),
                record(ids[1], S::completed, "2024-05-03T00:00:00Z", 0.9),
                record(ids[2], S::failed, "2024-05-02T00:00:00Z", NAN, "newer failure")});
  // b's run folders were not kept (only the .h5 came back): its published records count.
  fs::remove_all(patchbay::ResultsStore(b).runs_dir());

  auto r =
      patchbay::test::run(cli() + " merge " + quoted(out) + " " + quoted(a) + " " + quoted(b));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  CHECK(r.out.find("run " + ids[0] + ": keeping COMPLETED from '" + b.string() + "'") !=
        std::string::npos);
  CHECK(r.out.find("5 runs, 2 COMPLETED, 1 FAILED, 1 RUNNING, 1 PLANNED") != std::string::npos);
  CHECK(r.out.find("1 run is in no input") != std::string::npos);
  auto m = patchbay::read_results(out);
  REQUIRE(m.runs.size() == 5);
  CHECK(m.runs[0].status == S::completed);  // COMPLETED beats a later FAILED
  CHECK(m.runs[0].final.at("test_accuracy") == 0.7);
  CHECK(m.runs[1].final.at("test_accuracy") == 0.9);  // of two COMPLETED, the later
  CHECK(m.runs[2].reason == "newer failure");         // of two FAILED, the later
  CHECK(m.runs[3].status == S::running);              // found once: kept, with its checkpoint
  CHECK(slurp(patchbay::ResultsStore(out).run_dir(ids[3]) / "checkpoint.pt") == "epoch 3");
  CHECK(m.runs[4].status == S::planned);  // in no input

  // Merging a later failure into the output keeps the output's COMPLETED run.
  const fs::path c = dir.path() / "c.h5";
  make_results(c, "t", text, ids,
               {record(ids[0], S::failed, "2024-06-01T00:00:00Z", NAN, "late failure"),
                record(ids[4], S::completed, "2024-06-01T00:00:00Z", 0.1)});
  r = patchbay::test::run(cli() + " merge " + quoted(out) + " " + quoted(c));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  m = patchbay::read_results(out);
  CHECK(m.runs[0].status == S::completed);
  CHECK(m.runs[0].final.at("test_accuracy") == 0.7);
  CHECK(m.runs[4].status == S::completed);
  CHECK(r.out.find("3 COMPLETED, 1 FAILED, 1 RUNNING, 0 PLANNED (1 run folder copied)") !=
        std::string::npos);

  // An output copied without its runs folder: where the output's own record wins (a tie with
  // another input's), it is kept, not rebuilt PLANNED.
  const fs::path copied = dir.path() / "copied" / "out.h5";
  fs::create_directories(copied.parent_path());
  fs::copy_file(out, copied);
  r = patchbay::test::run(cli() + " merge " + quoted(copied) + " " + quoted(c));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  m = patchbay::read_results(copied);
  CHECK(m.runs[0].status == S::completed);
  CHECK(m.runs[1].final.at("test_accuracy") == 0.9);
  CHECK_MESSAGE(r.out.find("3 COMPLETED, 1 FAILED, 1 RUNNING, 0 PLANNED") != std::string::npos, r.out);
}

TEST_CASE("cli: slurm writes a job array over the shards and a dependent merge job") {
  patchbay::test::TempDir dir;
  const fs::path out = dir.path() / "jobs";
  auto r = patchbay::test::run("cd " + quoted(dir.path()) + " && " + cli() + " slurm " +
                               quoted(kSweep) +
                               " train.epochs=1 --shards 3 --partition debug --time 00:10:00 "
                               "--cpus-per-task 2 --mem 1G --sbatch=--account=lab --out jobs");
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  const std::string array = slurp(out / "array.sbatch"), merge = slurp(out / "merge.sbatch"),
                    submit = slurp(out / "submit.sh");
  const std::string base = (dir.path() / "results" / "sweep_example").string();
  for (const char* line :
       {"#SBATCH --array=0-2\n", "#SBATCH --partition=debug\n", "#SBATCH --time=00:10:00\n",
        "#SBATCH --cpus-per-task=2\n", "#SBATCH --mem=1G\n", "#SBATCH --account=lab\n",
        "--shard \"${SLURM_ARRAY_TASK_ID}/3\""}) {
    CAPTURE(line);
    CHECK(array.find(line) != std::string::npos);
  }
  CHECK(array.find("'" + std::string(patchbay::test::kCli) + "' run '" + kSweep.string() +
                   "' 'train.epochs=1'") != std::string::npos);
  CHECK(array.find("--results '" + base + "'\".shard-${SLURM_ARRAY_TASK_ID}-of-3.h5\"") !=
        std::string::npos);
  CHECK(array.find("#SBATCH --output=" + (out / "logs").string() + "/shard-%a.%A.out") !=
        std::string::npos);
  CHECK(fs::is_directory(out / "logs"));
  CHECK(merge.find("' merge '" + base + ".h5' \"${shards[@]}\"") != std::string::npos);
  CHECK(merge.find("#SBATCH --account=lab\n") != std::string::npos);
  CHECK(merge.find("#SBATCH --partition=debug\n") != std::string::npos);
  CHECK(submit.find("--dependency=afterany:") != std::string::npos);
  CHECK(r.out.find("sbatch --dependency=afterany:") != std::string::npos);
  for (const char* script : {"array.sbatch", "merge.sbatch", "submit.sh"}) {
    CAPTURE(script);
    const auto syntax = patchbay::test::run("bash -n " + quoted(out / script));
    CHECK_MESSAGE(syntax.code == 0, syntax.err);
  }

  // submit.sh against a stand-in sbatch that logs its arguments and answers a job id.
  const fs::path bin = dir.path() / "bin";
  fs::create_directories(bin);
  std::ofstream(bin / "sbatch") << "#!/bin/sh\necho \"$@\" >> '"
                                << (dir.path() / "sbatch.log").string()
                                << "'\necho '4242;cluster'\n";
  fs::permissions(bin / "sbatch", fs::perms::owner_all);
  r = patchbay::test::run("PATH=" + quoted(bin) + ":$PATH sh " + quoted(out / "submit.sh"));
  REQUIRE_MESSAGE(r.code == 0, (r.out + r.err));
  CHECK(slurp(dir.path() / "sbatch.log") ==
        "--parsable array.sbatch\n--parsable --dependency=afterany:4242 merge.sbatch\n");

  r = patchbay::test::run(cli() + " slurm " + quoted(kSweep) + " --shards 9 --out " +
                          quoted(out));
  CHECK(r.code == 1);
  CHECK(r.err.find("[cli.bad_shard]: --shards 9: the plan of 'sweep_example' has 8 runs") !=
        std::string::npos);
  r = patchbay::test::run(cli() + " slurm " + quoted(kSweep) + " --shards 2 --time 1h --out " +
                          quoted(out));
  CHECK(r.code == 1);
  CHECK(r.err.find("[slurm.bad_option]: --time '1h'") != std::string::npos);
  r = patchbay::test::run(cli() + " slurm " + quoted(kSweep));
  CHECK(r.code == 2);
  CHECK(r.err.find("--shards N is required") != std::string::npos);
  for (const char* command : {"merge", "slurm"}) {
    CAPTURE(command);
    r = patchbay::test::run(cli() + " " + command + " --help");
    CHECK(r.code == 0);
    CHECK(r.out.find(std::string("Usage: patchbay ") + command) != std::string::npos);
  }
}
}

// Bootstrap intervals and paired comparisons (framework/src/bootstrap.hpp) against numbers
// computed independently with numpy (tests/golden/make_stats_golden.py), and their
// properties: determinism, alignment by clip id, what "resolved" means.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "bootstrap.hpp"
#include "patchbay/error.hpp"
#include "test_paths.hpp"

namespace {

using namespace patchbay::stats;

std::map<std::string, std::vector<double>> golden() {
  std::ifstream in(std::string(patchbay::test::kSourceDir) + "/tests/golden/stats/cases.txt");
  REQUIRE_MESSAGE(in.good(), "tests/golden/stats/cases.txt is missing");
  std::map<std::string, std::vector<double>> out;
  std::string line, key;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    ss >> key;
    for (double v; ss >> v;) out[key].push_back(v);
  }
  return out;
}

Predictions predictions(const std::vector<double>& shape, const std::vector<double>& logits,
                        const std::vector<double>& targets) {
  Predictions p;
  p.clips = static_cast<size_t>(shape.at(0));
  p.classes = static_cast<size_t>(shape.at(1));
  p.logits.assign(logits.begin(), logits.end());
  for (double t : targets) p.targets.push_back(static_cast<uint8_t>(t));
  return p;
}

// A run record over clips `ids` whose top-1 is right exactly on the clips in `right`.
patchbay::RunRecord record(const std::string& id, const std::vector<std::string>& ids, const std::vector<int>& right) {
  patchbay::RunRecord r;
  r.id = id;
  r.test_clip_ids = ids;
  for (size_t i = 0; i < ids.size(); ++i) {
    r.test_logits.insert(r.test_logits.end(), {right[i] ? 1.0f : 0.0f, right[i] ? 0.0f : 1.0f});
    r.test_targets.insert(r.test_targets.end(), {1, 0});
  }
  return r;
}

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("bootstrap: metrics on weighted clips equal numpy's on the expanded set") {
  const auto g = golden();
  const auto p = predictions(g.at("w.shape"), g.at("w.logits"), g.at("w.targets"));
  const auto& w = g.at("w.weights");
  const auto& expect = g.at("w.expect");
  const auto& plain = g.at("w.expect_unweighted");
  const Metric metrics[] = {Metric::accuracy, Metric::mAP, Metric::auc};
  for (size_t m = 0; m < 3; ++m) {
    CAPTURE(m);
    const ScoredRun run(p, metrics[m]);
    CHECK(run.metric(w) == doctest::Approx(expect[m]).epsilon(1e-12));
    CHECK(run.metric() == doctest::Approx(plain[m]).epsilon(1e-12));
  }
}

TEST_CASE("bootstrap: a stratified run scores each stratum apart and averages them") {
  const auto g = golden();
  const auto p = predictions(g.at("w.shape"), g.at("w.logits"), g.at("w.targets"));
  const auto& w = g.at("w.weights");
  // Split the clips into two strata (even and odd clips) and score each as its own run.
  std::vector<uint32_t> strata(p.clips);
  Predictions halves[2];
  std::vector<double> half_weights[2];
  for (size_t i = 0; i < p.clips; ++i) {
    const uint32_t s = i % 2;
    strata[i] = s;
    Predictions& h = halves[s];
    h.clips += 1;
    h.classes = p.classes;
    h.logits.insert(h.logits.end(), p.logits.begin() + i * p.classes, p.logits.begin() + (i + 1) * p.classes);
    h.targets.insert(h.targets.end(), p.targets.begin() + i * p.classes, p.targets.begin() + (i + 1) * p.classes);
    half_weights[s].push_back(w[i]);
  }
  for (const Metric m : {Metric::accuracy, Metric::mAP, Metric::auc}) {
    CAPTURE(static_cast<int>(m));
    const ScoredRun whole(p, m, strata), even(halves[0], m), odd(halves[1], m);
    CHECK(whole.metric() == doctest::Approx((even.metric() + odd.metric()) / 2).epsilon(1e-12));
    CHECK(whole.metric(w) ==
          doctest::Approx((even.metric(half_weights[0]) + odd.metric(half_weights[1])) / 2).epsilon(1e-12));
    // Not the pooled value (accuracy over equal halves is the one metric where they agree).
    if (m != Metric::accuracy) CHECK(whole.metric() != doctest::Approx(ScoredRun(p, m).metric()).epsilon(1e-9));
  }
  CHECK_THROWS_WITH_AS(ScoredRun(p, Metric::accuracy, std::vector<uint32_t>(p.clips - 1, 0)),
                       doctest::Contains("strata for"), patchbay::Error);
  std::vector<uint32_t> gap(p.clips, 0);
  gap[0] = 2;  // stratum 1 holds nothing
  CHECK_THROWS_WITH_AS(ScoredRun(p, Metric::accuracy, gap), doctest::Contains("must each hold a clip"), patchbay::Error);
}

TEST_CASE("bootstrap: the percentile interval is numpy.percentile's") {
  const auto g = golden();
  const Interval ci = percentile_interval(g.at("p.values"), 0.95);
  CHECK(ci.lo == doctest::Approx(g.at("p.expect")[0]).epsilon(1e-12));
  CHECK(ci.hi == doctest::Approx(g.at("p.expect")[1]).epsilon(1e-12));
  CHECK_FALSE(percentile_interval({NAN, NAN}, 0.95).defined());
}

TEST_CASE("bootstrap: point and paired intervals agree with numpy's own bootstrap") {
  const auto g = golden();
  const auto& shape = g.at("b.shape");
  const auto& targets = g.at("b.targets");
  const std::vector<ScoredRun> a{{predictions(shape, g.at("b.a0"), targets), Metric::accuracy},
                                 {predictions(shape, g.at("b.a1"), targets), Metric::accuracy}};
  const std::vector<ScoredRun> b{{predictions(shape, g.at("b.b0"), targets), Metric::accuracy}};
  BootstrapSettings s;
  s.replicates = static_cast<size_t>(g.at("b.replicates")[0]);
  // Two independent random streams: the percentiles of 20,000 replicates agree to well
  // within 0.01 (their Monte Carlo error is ~0.002 here). Each mistake misses by more, as
  // numpy shows on these data: resampling clips only gives A [0.729, 0.823] and A - B
  // [0.025, 0.110]; unpaired clips give A - B [-0.021, 0.154].
  const Interval pa = point_interval(a, s);
  CHECK(std::abs(pa.lo - g.at("b.point_a")[0]) < 0.01);
  CHECK(std::abs(pa.hi - g.at("b.point_a")[1]) < 0.01);
  const Difference d = paired_difference(a, b, s);
  CHECK(d.estimate == doctest::Approx(g.at("b.diff")[0]).epsilon(1e-12));
  CHECK(std::abs(d.interval.lo - g.at("b.diff")[1]) < 0.01);
  CHECK(std::abs(d.interval.hi - g.at("b.diff")[2]) < 0.01);
  CHECK(d.share_a_higher > 0.9);
  CHECK(d.clips == 240);

  // A point against itself: only its seeds vary, the interval holds 0.
  const Difference same = paired_difference(a, a, s);
  CHECK(same.estimate == 0.0);
  CHECK_FALSE(same.resolved());
  // A clearly better point is resolved: A against B with B's clips all wrong.
  auto zero = g.at("b.b0");
  for (size_t i = 0; i < zero.size(); ++i) zero[i] = targets[i] > 0 ? -100.0 : 0.0;
  const std::vector<ScoredRun> wrong{{predictions(shape, zero, targets), Metric::accuracy}};
  CHECK(wrong[0].metric() == 0.0);
  const Difference clear = paired_difference(a, wrong, s);
  CHECK(clear.resolved());
  CHECK(clear.interval.lo > 0.5);
}

TEST_CASE("bootstrap: deterministic for its seed, and another seed gives other replicates") {
  const auto g = golden();
  const std::vector<ScoredRun> a{{predictions(g.at("b.shape"), g.at("b.a0"), g.at("b.targets")), Metric::accuracy}};
  BootstrapSettings s;
  s.replicates = 500;
  const Interval x = point_interval(a, s), y = point_interval(a, s);
  CHECK(x.lo == y.lo);
  CHECK(x.hi == y.hi);
  s.seed = 7;
  const Interval z = point_interval(a, s);
  CHECK((z.lo != x.lo || z.hi != x.hi));
  CHECK(x.contains(a[0].metric()));
}

TEST_CASE("bootstrap: predictions are aligned by clip id, runs without any are set aside") {
  // Run 2 lists the clips in another order and lacks clip "d"; run 3 has none recorded.
  const auto r1 = record("r1", {"a", "b", "c", "d"}, {1, 0, 1, 1});
  const auto r2 = record("r2", {"c", "a", "b"}, {0, 1, 1});
  patchbay::RunRecord r3;
  r3.id = "r3";
  const auto aligned = align_predictions({&r1, &r2, &r3});
  REQUIRE(aligned.clip_ids == std::vector<std::string>{"a", "b", "c"});
  REQUIRE(aligned.runs.size() == 2);
  CHECK(aligned.indices == std::vector<size_t>{0, 1});
  CHECK(aligned.without_predictions == std::vector<size_t>{2});
  CHECK(ScoredRun(aligned.runs[0], Metric::accuracy).metric() == doctest::Approx(2.0 / 3.0));  // a, c right
  CHECK(ScoredRun(aligned.runs[1], Metric::accuracy).metric() == doctest::Approx(2.0 / 3.0));  // a, b right
  // Clip by clip: r1 is right on c where r2 is wrong, and wrong on b where r2 is right.
  CHECK(aligned.runs[0].logits == std::vector<float>{1, 0, 0, 1, 1, 0});
  CHECK(aligned.runs[1].logits == std::vector<float>{1, 0, 1, 0, 0, 1});
}

TEST_CASE("bootstrap: bad settings and inconsistent predictions are refused") {
  const auto r1 = record("r1", {"a", "b"}, {1, 0});
  const auto aligned = align_predictions({&r1});
  const std::vector<ScoredRun> runs{{aligned.runs[0], Metric::accuracy}};
  BootstrapSettings s;
  s.replicates = 0;
  CHECK_THROWS_AS(point_interval(runs, s), patchbay::Error);
  s.replicates = 10;
  s.level = 1.0;
  CHECK_THROWS_AS(point_interval(runs, s), patchbay::Error);
  auto bad = r1;
  bad.test_targets.pop_back();
  CHECK_THROWS_AS(align_predictions({&bad}), patchbay::Error);
  const auto other = record("r2", {"a", "b", "c"}, {1, 0, 1});
  const auto three = align_predictions({&other});
  const std::vector<ScoredRun> longer{{three.runs[0], Metric::accuracy}};
  CHECK_THROWS_AS(paired_difference(runs, longer, {}), patchbay::Error);
  CHECK(metric_of_final_key("test_mAP") == Metric::mAP);
  CHECK_FALSE(metric_of_final_key("valid_accuracy").has_value());
}

TEST_CASE("bootstrap: runs tested on different test sets: the interval spans the sets, pairs are set by set") {
  // A run over `n` clips of set `set`, right on the first `right` of them.
  const auto run = [](const std::string& set, int n, int right) {
    std::vector<std::string> ids;
    std::vector<int> ok;
    for (int i = 0; i < n; ++i) {
      ids.push_back(set + std::to_string(i));
      ok.push_back(i < right);
    }
    const auto r = record(set, ids, ok);
    return ScoredRun(align_predictions({&r}).runs.at(0), Metric::accuracy);
  };
  BootstrapSettings s;
  s.replicates = 1000;
  // One set: exactly the single-set overloads, draw for draw.
  const std::vector<ScoredRun> one{run("x", 40, 30), run("x", 40, 26)};
  const auto single = point_interval(one, s), as_set = point_interval(TestSets{one}, s);
  CHECK(single.lo == as_set.lo);
  CHECK(single.hi == as_set.hi);
  const std::vector<ScoredRun> other{run("x", 40, 20)};
  const auto d1 = paired_difference(one, other, s), d2 = paired_difference(TestSets{one}, TestSets{other}, s);
  CHECK(d1.interval.lo == d2.interval.lo);
  CHECK(d1.estimate == d2.estimate);

  // Two held-out sets, 0.9 on one and 0.5 on the other: the point is 0.7, and its interval
  // reaches towards both (a replicate may draw one set twice), where resampling only the
  // clips of both would give about 0.7 ± 0.1.
  const TestSets point{{run("p", 40, 36)}, {run("q", 40, 20)}};
  const auto ci = point_interval(point, s);
  CHECK(ci.lo < 0.58);
  CHECK(ci.hi > 0.82);
  // Each replicate draws both of its sets: half of them hold one of each (about 0.7), a
  // quarter p twice (0.9), a quarter q twice (0.5), so the middle 40 % sits near 0.7 (one set
  // drawn per replicate would put it at 0.5 and 0.9).
  BootstrapSettings middle = s;
  middle.level = 0.4;
  const auto mid = point_interval(point, middle);
  CHECK(mid.lo > 0.6);
  CHECK(mid.hi < 0.8);
  // A - B: +0.2 on set p, 0 on set q. Per set both points share the set's clips (paired);
  // the sets disagree, so the difference (+0.1) is not resolved by two sets.
  const TestSets a{{run("p", 40, 30)}, {run("q", 40, 20)}}, b{{run("p", 40, 22)}, {run("q", 40, 20)}};
  const auto d = paired_difference(a, b, s);
  CHECK(d.estimate == doctest::Approx(0.1));
  CHECK(d.clips == 80);
  CHECK(d.sets == 2);
  CHECK(d.interval.lo <= 0.0);
  // +0.1 on both sets: resolved.
  const TestSets c{{run("p", 40, 26)}, {run("q", 40, 24)}};
  CHECK(paired_difference(c, b, s).resolved());
  // Sets are paired by position: as many on each side, each with runs.
  CHECK_THROWS_AS(paired_difference(a, TestSets{{run("p", 40, 22)}}, s), patchbay::Error);
  CHECK_THROWS_AS(point_interval(TestSets{{}}, s), patchbay::Error);
}
}

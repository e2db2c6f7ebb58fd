// The sweep ETA's estimator (framework/app/sweep_eta.hpp): the fit, the schedule, and a
// recorded sweep whose runs differ ~5x in cost.
#include <doctest/doctest.h>

#include <cmath>

#include "../../framework/app/sweep_eta.hpp"

using namespace patchbay::cli;

namespace {

RunCost cost(double tokens, double epochs = 10, const std::string& family = "kw") {
  return {family, epochs, tokens};
}

}  // namespace

TEST_CASE("sweep eta: the per-epoch time fit recovers a line and keeps its coefficients >= 0") {
  // 2 s of overhead per epoch plus 0.5 s per token, at different epoch counts.
  const std::vector<TimedRun> line = {{cost(10, 4), 4 * 7.0}, {cost(30, 2), 2 * 17.0}, {cost(100, 1), 52.0}};
  const EpochTimeModel m = fit_epoch_time(line);
  REQUIRE(m.known);
  CHECK(m.a == doctest::Approx(2.0));
  CHECK(m.b == doctest::Approx(0.5));
  CHECK(m.predict(cost(50, 3)) == doctest::Approx(3 * 27.0));

  // One token count: time proportional to tokens.
  const EpochTimeModel one = fit_epoch_time({{cost(20, 5), 100.0}, {cost(20, 5), 120.0}});
  CHECK(one.a == 0);
  CHECK(one.b == doctest::Approx(1.1));
  // More tokens faster (noise): no negative slope, the flat mean.
  const EpochTimeModel flat = fit_epoch_time({{cost(10, 1), 30.0}, {cost(40, 1), 20.0}});
  CHECK(flat.b == 0);
  CHECK(flat.a == doctest::Approx(25.0));
  // A line that would cross zero above 0 tokens: through the origin instead.
  const EpochTimeModel origin = fit_epoch_time({{cost(10, 1), 1.0}, {cost(20, 1), 12.0}});
  CHECK(origin.a == 0);
  CHECK(origin.b == doctest::Approx((10 * 1.0 + 20 * 12.0) / (100.0 + 400.0)));
  // Nothing timed: nothing known.
  CHECK_FALSE(fit_epoch_time({}).known);
  CHECK(std::isnan(fit_epoch_time({}).predict(cost(1))));
}

TEST_CASE("sweep eta: remaining runs go to the worker that frees up first") {
  const std::vector<TimedRun> timed = {{cost(10, 1), 10.0}};  // 1 s per token-epoch
  // One worker: what runs, then each todo run in turn.
  CHECK(sweep_seconds_left(timed, {5.0}, {cost(2, 1), cost(3, 1)}, 1) == doctest::Approx(10.0));
  // Two workers, one busy for 4 s: the free one takes 6 (ends at 6), the busy one then 3
  // (ends at 7), the first again 4 (ends at 10).
  CHECK(sweep_seconds_left(timed, {4.0}, {cost(6, 1), cost(3, 1), cost(4, 1)}, 2) == doctest::Approx(10.0));
  // Nothing left: 0; a run in training without an ETA, or nothing timed to estimate from: NaN.
  CHECK(sweep_seconds_left(timed, {}, {}, 3) == 0);
  CHECK(std::isnan(sweep_seconds_left(timed, {NAN}, {}, 1)));
  CHECK(std::isnan(sweep_seconds_left({}, {}, {cost(1)}, 1)));
}

TEST_CASE("sweep eta: a family without timed runs borrows the fit of all runs") {
  const std::vector<TimedRun> timed = {{cost(10, 1, "small"), 10.0}, {cost(10, 1, "big"), 40.0}};
  CHECK(sweep_seconds_left(timed, {}, {cost(10, 1, "small")}, 1) == doctest::Approx(10.0));
  CHECK(sweep_seconds_left(timed, {}, {cost(10, 1, "big")}, 1) == doctest::Approx(40.0));
  CHECK(sweep_seconds_left(timed, {}, {cost(10, 1, "new")}, 1) == doctest::Approx(25.0));
}

TEST_CASE("sweep eta: on a recorded sweep it follows the runs' costs, where the first run's time does not") {
  // The quick start of experiments/quickstart/quickstart.toml as recorded on 2026-12-05 (AMD
  // EPYC Zen 3, 2 cores, OpenBLAS core Zen, with a build running beside it): 12 epochs each,
  // wall seconds of square 16x16 st 10 (144 tokens), frame 128 x 2 (64) and FFTP st 4 (29).
  const std::vector<TimedRun> runs = {{cost(144, 12), 609.98}, {cost(64, 12), 282.25}, {cost(29, 12), 114.44}};
  const double after_first = runs[1].seconds + runs[2].seconds;  // 396.7 s were left
  const double estimate = sweep_seconds_left({runs[0]}, {}, {runs[1].cost, runs[2].cost}, 1);
  CHECK(estimate == doctest::Approx(after_first).epsilon(0.05));
  // The first run's time for each remaining run, as the sweep line once said (20m20s):
  // three times too long.
  CHECK(2 * runs[0].seconds > 3 * after_first);
  // After two runs the fitted line (with its per-epoch overhead) is within 25 % of the last.
  const double last = sweep_seconds_left({runs[0], runs[1]}, {}, {runs[2].cost}, 1);
  CHECK(last == doctest::Approx(runs[2].seconds).epsilon(0.25));
}

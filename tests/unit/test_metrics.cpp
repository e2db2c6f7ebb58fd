// Metrics against scikit-learn (golden cases from tests/golden/make_metrics_golden.py) and
// against hand-checked small cases.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include <torch/types.h>

#include "patchbay/error.hpp"
#include "patchbay/metrics.hpp"
#include "test_paths.hpp"

namespace {

struct GoldenCase {
  std::string name;
  std::vector<double> scores, labels;
  double ap = 0, auc = 0;
};

std::vector<GoldenCase> golden_cases() {
  std::ifstream in(std::string(patchbay::test::kSourceDir) + "/tests/golden/metrics/cases.txt");
  REQUIRE_MESSAGE(in.good(), "tests/golden/metrics/cases.txt is missing");
  std::vector<GoldenCase> cases;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string key;
    ss >> key;
    if (key == "case") {
      cases.emplace_back();
      ss >> cases.back().name;
    } else if (key == "scores") {
      for (double v; ss >> v;) cases.back().scores.push_back(v);
    } else if (key == "labels") {
      for (double v; ss >> v;) cases.back().labels.push_back(v);
    } else if (key == "expect") {
      ss >> cases.back().ap >> cases.back().auc;
    }
  }
  return cases;
}

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("metrics: AP and ROC-AUC equal scikit-learn's, ties included") {
  const auto cases = golden_cases();
  REQUIRE(cases.size() >= 7);
  for (const auto& c : cases) {
    CAPTURE(c.name);
    REQUIRE(c.scores.size() == c.labels.size());
    CHECK(patchbay::average_precision(c.scores, c.labels) == doctest::Approx(c.ap).epsilon(1e-12));
    CHECK(patchbay::roc_auc(c.scores, c.labels) == doctest::Approx(c.auc).epsilon(1e-12));
  }
}

TEST_CASE("metrics: undefined classes are NaN and left out of the means") {
  CHECK(std::isnan(patchbay::average_precision({0.1, 0.2}, {0, 0})));
  CHECK(std::isnan(patchbay::roc_auc({0.1, 0.2}, {1, 1})));
  // 3 examples, 3 classes: class 2 has no positive.
  const auto logits = torch::tensor({{2.0, 1.0, 0.0}, {0.0, 3.0, 1.0}, {1.0, 0.5, 0.2}});
  const auto targets = torch::tensor({{1.0, 0.0, 0.0}, {0.0, 1.0, 0.0}, {0.0, 1.0, 0.0}});
  const auto m = patchbay::evaluate_classification(logits, targets);
  CHECK(m.accuracy == doctest::Approx(2.0 / 3.0));
  REQUIRE(m.ap_per_class.size() == 3);
  CHECK(std::isnan(m.ap_per_class[2]));
  CHECK(std::isnan(m.auc_per_class[2]));
  // Class 0: positive ranked first -> AP 1, AUC 1. Class 1: scores (1, 3, 0.5) with labels
  // (0, 1, 1): AP = (1/2)(1) + (1/2)(2/3) = 5/6, AUC = 1/2.
  CHECK(m.ap_per_class[0] == doctest::Approx(1.0));
  CHECK(m.ap_per_class[1] == doctest::Approx(5.0 / 6.0));
  CHECK(m.mAP == doctest::Approx((1.0 + 5.0 / 6.0) / 2.0));
  CHECK(m.auc == doctest::Approx(0.75));
  CHECK(m.d_prime == doctest::Approx(std::sqrt(2.0) * 0.6744897501960817).epsilon(1e-9));
}

TEST_CASE("metrics: d-prime and shape errors") {
  CHECK(patchbay::d_prime(0.5) == doctest::Approx(0.0));
  CHECK(patchbay::d_prime(0.841344746068543) == doctest::Approx(std::sqrt(2.0)).epsilon(1e-9));
  CHECK(std::isinf(patchbay::d_prime(1.0)));
  CHECK_THROWS_AS(patchbay::evaluate_classification(torch::zeros({2, 3}), torch::zeros({2, 4})),
                  patchbay::ShapeError);
  CHECK_THROWS_AS(patchbay::evaluate_classification(torch::zeros({0, 3}), torch::zeros({0, 3})),
                  patchbay::ShapeError);
}
}

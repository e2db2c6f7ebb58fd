// train.sampler and train.epoch_size (framework/src/train/sampling.hpp): AST's class-balanced
// weights, the class frequencies balanced draws reach on a skewed set, and the shuffle.
#include <doctest/doctest.h>

#include <torch/types.h>

#include <cmath>
#include <set>

#include "train/sampling.hpp"

using namespace patchbay;

namespace {

// Single-label multi-hot rows: counts[c] clips of class c.
at::Tensor single_label(const std::vector<int64_t>& counts) {
  int64_t n = 0;
  for (auto c : counts) n += c;
  auto m = torch::zeros({n, static_cast<int64_t>(counts.size())});
  int64_t row = 0;
  for (size_t c = 0; c < counts.size(); ++c) {
    for (int64_t i = 0; i < counts[c]; ++i) m[row++][static_cast<int64_t>(c)] = 1;
  }
  return m;
}

at::Generator seeded(uint64_t seed) {
  auto g = at::detail::createCPUGenerator(seed);
  return g;
}

// How often each class is drawn, as a share of all drawn labels.
std::vector<double> class_shares(const at::Tensor& multi_hot, const at::Tensor& draws) {
  const auto drawn = multi_hot.index_select(0, draws).sum(0);
  const auto shares = drawn / drawn.sum();
  return std::vector<double>(shares.data_ptr<float>(), shares.data_ptr<float>() + shares.numel());
}

}  // namespace

TEST_CASE("sampling: balanced clip weights are AST's sum of 1 / (class count + 0.01)") {
  // Clips: {0}, {0}, {0}, {1}, {0, 2}. Counts: class 0: 4, class 1: 1, class 2: 1.
  auto m = torch::zeros({5, 3});
  m[0][0] = m[1][0] = m[2][0] = m[3][1] = m[4][0] = m[4][2] = 1;
  const auto w = balanced_clip_weights(m);
  REQUIRE(w.dtype() == torch::kFloat64);
  CHECK(w[0].item<double>() == doctest::Approx(1 / 4.01));
  CHECK(w[3].item<double>() == doctest::Approx(1 / 1.01));
  CHECK(w[4].item<double>() == doctest::Approx(1 / 4.01 + 1 / 1.01));
}

TEST_CASE("sampling: balanced draws reach equal class frequencies on a skewed set; shuffle keeps the prevalence") {
  const auto m = single_label({700, 250, 50});  // 70 % / 25 % / 5 %
  auto g = seeded(7);
  const EpochSampler balanced("balanced", 30000, m);
  CHECK(balanced.epoch_size() == 30000);
  const auto draws = balanced.draw(g);
  REQUIRE(draws.numel() == 30000);
  // Each share's binomial std at n = 30,000 is ~0.0027: 0.015 is over 5 of them.
  for (double share : class_shares(m, draws)) CHECK(std::abs(share - 1.0 / 3) < 0.015);
  // With replacement: the 50 rare clips are each drawn ~200 times.
  CHECK(std::set<int64_t>(draws.data_ptr<int64_t>(), draws.data_ptr<int64_t>() + draws.numel()).size() == 1000);

  const EpochSampler shuffle("shuffle", 0, m);
  const auto once = shuffle.draw(g);
  REQUIRE(once.numel() == 1000);
  const auto shares = class_shares(m, once);
  CHECK(shares[0] == doctest::Approx(0.70));
  CHECK(shares[2] == doctest::Approx(0.05));
}

TEST_CASE("sampling: multi-label balanced draws follow the clip weights") {
  // 400 clips of {0}, 100 of {0, 1}, 20 of {2}: the expected share of class c among drawn
  // labels is sum_i w_i y_ic / sum_i w_i |y_i|.
  auto m = torch::zeros({520, 3});
  for (int64_t i = 0; i < 500; ++i) m[i][0] = 1;
  for (int64_t i = 400; i < 500; ++i) m[i][1] = 1;
  for (int64_t i = 500; i < 520; ++i) m[i][2] = 1;
  const auto w = balanced_clip_weights(m).to(torch::kFloat32);
  const auto expected = (w.unsqueeze(1) * m).sum(0) / (w.unsqueeze(1) * m).sum();
  auto g = seeded(3);
  const auto shares = class_shares(m, EpochSampler("balanced", 40000, m).draw(g));
  for (int64_t c = 0; c < 3; ++c) {
    CHECK(shares[static_cast<size_t>(c)] == doctest::Approx(expected[c].item<double>()).epsilon(0.05));
  }
  // The rare class is drawn far above its 3 % of labels.
  CHECK(shares[2] > 0.2);  // of the labels held: 20 of 620, ~3 %; of those drawn ~24 %
}

TEST_CASE("sampling: draws are fixed by the generator's seed; shuffle's epoch size concatenates permutations") {
  const auto m = single_label({60, 40});
  auto a = seeded(11), b = seeded(11), c = seeded(12);
  const EpochSampler balanced("balanced", 64, m);
  const auto first = balanced.draw(a);
  CHECK(torch::equal(first, balanced.draw(b)));
  CHECK_FALSE(torch::equal(first, balanced.draw(c)));

  // 250 of 100 clips: two whole permutations, then 50 distinct clips.
  const auto order = EpochSampler("shuffle", 250, m).draw(a);
  REQUIRE(order.numel() == 250);
  const int64_t* p = order.data_ptr<int64_t>();
  CHECK(std::set<int64_t>(p, p + 100).size() == 100);
  CHECK(std::set<int64_t>(p + 100, p + 200).size() == 100);
  CHECK(std::set<int64_t>(p + 200, p + 250).size() == 50);
  // 0 is the split's size: one permutation, the draw the trainer always made.
  auto d = seeded(5), e = seeded(5);
  CHECK(torch::equal(EpochSampler("shuffle", 0, m).draw(d), torch::randperm(100, e, torch::kLong)));
  CHECK_THROWS_AS(EpochSampler("weighted", 0, m), std::invalid_argument);
}

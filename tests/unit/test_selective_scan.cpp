// The selective-scan kernel against a per-timestep reference written from REFERENCE.md §3,
// and its backward against central finite differences in double precision.
#include <doctest/doctest.h>

#include <torch/nn.h>

#include "../../plugins/backbones/aum/selective_scan.hpp"
#include "patchbay/error.hpp"

using patchbay::aum::selective_scan;

namespace {

struct ScanCase {
  at::Tensor u, delta, a, b, c, d, z, bias;
  bool softplus = false;
  std::vector<at::Tensor*> inputs() { return {&u, &delta, &a, &b, &c, &d, &z, &bias}; }
};

// Inputs in the ranges Mamba's own tests use: positive step sizes, negative A.
ScanCase random_case(int64_t batch, int64_t dim, int64_t len, int64_t n, bool with_d, bool with_z,
                     bool with_bias, bool softplus, at::ScalarType dtype) {
  const auto o = torch::TensorOptions().dtype(dtype);
  ScanCase s;
  s.u = torch::randn({batch, dim, len}, o);
  s.delta = 0.5 * torch::rand({batch, dim, len}, o);
  s.a = -0.5 - torch::rand({dim, n}, o);
  s.b = torch::randn({batch, n, len}, o);
  s.c = torch::randn({batch, n, len}, o);
  if (with_d) s.d = torch::randn({dim}, o);
  if (with_z) s.z = torch::randn({batch, dim, len}, o);
  if (with_bias) s.bias = torch::rand({dim}, o) - 0.5;
  s.softplus = softplus;
  return s;
}

// A direct transcription of the math: one tensor-op step per time step.
at::Tensor reference_scan(const ScanCase& s) {
  auto dt = s.delta;
  if (s.bias.defined()) dt = dt + s.bias.view({1, -1, 1});
  if (s.softplus) dt = torch::log1p(torch::exp(dt));
  const int64_t len = s.u.size(2);
  auto h = torch::zeros({s.u.size(0), s.u.size(1), s.a.size(1)}, s.u.options());
  std::vector<at::Tensor> ys;
  for (int64_t t = 0; t < len; ++t) {
    const auto dt_t = dt.select(2, t).unsqueeze(-1);                         // [b, d, 1]
    const auto decay = torch::exp(dt_t * s.a.unsqueeze(0));                  // [b, d, n]
    const auto input = dt_t * s.b.select(2, t).unsqueeze(1) * s.u.select(2, t).unsqueeze(-1);
    h = decay * h + input;
    ys.push_back((h * s.c.select(2, t).unsqueeze(1)).sum(-1));               // [b, d]
  }
  auto y = torch::stack(ys, 2);
  if (s.d.defined()) y = y + s.d.view({1, -1, 1}) * s.u;
  if (s.z.defined()) y = y * s.z * torch::sigmoid(s.z);
  return y;
}

at::Tensor kernel_scan(const ScanCase& s) {
  return selective_scan(s.u, s.delta, s.a, s.b, s.c, s.d, s.z, s.bias, s.softplus);
}

const char* kNames[] = {"u", "delta", "A", "B", "C", "D", "z", "delta_bias"};

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("selective_scan: forward matches the per-step reference (float32 and float64)") {
  torch::manual_seed(1);
  const std::vector<std::array<int64_t, 4>> shapes = {
      {1, 1, 1, 1}, {2, 3, 1, 4}, {2, 5, 7, 3}, {3, 17, 33, 16}, {1, 33, 64, 16}, {2, 4, 101, 5}};
  for (const auto& sh : shapes) {
    for (int flags = 0; flags < 16; ++flags) {
      CAPTURE(sh[0]);
      CAPTURE(sh[1]);
      CAPTURE(sh[2]);
      CAPTURE(sh[3]);
      CAPTURE(flags);
      const bool with_d = flags & 1, with_z = flags & 2, with_bias = flags & 4, softplus = flags & 8;
      auto s = random_case(sh[0], sh[1], sh[2], sh[3], with_d, with_z, with_bias, softplus, at::kFloat);
      // The reference in double from the same float32 values: the float32 kernel is judged
      // against the exact answer, with the fp32-port tolerance of REFERENCE.md §3.
      ScanCase exact = s;
      for (auto* t : exact.inputs()) {
        if (t->defined()) *t = t->to(at::kDouble);
      }
      const auto expected = reference_scan(exact);
      const auto got = kernel_scan(s);
      REQUIRE(got.sizes() == s.u.sizes());
      CHECK((got.scalar_type() == at::kFloat));
      CHECK(torch::allclose(got.to(at::kDouble), expected, 6e-4, 2e-3));
      // In double the kernel agrees to rounding.
      CHECK(torch::allclose(kernel_scan(exact), expected, 1e-10, 1e-10));
    }
  }
}

TEST_CASE("selective_scan: non-contiguous inputs give the same result") {
  torch::manual_seed(2);
  auto s = random_case(2, 6, 9, 4, true, true, true, true, at::kFloat);
  ScanCase t = s;
  // Same values, transposed storage.
  t.u = s.u.transpose(1, 2).contiguous().transpose(1, 2);
  t.delta = s.delta.transpose(0, 2).contiguous().transpose(0, 2);
  t.b = s.b.transpose(1, 2).contiguous().transpose(1, 2);
  t.a = s.a.t().contiguous().t();
  REQUIRE(!t.u.is_contiguous());
  CHECK(torch::equal(kernel_scan(t), kernel_scan(s)));
}

TEST_CASE("selective_scan: gradients match central finite differences (float64)") {
  torch::manual_seed(3);
  struct Config {
    int64_t batch, dim, len, n;
    bool d, z, bias, softplus;
  };
  const Config configs[] = {{2, 3, 5, 4, true, true, true, true},
                            {2, 3, 5, 4, false, false, false, false},
                            {1, 2, 1, 3, true, true, true, true},
                            {2, 18, 3, 2, true, false, true, true},  // crosses a channel block
                            {1, 4, 6, 3, false, true, false, true}};
  for (const auto& cfg : configs) {
    CAPTURE(cfg.dim);
    CAPTURE(cfg.len);
    auto s = random_case(cfg.batch, cfg.dim, cfg.len, cfg.n, cfg.d, cfg.z, cfg.bias, cfg.softplus, at::kDouble);
    const auto weight = torch::randn(s.u.sizes(), s.u.options());  // loss = sum(w * out)
    const auto loss = [&](const ScanCase& c) { return (kernel_scan(c) * weight).sum().item<double>(); };

    ScanCase g = s;
    for (auto* t : g.inputs()) {
      if (t->defined()) *t = t->detach().clone().requires_grad_(true);
    }
    (kernel_scan(g) * weight).sum().backward();

    const double eps = 1e-6;
    for (size_t i = 0; i < 8; ++i) {
      if (!g.inputs()[i]->defined()) continue;
      CAPTURE(kNames[i]);
      const auto analytic = g.inputs()[i]->grad();
      REQUIRE(analytic.defined());
      REQUIRE(analytic.sizes() == g.inputs()[i]->sizes());
      auto flat = s.inputs()[i]->view({-1});
      const auto an = analytic.reshape({-1});
      double worst = 0;
      for (int64_t k = 0; k < flat.numel(); ++k) {
        const double keep = flat[k].item<double>();
        flat[k] = keep + eps;
        const double up = loss(s);
        flat[k] = keep - eps;
        const double down = loss(s);
        flat[k] = keep;
        const double numeric = (up - down) / (2 * eps);
        const double a = an[k].item<double>();
        worst = std::max(worst, std::abs(numeric - a) / (1e-5 + 1e-5 * std::abs(a)));
      }
      CHECK(worst <= 1.0);
    }
  }
}

TEST_CASE("selective_scan: backward equals autograd through the reference at width > one block") {
  torch::manual_seed(4);
  auto s = random_case(2, 37, 23, 16, true, true, true, true, at::kDouble);
  ScanCase k = s, r = s;
  for (auto* t : k.inputs()) *t = t->detach().clone().requires_grad_(true);
  for (auto* t : r.inputs()) *t = t->detach().clone().requires_grad_(true);
  const auto w = torch::randn(s.u.sizes(), s.u.options());
  (kernel_scan(k) * w).sum().backward();
  (reference_scan(r) * w).sum().backward();
  for (size_t i = 0; i < 8; ++i) {
    CAPTURE(kNames[i]);
    CHECK(torch::allclose(k.inputs()[i]->grad(), r.inputs()[i]->grad(), 1e-9, 1e-9));
  }
}

TEST_CASE("selective_scan: mismatched shapes and dtypes are ShapeErrors") {
  auto s = random_case(2, 3, 5, 4, true, true, true, true, at::kFloat);
  CHECK_THROWS_AS(selective_scan(s.u, s.delta.slice(2, 0, 4), s.a, s.b, s.c), patchbay::ShapeError);
  CHECK_THROWS_AS(selective_scan(s.u, s.delta, s.a, s.b.slice(1, 0, 3), s.c), patchbay::ShapeError);
  CHECK_THROWS_AS(selective_scan(s.u, s.delta, s.a.slice(0, 0, 2), s.b, s.c), patchbay::ShapeError);
  CHECK_THROWS_AS(selective_scan(s.u, s.delta, s.a, s.b, s.c, torch::ones({4})), patchbay::ShapeError);
  CHECK_THROWS_AS(selective_scan(s.u.to(at::kDouble), s.delta, s.a, s.b, s.c), patchbay::ShapeError);
  CHECK_THROWS_AS(selective_scan(s.u.flatten(), s.delta, s.a, s.b, s.c), patchbay::ShapeError);
}
}

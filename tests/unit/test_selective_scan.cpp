// The selective-scan kernel against a per-timestep reference written from docs/reference.md §3,
// and its backward against central finite differences in double precision. The float
// kernel exists once per instruction set (AVX-512, AVX2, baseline x86-64): the float tests
// run every one this CPU supports.
#include <doctest/doctest.h>

#include <ATen/Parallel.h>
#include <torch/nn.h>

#include "../../plugins/backbones/aum/selective_scan.hpp"
#include "../../plugins/backbones/aum/selective_scan_chunked.hpp"
#include "../../plugins/backbones/aum/selective_scan_kernel.hpp"
#include "patchbay/error.hpp"

using patchbay::aum::selective_scan;
using patchbay::aum::selective_scan_chunked;
namespace sk = patchbay::aum::scan_kernel;

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

// Runs `body` once per instruction set this CPU supports, with the float kernel forced to it.
template <typename F>
void for_each_isa(F body) {
  struct Unforce {
    ~Unforce() { sk::unforce_isa(); }
  } unforce;
  for (const auto isa : {sk::Isa::baseline, sk::Isa::avx2, sk::Isa::avx512}) {
    if (!sk::force_isa(isa)) continue;
    const std::string isa_name = sk::isa_name(isa);
    CAPTURE(isa_name);
    body();
  }
}

// Gradients of sum(w * scan) for every defined input of `s`, through `scan`.
template <typename Scan>
std::vector<at::Tensor> gradients(const ScanCase& s, const at::Tensor& w, Scan scan) {
  ScanCase g = s;
  for (auto* t : g.inputs()) {
    if (t->defined()) *t = t->detach().clone().requires_grad_(true);
  }
  (scan(g) * w).sum().backward();
  std::vector<at::Tensor> out;
  for (auto* t : g.inputs()) out.push_back(t->defined() ? t->grad() : at::Tensor());
  return out;
}

ScanCase to_double(const ScanCase& s) {
  ScanCase d = s;
  for (auto* t : d.inputs()) {
    if (t->defined()) *t = t->to(at::kDouble);
  }
  return d;
}

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("selective_scan: forward matches the per-step reference (float32 and float64)") {
  torch::manual_seed(1);
  const std::vector<std::array<int64_t, 4>> shapes = {
      {1, 1, 1, 1}, {2, 3, 1, 4}, {2, 5, 7, 3}, {3, 17, 33, 16}, {1, 33, 64, 16}, {2, 4, 101, 5}};
  for_each_isa([&] {
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
        // against the exact answer, with the fp32-port tolerance of docs/reference.md §3.
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
  });
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

TEST_CASE("selective_scan: float gradients match the double reference on every instruction set") {
  torch::manual_seed(5);
  struct Config {
    int64_t batch, dim, len, n;
    bool d, z, bias, softplus;
  };
  // Lengths past one checkpoint chunk, widths with a partial channel block, 16 states (the
  // register-resident path) and other counts.
  const Config configs[] = {{2, 37, 70, 16, true, true, true, true},
                            {1, 9, 45, 5, true, true, true, true},
                            {2, 16, 33, 16, false, false, false, false},
                            {1, 20, 100, 16, true, false, true, true},
                            {2, 3, 1, 16, true, true, true, true}};
  for (const auto& cfg : configs) {
    CAPTURE(cfg.dim);
    CAPTURE(cfg.len);
    CAPTURE(cfg.n);
    auto s = random_case(cfg.batch, cfg.dim, cfg.len, cfg.n, cfg.d, cfg.z, cfg.bias, cfg.softplus, at::kFloat);
    const auto w = torch::randn(s.u.sizes());
    const auto expected = gradients(to_double(s), w.to(at::kDouble), reference_scan);
    for_each_isa([&] {
      const auto got = gradients(s, w, kernel_scan);
      for (size_t i = 0; i < 8; ++i) {
        if (!expected[i].defined()) continue;
        CAPTURE(kNames[i]);
        REQUIRE(got[i].defined());
        REQUIRE((got[i].scalar_type() == at::kFloat));
        // Relative to the gradient's largest entry: float rounding over sums of up to
        // batch * len (dA, dD, delta_bias) or dim (dB, dC) terms.
        const double scale = expected[i].abs().max().item<double>() + 1e-12;
        const double err = (got[i].to(at::kDouble) - expected[i]).abs().max().item<double>() / scale;
        CHECK(err < 2e-5);
      }
    });
  }
}

TEST_CASE("selective_scan: double backward across chunk boundaries equals autograd through the reference") {
  torch::manual_seed(6);
  const std::vector<std::array<int64_t, 4>> shapes = {{2, 37, 70, 16}, {1, 6, 100, 3}, {1, 5, 65, 16}};
  for (const auto& sh : shapes) {
    CAPTURE(sh[1]);
    CAPTURE(sh[2]);
    CAPTURE(sh[3]);
    auto s = random_case(sh[0], sh[1], sh[2], sh[3], true, true, true, true, at::kDouble);
    const auto w = torch::randn(s.u.sizes(), s.u.options());
    const auto got = gradients(s, w, kernel_scan), expected = gradients(s, w, reference_scan);
    for (size_t i = 0; i < 8; ++i) {
      CAPTURE(kNames[i]);
      CHECK(torch::allclose(got[i], expected[i], 1e-9, 1e-9));
    }
  }
}

TEST_CASE("selective_scan: strided inputs and output gradient give the same gradients") {
  torch::manual_seed(7);
  auto s = random_case(2, 37, 50, 16, true, true, true, true, at::kFloat);
  ScanCase t = s;
  // Channels contiguous (AuM's delta and gradients), batch-major transposed, and a broadcast.
  t.u = s.u.transpose(1, 2).contiguous().transpose(1, 2);
  t.delta = s.delta.transpose(0, 2).contiguous().transpose(0, 2);
  t.z = s.z.transpose(1, 2).contiguous().transpose(1, 2);
  t.b = s.b.transpose(1, 2).contiguous().transpose(1, 2);
  REQUIRE(!t.u.is_contiguous());
  const auto w = torch::randn(s.u.sizes());
  const auto w_strided = w.transpose(1, 2).contiguous().transpose(1, 2);
  for_each_isa([&] {
    const auto a = gradients(s, w, kernel_scan);
    const auto b = gradients(t, w_strided, kernel_scan);
    for (size_t i = 0; i < 8; ++i) {
      CAPTURE(kNames[i]);
      CHECK(torch::equal(a[i], b[i]));
    }
    // The gradient of a plain sum arrives as a broadcast scalar (all strides 0).
    const auto ones = gradients(s, torch::ones(s.u.sizes()), kernel_scan);
    ScanCase g = s;
    for (auto* x : g.inputs()) *x = x->detach().clone().requires_grad_(true);
    kernel_scan(g).sum().backward();
    for (size_t i = 0; i < 8; ++i) {
      CAPTURE(kNames[i]);
      CHECK(torch::equal(ones[i], g.inputs()[i]->grad()));
    }
  });
}

TEST_CASE("selective_scan: more threads split channels into groups with the same gradients") {
  torch::manual_seed(8);
  auto s = random_case(1, 70, 40, 16, true, true, true, true, at::kFloat);
  const auto w = torch::randn(s.u.sizes());
  const int before = at::get_num_threads();
  const auto one = gradients(s, w, kernel_scan);
  at::set_num_threads(3);
  const auto three = gradients(s, w, kernel_scan);
  at::set_num_threads(before);
  for (size_t i = 0; i < 8; ++i) {
    CAPTURE(kNames[i]);
    CHECK(torch::allclose(one[i], three[i], 1e-5, 1e-5));
  }
}

TEST_CASE("selective_scan: forward without autograd equals forward with it") {
  torch::manual_seed(9);
  auto s = random_case(2, 20, 70, 16, true, true, true, true, at::kFloat);
  const auto plain = kernel_scan(s);
  ScanCase g = s;
  for (auto* t : g.inputs()) *t = t->detach().clone().requires_grad_(true);
  const auto tracked = kernel_scan(g);
  CHECK(tracked.requires_grad());
  CHECK(torch::equal(plain, tracked.detach()));
  torch::NoGradGuard no_grad;
  CHECK(!kernel_scan(g).requires_grad());
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

TEST_CASE("selective_scan: inputs on two devices are a ShapeError") {
  auto s = random_case(2, 3, 5, 4, true, true, true, true, at::kFloat);
  const auto meta = torch::empty(s.delta.sizes(), torch::TensorOptions().dtype(at::kFloat).device(at::kMeta));
  CHECK_THROWS_AS(selective_scan(s.u, meta, s.a, s.b, s.c), patchbay::ShapeError);
}

// The device-generic scan (what runs on a GPU) against the CPU kernel, forward and backward,
// at chunk lengths that divide the length, do not, are 1, and exceed it.
TEST_CASE("selective_scan_chunked: forward and gradients equal the CPU kernel") {
  torch::manual_seed(11);
  const std::vector<std::array<int64_t, 4>> shapes = {{1, 1, 1, 1}, {2, 5, 7, 3}, {2, 18, 33, 16}, {1, 4, 101, 5}};
  for (const auto& sh : shapes) {
    for (const int64_t chunk : {1, 4, 16, 128}) {
      for (const int flags : {0, 5, 10, 15}) {
        CAPTURE(sh[1]);
        CAPTURE(sh[2]);
        CAPTURE(chunk);
        CAPTURE(flags);
        const bool with_d = flags & 1, with_z = flags & 2, with_bias = flags & 4, softplus = flags & 8;
        const auto f = random_case(sh[0], sh[1], sh[2], sh[3], with_d, with_z, with_bias, softplus, at::kFloat);
        const auto chunked = [&](const ScanCase& c) {
          return selective_scan_chunked(c.u, c.delta, c.a, c.b, c.c, c.d, c.z, c.bias, c.softplus, chunk);
        };
        // double: both are exact up to rounding, so they agree to rounding.
        const auto d = to_double(f);
        CHECK(torch::allclose(chunked(d), kernel_scan(d), 1e-10, 1e-10));
        const auto w = torch::randn(f.u.sizes(), f.u.options());
        const auto g_kernel = gradients(d, w.to(at::kDouble), kernel_scan);
        const auto g_chunked = gradients(d, w.to(at::kDouble), chunked);
        for (size_t i = 0; i < g_kernel.size(); ++i) {
          CAPTURE(kNames[i]);
          REQUIRE(g_kernel[i].defined() == g_chunked[i].defined());
          if (g_kernel[i].defined()) CHECK(torch::allclose(g_chunked[i], g_kernel[i], 1e-9, 1e-9));
        }
        // float32: each within the kernel's float tolerance of the exact answer.
        CHECK(torch::allclose(chunked(f).to(at::kDouble), kernel_scan(d), 6e-4, 2e-3));
        const auto g_float = gradients(f, w, chunked);
        for (size_t i = 0; i < g_kernel.size(); ++i) {
          CAPTURE(kNames[i]);
          if (!g_kernel[i].defined()) continue;
          // Relative to the largest entry, as the kernel's own float gradient test (which
          // holds the kernel to 2e-5): the chunk's cumulative sums cost some of that.
          const double scale = g_kernel[i].abs().max().item<double>() + 1e-12;
          CHECK((g_float[i].to(at::kDouble) - g_kernel[i]).abs().max().item<double>() / scale < 1e-4);
        }
      }
    }
  }
}

TEST_CASE("selective_scan_chunked: strong decays over a long chunk stay finite") {
  // dt A down to -45 per step: exp(-L_s) alone would overflow float32 within 2 steps; the
  // pairwise form only ever exponentiates non-positive numbers.
  torch::manual_seed(12);
  auto s = random_case(2, 6, 40, 4, true, true, true, true, at::kFloat);
  s.delta = s.delta * 0 + 3.0;
  s.a = s.a * 15;
  const auto chunked = selective_scan_chunked(s.u, s.delta, s.a, s.b, s.c, s.d, s.z, s.bias, true, 40);
  CHECK(torch::isfinite(chunked).all().item<bool>());
  CHECK(torch::allclose(chunked.to(at::kDouble), kernel_scan(to_double(s)), 6e-4, 2e-3));
  const auto g = gradients(s, torch::ones_like(s.u), [](const ScanCase& c) {
    return selective_scan_chunked(c.u, c.delta, c.a, c.b, c.c, c.d, c.z, c.bias, c.softplus, 40);
  });
  for (const auto& t : g) {
    if (t.defined()) CHECK(torch::isfinite(t).all().item<bool>());
  }
}

TEST_CASE("selective_scan_chunked: a chunk below 1 is a ShapeError") {
  auto s = random_case(1, 2, 3, 2, false, false, false, false, at::kFloat);
  CHECK_THROWS_AS(selective_scan_chunked(s.u, s.delta, s.a, s.b, s.c, {}, {}, {}, false, 0), patchbay::ShapeError);
}
}

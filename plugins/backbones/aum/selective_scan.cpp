// Selective scan kernel: one sequential recurrence per (batch, channel) row, rows spread
// over at::parallel_for. The n states of a row are the inner loop, so B and C are read in a
// [b, l, n] layout (transposed once per call) to keep that loop contiguous.
#include "selective_scan.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/exp.h>
#include <ATen/ops/sigmoid.h>
#include <ATen/ops/softplus.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "patchbay/error.hpp"

namespace patchbay::aum {
namespace {

// Raw views of one call's inputs. Optional inputs are nullptr.
template <typename T>
struct ScanArgs {
  const T* u;      // [b, d, l]
  const T* dt;     // [b, d, l] step sizes (bias and softplus applied)
  const T* decay;  // [b, d, l, n] exp(dt A)
  const T* a;      // [d, n]
  const T* bt;     // [b, l, n] (B transposed)
  const T* ct;     // [b, l, n] (C transposed)
  const T* dskip;  // [d]
  const T* z;      // [b, d, l]
  int64_t batch, dim, len, nstate;
};

template <typename T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// Rows per parallel task: enough work per task (~32k state updates) to amortise scheduling.
int64_t grain(int64_t len, int64_t nstate) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, len * nstate));
}

template <typename T>
void scan_forward(const ScanArgs<T>& a, T* out) {
  const int64_t n = a.nstate, len = a.len;
  at::parallel_for(0, a.batch * a.dim, grain(len, n), [&](int64_t begin, int64_t end) {
    std::vector<T> h(static_cast<size_t>(n));
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / a.dim, d = row % a.dim;
      std::fill(h.begin(), h.end(), T(0));
      for (int64_t t = 0; t < len; ++t) {
        const T ut = a.u[row * len + t];
        const T dtu = a.dt[row * len + t] * ut;
        const T* dk = a.decay + (row * len + t) * n;
        const T* bt = a.bt + (b * len + t) * n;
        const T* ct = a.ct + (b * len + t) * n;
        // Update and contraction in separate loops: the update vectorises, a float sum
        // would not (no reassociation without -ffast-math).
        for (int64_t k = 0; k < n; ++k) h[k] = dk[k] * h[k] + dtu * bt[k];
        T y = 0;
        for (int64_t k = 0; k < n; ++k) y += h[k] * ct[k];
        if (a.dskip) y += a.dskip[d] * ut;
        if (a.z) {
          const T zt = a.z[row * len + t];
          y *= zt * sigmoid(zt);
        }
        out[row * len + t] = y;
      }
    }
  });
}

// Gradient buffers of one backward call. B, C, A and D are shared by many rows, so rows
// write partial sums that are reduced after the parallel loop: dB and dC per (batch, block
// of kChannelBlock channels), dA and dD per (batch, channel).
template <typename T>
struct ScanGrads {
  T* du;        // [b, d, l]
  T* ddt;       // [b, d, l] gradient of the step size dt
  T* dz;        // [b, d, l] or nullptr
  T* da_part;   // [b, d, n]
  T* dd_part;   // [b, d] or nullptr
  T* dbt_part;  // [b, blocks, l, n]
  T* dct_part;  // [b, blocks, l, n]
};

constexpr int64_t kChannelBlock = 16;

template <typename T>
void scan_backward(const ScanArgs<T>& a, const T* gout, const ScanGrads<T>& g) {
  const int64_t n = a.nstate, len = a.len, dim = a.dim;
  const int64_t blocks = (dim + kChannelBlock - 1) / kChannelBlock;
  const int64_t task_grain = std::max<int64_t>(1, grain(len, n) / kChannelBlock);
  at::parallel_for(0, a.batch * blocks, task_grain, [&](int64_t begin, int64_t end) {
    // Per-task buffers: the recomputed states of one row (row 0 is h_{-1} = 0, row t + 1 is
    // h_t, so no step needs a branch), the pre-gate outputs, dL/dh, and per-state terms.
    std::vector<T> hs(static_cast<size_t>((len + 1) * n), T(0)), gated(static_cast<size_t>(len));
    std::vector<T> gh(static_cast<size_t>(n)), gb(static_cast<size_t>(n)), gaa(static_cast<size_t>(n));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / blocks, blk = task % blocks;
      T* dbt = g.dbt_part + task * len * n;
      T* dct = g.dct_part + task * len * n;
      for (int64_t d = blk * kChannelBlock; d < std::min(dim, (blk + 1) * kChannelBlock); ++d) {
        const int64_t row = b * dim + d;
        const T* arow = a.a + d * n;
        const T* u = a.u + row * len;
        const T* dts = a.dt + row * len;
        const T* decay = a.decay + row * len * n;
        // Forward again, keeping every state (the recurrence is not safely invertible).
        for (int64_t t = 0; t < len; ++t) {
          const T dtu = dts[t] * u[t];
          const T* bt = a.bt + (b * len + t) * n;
          const T* ct = a.ct + (b * len + t) * n;
          const T* prev = hs.data() + t * n;
          T* h = hs.data() + (t + 1) * n;
          for (int64_t k = 0; k < n; ++k) h[k] = decay[t * n + k] * prev[k] + dtu * bt[k];
          T y = 0;
          for (int64_t k = 0; k < n; ++k) y += h[k] * ct[k];
          if (a.dskip) y += a.dskip[d] * u[t];
          gated[t] = y;  // the output before the z gate
        }
        // Reverse time: gh holds dL/dh_t, carried backwards through the decays.
        std::fill(gh.begin(), gh.end(), T(0));
        T* da = g.da_part + row * n;
        T dd_acc = 0;
        for (int64_t t = len - 1; t >= 0; --t) {
          T go = gout[row * len + t];
          if (a.z) {
            const T zt = a.z[row * len + t];
            const T s = sigmoid(zt);
            g.dz[row * len + t] = go * gated[t] * s * (T(1) + zt * (T(1) - s));
            go *= zt * s;
          }
          const T dt = dts[t], ut = u[t];
          T du = 0;
          if (a.dskip) {
            dd_acc += go * ut;
            du = go * a.dskip[d];
          }
          const T* bt = a.bt + (b * len + t) * n;
          const T* ct = a.ct + (b * len + t) * n;
          const T* hprev = hs.data() + t * n;
          const T* hcur = hs.data() + (t + 1) * n;
          const T* dk = decay + t * n;
          const T dtu = dt * ut;
          for (int64_t k = 0; k < n; ++k) {
            gh[k] += go * ct[k];  // now dL/dh_t
            dct[t * n + k] += go * hcur[k];
            dbt[t * n + k] += gh[k] * dtu;
            gb[k] = gh[k] * bt[k];
            // d/d(dt) and d/dA of exp(dt A) h_{t-1}.
            const T ga = gh[k] * hprev[k] * dk[k];
            gaa[k] = ga * arow[k];
            da[k] += ga * dt;
            gh[k] *= dk[k];  // carried to t - 1
          }
          T sum_gb = 0, ddt = 0;
          for (int64_t k = 0; k < n; ++k) {
            sum_gb += gb[k];
            ddt += gaa[k];
          }
          g.du[row * len + t] = du + dt * sum_gb;
          g.ddt[row * len + t] = ddt + ut * sum_gb;
        }
        if (g.dd_part) g.dd_part[row] = dd_acc;
      }
    }
  });
}

// Step sizes and decays of one call, materialised with ATen's vectorised exp: the decays
// are [b, d, l, n] (n times the input's size), computed in each forward and again in
// backward, never kept in between. `pre` receives delta + bias (for softplus' derivative).
struct Steps {
  at::Tensor pre, dt, decay;
};
Steps steps_of(const at::Tensor& delta, const at::Tensor& bias, const at::Tensor& a, bool softplus) {
  Steps s;
  s.pre = bias.defined() ? delta + bias.view({1, -1, 1}) : delta;
  s.dt = (softplus ? at::softplus(s.pre, 1, 20) : s.pre).contiguous();
  s.decay = at::exp(s.dt.unsqueeze(-1) * a.unsqueeze(1)).contiguous();
  return s;
}

template <typename T>
ScanArgs<T> args_of(const at::Tensor& u, const Steps& st, const at::Tensor& a, const at::Tensor& bt,
                    const at::Tensor& ct, const at::Tensor& dskip, const at::Tensor& z) {
  const auto ptr = [](const at::Tensor& t) { return t.defined() ? t.data_ptr<T>() : nullptr; };
  return {ptr(u),     ptr(st.dt), ptr(st.decay), ptr(a),    ptr(bt),  ptr(ct),
          ptr(dskip), ptr(z),     u.size(0),     u.size(1), u.size(2), a.size(1)};
}

at::Tensor contiguous_or_undefined(const at::Tensor& t) { return t.defined() ? t.contiguous() : t; }

void check(bool ok, const std::string& what) {
  if (!ok) throw patchbay::ShapeError("shape.selective_scan", "selective_scan: " + what);
}

std::string shape_of(const at::Tensor& t) {
  return t.defined() ? fmt::format("[{}]", fmt::join(t.sizes(), ", ")) : "undefined";
}

}  // namespace

at::Tensor SelectiveScanFn::forward(torch::autograd::AutogradContext* ctx, const at::Tensor& u,
                                    const at::Tensor& delta, const at::Tensor& A, const at::Tensor& B,
                                    const at::Tensor& C, const c10::optional<at::Tensor>& D_opt,
                                    const c10::optional<at::Tensor>& z_opt,
                                    const c10::optional<at::Tensor>& bias_opt, bool delta_softplus) {
  const at::Tensor D = D_opt.value_or(at::Tensor()), z = z_opt.value_or(at::Tensor());
  const at::Tensor delta_bias = bias_opt.value_or(at::Tensor());
  ctx->save_for_backward({u, delta, A, B, C, D, z, delta_bias});
  ctx->saved_data["softplus"] = delta_softplus;
  const auto uc = u.contiguous(), ac = A.contiguous();
  const auto bt = B.transpose(1, 2).contiguous(), ct = C.transpose(1, 2).contiguous();
  const auto dskip = contiguous_or_undefined(D), zc = contiguous_or_undefined(z);
  const auto steps = steps_of(delta, delta_bias, ac, delta_softplus);
  auto out = at::empty(u.sizes(), u.options().memory_format(at::MemoryFormat::Contiguous));
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_forward", [&] {
    scan_forward(args_of<scalar_t>(uc, steps, ac, bt, ct, dskip, zc), out.data_ptr<scalar_t>());
  });
  return out;
}

torch::autograd::variable_list SelectiveScanFn::backward(torch::autograd::AutogradContext* ctx,
                                                         torch::autograd::variable_list grad_out) {
  const auto saved = ctx->get_saved_variables();
  const bool softplus = ctx->saved_data["softplus"].toBool();
  const auto uc = saved[0].contiguous(), ac = saved[2].contiguous();
  const auto bt = saved[3].transpose(1, 2).contiguous(), ct = saved[4].transpose(1, 2).contiguous();
  const auto dskip = contiguous_or_undefined(saved[5]), zc = contiguous_or_undefined(saved[6]);
  const auto& bias = saved[7];
  const auto steps = steps_of(saved[1], bias, ac, softplus);
  const int64_t batch = uc.size(0), dim = uc.size(1), len = uc.size(2), n = ac.size(1);
  const int64_t blocks = (dim + kChannelBlock - 1) / kChannelBlock;
  const auto opts = uc.options();

  at::Tensor gout = grad_out[0].defined() ? grad_out[0].to(uc.scalar_type()).contiguous()
                                          : at::zeros_like(uc);
  auto du = at::empty(uc.sizes(), opts), ddt = at::empty(uc.sizes(), opts);
  at::Tensor dz = zc.defined() ? at::empty(uc.sizes(), opts) : at::Tensor();
  auto da_part = at::zeros({batch, dim, n}, opts);
  at::Tensor dd_part = dskip.defined() ? at::empty({batch, dim}, opts) : at::Tensor();
  auto dbt_part = at::zeros({batch, blocks, len, n}, opts), dct_part = at::zeros({batch, blocks, len, n}, opts);

  AT_DISPATCH_FLOATING_TYPES(uc.scalar_type(), "selective_scan_backward", [&] {
    const auto ptr = [](const at::Tensor& t) { return t.defined() ? t.data_ptr<scalar_t>() : nullptr; };
    ScanGrads<scalar_t> g{ptr(du), ptr(ddt), ptr(dz), ptr(da_part), ptr(dd_part), ptr(dbt_part), ptr(dct_part)};
    scan_backward(args_of<scalar_t>(uc, steps, ac, bt, ct, dskip, zc), gout.data_ptr<scalar_t>(), g);
  });

  // Through softplus (torch's: identity above the threshold 20) and the bias.
  const auto ddelta = softplus ? at::where(steps.pre > 20, ddt, ddt * at::sigmoid(steps.pre)) : ddt;
  const auto d_a = da_part.sum(0);
  const auto d_b = dbt_part.sum(1).transpose(1, 2).contiguous();
  const auto d_c = dct_part.sum(1).transpose(1, 2).contiguous();
  const at::Tensor d_d = dskip.defined() ? dd_part.sum(0) : at::Tensor();
  const at::Tensor d_bias = bias.defined() ? ddelta.sum(at::IntArrayRef{0, 2}) : at::Tensor();
  return {du, ddelta, d_a, d_b, d_c, d_d, dz, d_bias, at::Tensor()};
}

at::Tensor selective_scan(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                          const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                          const at::Tensor& z, const at::Tensor& delta_bias, bool delta_softplus) {
  check(u.defined() && delta.defined() && A.defined() && B.defined() && C.defined(),
        "u, delta, A, B and C are required");
  check(u.dim() == 3, "u must be [batch, channels, length], got " + shape_of(u));
  const int64_t b = u.size(0), d = u.size(1), l = u.size(2);
  check(A.dim() == 2 && A.size(0) == d, fmt::format("A must be [{}, state], got {}", d, shape_of(A)));
  const int64_t n = A.size(1);
  const auto same = [](const at::Tensor& t, std::vector<int64_t> s) { return t.sizes() == at::IntArrayRef(s); };
  check(same(delta, {b, d, l}), fmt::format("delta must be {}, got {}", shape_of(u), shape_of(delta)));
  check(same(B, {b, n, l}), fmt::format("B must be [{}, {}, {}], got {}", b, n, l, shape_of(B)));
  check(same(C, {b, n, l}), fmt::format("C must be [{}, {}, {}], got {}", b, n, l, shape_of(C)));
  check(!D.defined() || same(D, {d}), fmt::format("D must be [{}], got {}", d, shape_of(D)));
  check(!z.defined() || same(z, {b, d, l}), fmt::format("z must be {}, got {}", shape_of(u), shape_of(z)));
  check(!delta_bias.defined() || same(delta_bias, {d}),
        fmt::format("delta_bias must be [{}], got {}", d, shape_of(delta_bias)));
  const auto dtype = u.scalar_type();
  check(dtype == at::kFloat || dtype == at::kDouble, "inputs must be float32 or float64");
  for (const auto* t : {&u, &delta, &A, &B, &C, &D, &z, &delta_bias}) {
    if (!t->defined()) continue;
    check(t->scalar_type() == dtype, "all inputs must have the same dtype");
    check(t->device().is_cpu(), "inputs must be on the CPU");
  }
  const auto opt = [](const at::Tensor& t) { return t.defined() ? c10::optional<at::Tensor>(t) : c10::nullopt; };
  return SelectiveScanFn::apply(u, delta, A, B, C, opt(D), opt(z), opt(delta_bias), delta_softplus);
}

}  // namespace patchbay::aum

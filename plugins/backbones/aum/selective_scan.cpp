// The selective scan's autograd Function: validates nothing (selective_scan() does), lays
// out the operands for the kernel in selective_scan_kernel.{hpp,cpp} and spreads its blocks
// over at::parallel_for. u, delta, z and the output gradient are read in place with their
// strides; only B and C (small: [b, n, l]) are copied, transposed to [b, l, n].
#include "selective_scan.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "patchbay/error.hpp"
#include "selective_scan_chunked.hpp"
#include "selective_scan_kernel.hpp"

namespace patchbay::aum {
namespace {

namespace sk = scan_kernel;

template <typename T>
sk::Strided<T> strided(const at::Tensor& t) {
  if (!t.defined()) return {};
  return {t.data_ptr<T>(), t.stride(0), t.stride(1), t.stride(2)};
}

template <typename T>
T* ptr_or_null(const at::Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

at::Tensor contiguous_or_undefined(const at::Tensor& t) { return t.defined() ? t.contiguous() : t; }

// The operands as the kernel reads them. `keep` holds the tensors the pointers point into.
template <typename T>
sk::Problem<T> problem_of(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& a, const at::Tensor& b,
                          const at::Tensor& c, const at::Tensor& d, const at::Tensor& z, const at::Tensor& bias,
                          bool softplus, std::vector<at::Tensor>& keep) {
  keep = {a.contiguous(), b.transpose(1, 2).contiguous(), c.transpose(1, 2).contiguous(),
          contiguous_or_undefined(d), contiguous_or_undefined(bias)};
  sk::Problem<T> p;
  p.u = strided<T>(u);
  p.delta = strided<T>(delta);
  p.z = strided<T>(z);
  p.a = keep[0].data_ptr<T>();
  p.bt = keep[1].data_ptr<T>();
  p.ct = keep[2].data_ptr<T>();
  p.dskip = ptr_or_null<T>(keep[3]);
  p.bias = ptr_or_null<T>(keep[4]);
  p.softplus = softplus;
  p.batch = u.size(0);
  p.dim = u.size(1);
  p.len = u.size(2);
  p.nstate = a.size(1);
  return p;
}

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
                                    const c10::optional<at::Tensor>& bias_opt, bool delta_softplus,
                                    bool keep_for_backward) {
  const at::Tensor D = D_opt.value_or(at::Tensor()), z = z_opt.value_or(at::Tensor());
  const at::Tensor delta_bias = bias_opt.value_or(at::Tensor());
  const int64_t batch = u.size(0), dim = u.size(1), len = u.size(2), n = A.size(1);
  // The states at chunk boundaries, which only backward needs, are kept only when a backward
  // can follow.
  const bool grad = keep_for_backward;
  auto out = at::empty({batch, dim, len}, u.options().memory_format(at::MemoryFormat::Contiguous));
  at::Tensor ckpt;
  sk::Plan plan;
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_forward", [&] {
    plan = sk::plan_for<scalar_t>();
    if (grad && len > 0 && sk::chunks(plan, len) > 1) ckpt = at::empty({sk::checkpoint_size(plan, batch, dim, len, n)}, u.options());
    if (out.numel() == 0) return;
    std::vector<at::Tensor> keep;
    const auto p = problem_of<scalar_t>(u, delta, A, B, C, D, z, delta_bias, delta_softplus, keep);
    const sk::ForwardOut<scalar_t> o{out.data_ptr<scalar_t>(), ptr_or_null<scalar_t>(ckpt)};
    at::parallel_for(0, batch * sk::channel_blocks(plan, dim), 1,
                     [&](int64_t begin, int64_t end) { sk::forward(plan, p, o, begin, end); });
  });
  ctx->save_for_backward({u, delta, A, B, C, D, z, delta_bias, ckpt});
  ctx->saved_data["softplus"] = delta_softplus;
  ctx->saved_data["isa"] = static_cast<int64_t>(plan.isa);
  ctx->saved_data["lanes"] = plan.lanes;
  ctx->saved_data["chunk"] = plan.chunk;
  return out;
}

torch::autograd::variable_list SelectiveScanFn::backward(torch::autograd::AutogradContext* ctx,
                                                         torch::autograd::variable_list grad_out) {
  const auto saved = ctx->get_saved_variables();
  const auto &u = saved[0], &delta = saved[1], &A = saved[2], &B = saved[3], &C = saved[4], &D = saved[5],
             &z = saved[6], &bias = saved[7], &ckpt = saved[8];
  const bool softplus = ctx->saved_data["softplus"].toBool();
  sk::Plan plan;
  plan.isa = static_cast<sk::Isa>(ctx->saved_data["isa"].toInt());
  plan.lanes = ctx->saved_data["lanes"].toInt();
  plan.chunk = ctx->saved_data["chunk"].toInt();
  const int64_t batch = u.size(0), dim = u.size(1), len = u.size(2), n = A.size(1);
  const auto opts = u.options().memory_format(at::MemoryFormat::Contiguous);

  const at::Tensor gout = grad_out[0].defined() ? grad_out[0].to(u.scalar_type()) : at::zeros_like(u);
  // Channel groups per batch entry: each group's task writes its own dB / dC partial sums,
  // so more groups means more parallel tasks but more partial sums to add.
  const int64_t blocks = sk::channel_blocks(plan, dim);
  const int64_t want_tasks = 2 * static_cast<int64_t>(at::get_num_threads());
  const int64_t groups = std::clamp<int64_t>((want_tasks + batch - 1) / std::max<int64_t>(batch, 1), 1, std::max<int64_t>(blocks, 1));
  auto du = at::empty({batch, dim, len}, opts), ddelta = at::empty({batch, dim, len}, opts);
  at::Tensor dz = z.defined() ? at::empty({batch, dim, len}, opts) : at::Tensor();
  // The kernel writes every element of these (zeros only when there is nothing to scan).
  const auto alloc = [&](at::IntArrayRef sizes) { return du.numel() > 0 ? at::empty(sizes, opts) : at::zeros(sizes, opts); };
  auto da_part = alloc({batch, dim, n});
  at::Tensor dd_part = D.defined() ? alloc({batch, dim}) : at::Tensor();
  at::Tensor dbias_part = bias.defined() ? alloc({batch, dim}) : at::Tensor();
  auto db_part = alloc({batch, groups, n, len}), dc_part = alloc({batch, groups, n, len});

  if (du.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_backward", [&] {
      std::vector<at::Tensor> keep;
      const auto p = problem_of<scalar_t>(u, delta, A, B, C, D, z, bias, softplus, keep);
      sk::BackwardIO<scalar_t> g;
      g.gout = strided<scalar_t>(gout);
      g.ckpt = ptr_or_null<scalar_t>(ckpt);
      g.du = du.data_ptr<scalar_t>();
      g.ddelta = ddelta.data_ptr<scalar_t>();
      g.dz = ptr_or_null<scalar_t>(dz);
      g.da = da_part.data_ptr<scalar_t>();
      g.dd = ptr_or_null<scalar_t>(dd_part);
      g.dbias = ptr_or_null<scalar_t>(dbias_part);
      g.db = db_part.data_ptr<scalar_t>();
      g.dc = dc_part.data_ptr<scalar_t>();
      g.groups = groups;
      at::parallel_for(0, batch * groups, 1, [&](int64_t begin, int64_t end) { sk::backward(plan, p, g, begin, end); });
    });
  }

  const auto d_a = da_part.sum(0);
  const auto d_b = groups == 1 ? db_part.view({batch, n, len}) : db_part.sum(1);
  const auto d_c = groups == 1 ? dc_part.view({batch, n, len}) : dc_part.sum(1);
  const at::Tensor d_d = D.defined() ? dd_part.sum(0) : at::Tensor();
  const at::Tensor d_bias = bias.defined() ? dbias_part.sum(0) : at::Tensor();
  return {du, ddelta, d_a, d_b, d_c, d_d, dz, d_bias, at::Tensor(), at::Tensor()};
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
    check(t->device() == u.device(), fmt::format("all inputs must be on one device (u is on {}, another on {})",
                                                 u.device().str(), t->device().str()));
  }
  // The fused kernel is CPU code; any other device gets the same scan from tensor operations.
  if (!u.device().is_cpu()) {
    return selective_scan_chunked(u, delta, A, B, C, D, z, delta_bias, delta_softplus);
  }
  const auto opt = [](const at::Tensor& t) { return t.defined() ? c10::optional<at::Tensor>(t) : c10::nullopt; };
  bool grad = false;
  if (at::GradMode::is_enabled()) {
    for (const auto* t : {&u, &delta, &A, &B, &C, &D, &z, &delta_bias}) grad = grad || (t->defined() && t->requires_grad());
  }
  return SelectiveScanFn::apply(u, delta, A, B, C, opt(D), opt(z), opt(delta_bias), delta_softplus, grad);
}

}  // namespace patchbay::aum

// The Mamba selective scan as a CPU kernel with its own backward (REFERENCE.md §3).
//
//   y = patchbay::aum::selective_scan(u, delta, A, B, C, D, z, delta_bias, /*softplus=*/true);
//
// Shapes (batch b, channels d, length l, state n):
//   u, delta, z [b, d, l]; A [d, n]; B, C [b, n, l]; D, delta_bias [d] -> y [b, d, l].
//   D, z and delta_bias are optional: pass an undefined tensor to leave them out.
// Math, per (batch, channel), h_{-1} = 0:
//   dt_t = softplus(delta_t + bias) (or delta_t + bias without softplus)
//   h_t  = exp(dt_t A) * h_{t-1} + dt_t B_t u_t        (elementwise over the n states)
//   y_t  = sum_n h_t C_t + D u_t;   out_t = y_t * silu(z_t) when z is given.
// dtype: float32 or float64 (all inputs the same), CPU only; inputs need not be contiguous.
// The result is differentiable with respect to every tensor input (autograd node
// SelectiveScanFn). Memory: nothing beyond the inputs is saved for backward. Each call
// (forward, and backward again) materialises the decays exp(dt A) as a transient
// [b, d, l, n] tensor, so ATen's vectorised exp does the transcendental work; backward also
// recomputes the hidden states of one (batch, channel) row at a time into a per-task buffer
// of l x n values rather than keeping [b, d, l, n] states alive between the passes.
// Errors: patchbay::ShapeError for mismatched shapes, dtypes or a non-CPU device.
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/csrc/autograd/custom_function.h>

namespace patchbay::aum {

at::Tensor selective_scan(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                          const at::Tensor& B, const at::Tensor& C, const at::Tensor& D = {},
                          const at::Tensor& z = {}, const at::Tensor& delta_bias = {},
                          bool delta_softplus = false);

// The autograd function behind selective_scan(); use that instead (it validates shapes).
// The optional inputs are c10::optional because autograd Functions refuse undefined tensors.
struct SelectiveScanFn : public torch::autograd::Function<SelectiveScanFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& u,
                            const at::Tensor& delta, const at::Tensor& A, const at::Tensor& B,
                            const at::Tensor& C, const c10::optional<at::Tensor>& D,
                            const c10::optional<at::Tensor>& z,
                            const c10::optional<at::Tensor>& delta_bias, bool delta_softplus,
                            bool keep_for_backward);
  // Returns gradients for (u, delta, A, B, C, D, z, delta_bias, -, -); undefined where the
  // input was left out.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out);
};

}  // namespace patchbay::aum

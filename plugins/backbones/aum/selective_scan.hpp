// The Mamba selective scan as a CPU kernel with its own backward (docs/reference.md §3).
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
// dtype: float32 or float64 (all inputs the same), all on one device. On the CPU the fused
// kernel below runs; on any other device, selective_scan_chunked() (the same scan from tensor
// operations, selective_scan_chunked.hpp). Inputs need not be contiguous
// (u, delta, z and the output gradient are read in place with their strides).
// The result is differentiable with respect to every tensor input (autograd node
// SelectiveScanFn).
// Kernel (selective_scan_kernel.{hpp,inc,cpp}): one fused pass per direction, channels as
// SIMD lanes, the n states of a block of channels in registers, exp(dt A) computed on the fly
// (never materialised), softplus, D skip and the z gate fused in; float runs AVX-512, AVX2 or
// baseline x86-64 code chosen at run time, double runs libm-exact code (for gradient checks).
// Memory: when autograd will need a backward, forward keeps the states at every 32nd step
// ([b, d, ceil(l / 32) - 1, n] floats); backward replays each 32-step chunk from its saved
// state and runs the reverse scan over it. Nothing else is kept between the passes.
// Accuracy (float): exp and log1p by polynomials with relative error ~2e-7; outputs and
// gradients agree with a double-precision reference to ~1e-6 relative.
// Errors: patchbay::ShapeError for mismatched shapes, dtypes or devices.
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

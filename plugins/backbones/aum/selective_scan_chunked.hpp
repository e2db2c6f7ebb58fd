// The selective scan from LibTorch tensor operations: runs on any device and dtype LibTorch
// has the operations for, differentiable by autograd. selective_scan() (selective_scan.hpp)
// uses it for tensors that are not on the CPU; on the CPU the fused kernel is faster and
// keeps far less memory, and the tests hold the two to the same answers.
//
//   y = patchbay::aum::selective_scan_chunked(u, delta, A, B, C, D, z, delta_bias, true);
//
// Shapes, math and optional inputs: as selective_scan() (selective_scan.hpp); the caller
// validates them (selective_scan() does).
//
// Method: the length is cut into chunks of `chunk` steps. Within a chunk, with
// L_t = sum_{r <= t} dt_r A (a cumulative sum, per state), the states are
//   h_t = exp(L_t) h_start + sum_{s <= t} exp(L_t - L_s) dt_s B_s u_s,
// one batched matrix product per chunk; only differences L_t - L_s with s <= t (never
// positive, A < 0) are exponentiated, so nothing overflows however long the chunk. The
// last state of a chunk starts the next. This is the chunked form of Mamba-2's SSD
// ("segsum"), applied to Mamba-1's per-channel A; Mamba's selective_scan_ref
// (mamba_ssm/ops/selective_scan_interface.py) is the per-step form of the same recurrence.
// Cost: O(l / chunk) operations; memory [b, d, n, chunk, chunk] per chunk, kept by autograd
// for the backward (so chunk 16 holds about 16x the [b, d, l, n] states Mamba's reference
// keeps; pick a smaller chunk when memory is short).
// Errors: patchbay::ShapeError when chunk < 1.
#pragma once
#include <ATen/core/Tensor.h>

namespace patchbay::aum {

inline constexpr int64_t kDefaultScanChunk = 16;

at::Tensor selective_scan_chunked(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                  const at::Tensor& B, const at::Tensor& C, const at::Tensor& D = {},
                                  const at::Tensor& z = {}, const at::Tensor& delta_bias = {},
                                  bool delta_softplus = false, int64_t chunk = kDefaultScanChunk);

}  // namespace patchbay::aum

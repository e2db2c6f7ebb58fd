// The selective scan from tensor operations, chunk by chunk (selective_scan_chunked.hpp).
#include "selective_scan_chunked.hpp"

#include <limits>
#include <vector>

#include <torch/types.h>

#include "patchbay/error.hpp"

namespace patchbay::aum {
namespace {

// One chunk: dt, u [b, d, T]; B, C [b, n, T] (this chunk's steps); A [d, n]; h [b, d, n], the
// state before the chunk. Returns y [b, d, T] (before the D skip and the gate) and sets h to
// the state after the chunk.
at::Tensor scan_chunk(const at::Tensor& dt, const at::Tensor& u, const at::Tensor& A, const at::Tensor& B,
                      const at::Tensor& C, at::Tensor& h) {
  const int64_t len = dt.size(2);
  // L[b, d, n, t] = sum_{r <= t} dt_r A[d, n]: the log of the decay from the chunk's start.
  const auto log_decay = (dt.unsqueeze(2) * A.unsqueeze(0).unsqueeze(-1)).cumsum(3);
  // Pairwise decays exp(L_t - L_s) for s <= t; s > t is masked before the exponential (those
  // differences are positive and could overflow), so it contributes exactly 0.
  const auto later = torch::ones({len, len}, dt.options().dtype(torch::kBool)).triu(1);
  const auto decay = (log_decay.unsqueeze(-1) - log_decay.unsqueeze(-2))
                         .masked_fill(later, -std::numeric_limits<double>::infinity())
                         .exp();                                            // [b, d, n, t, s]
  const auto input = (dt * u).unsqueeze(2) * B.unsqueeze(1);               // [b, d, n, s]
  const auto states = torch::matmul(decay, input.unsqueeze(-1)).squeeze(-1) +
                      log_decay.exp() * h.unsqueeze(-1);                    // [b, d, n, t]
  h = states.select(3, len - 1);
  return (states * C.unsqueeze(1)).sum(2);                                  // [b, d, t]
}

}  // namespace

at::Tensor selective_scan_chunked(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A,
                                  const at::Tensor& B, const at::Tensor& C, const at::Tensor& D,
                                  const at::Tensor& z, const at::Tensor& delta_bias, bool delta_softplus,
                                  int64_t chunk) {
  if (chunk < 1) {
    throw ShapeError("shape.selective_scan", "selective_scan_chunked: chunk must be at least 1, got " +
                                                 std::to_string(chunk));
  }
  auto dt = delta_bias.defined() ? delta + delta_bias.view({1, -1, 1}) : delta;
  if (delta_softplus) dt = torch::softplus(dt);  // beta 1, threshold 20, as the CPU kernel
  const int64_t len = u.size(2);
  auto h = torch::zeros({u.size(0), u.size(1), A.size(1)}, u.options());
  std::vector<at::Tensor> ys;
  for (int64_t start = 0; start < len; start += chunk) {
    const int64_t steps = std::min(chunk, len - start);
    ys.push_back(scan_chunk(dt.narrow(2, start, steps), u.narrow(2, start, steps), A, B.narrow(2, start, steps),
                            C.narrow(2, start, steps), h));
  }
  auto y = ys.empty() ? torch::zeros_like(u) : torch::cat(ys, 2);
  if (D.defined()) y = y + D.view({1, -1, 1}) * u;
  if (z.defined()) y = y * torch::silu(z);
  return y;
}

}  // namespace patchbay::aum

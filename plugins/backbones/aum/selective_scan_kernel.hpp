// The selective-scan kernel over raw buffers (no LibTorch types): selective_scan.cpp wraps it
// in an autograd Function and spreads its blocks over at::parallel_for.
//
// Tiling: channels are the SIMD lanes. A block is one batch entry and `lanes` consecutive
// channels (the last block of a row is zero-padded); its n states are n vectors of `lanes`
// values, updated together at each time step (in registers when n = 16), so the scan, the
// sums over states (y, the gradients of u and dt) and exp(dt A) are all lane-parallel. A
// block's inputs are gathered into [time][lane] buffers (in-register W x W transposes for
// time-contiguous rows, any strides otherwise), so no [b, d, l] tensor is copied as a whole.
//
// Forward keeps only the states at chunk boundaries (every `chunk` steps), and only when a
// backward will follow. Backward, per block: step sizes and the gate's derivative over the
// whole length, then the chunks from last to first: replay the chunk from its saved state
// (one exp per state update, as forward), keeping exp(dt A) and exp(dt A) h_{t-1} for the
// chunk, then the reverse scan over it. dB and dC are sums over channels: each time step's
// per-lane contributions are summed across lanes in registers (LaneSums) and accumulated per
// task; tasks are (batch entry, channel group) pairs, the groups' partial sums added after.
//
// Instruction sets: float runs on the best of AVX-512 (16 lanes), AVX2+FMA (8 lanes) or the
// x86-64 baseline (4 lanes), chosen at run time (the code for each is compiled under its own
// `#pragma GCC target`; the binary runs on any x86-64). double always runs the baseline
// path with libm's exp/log1p: it is there for gradient checks, not speed.
#pragma once
#include <cstdint>

namespace patchbay::aum::scan_kernel {

// A [batch, dim, len] operand: element (b, d, t) is data[b * sb + d * sd + t * sl].
template <typename T>
struct Strided {
  const T* data = nullptr;
  int64_t sb = 0, sd = 0, sl = 0;
};

template <typename T>
struct Problem {
  Strided<T> u, delta, z;    // z.data null without the gate
  const T* a = nullptr;      // [dim, nstate], contiguous
  const T* bt = nullptr;     // [batch, len, nstate], contiguous (B transposed)
  const T* ct = nullptr;     // [batch, len, nstate], contiguous (C transposed)
  const T* dskip = nullptr;  // [dim] or null
  const T* bias = nullptr;   // [dim] or null (added to delta before softplus)
  bool softplus = false;
  int64_t batch = 0, dim = 0, len = 0, nstate = 0;
};

enum class Isa : int { baseline = 0, avx2 = 1, avx512 = 2 };

// How one call is tiled. Backward must use the plan its forward used (the checkpoint
// layout depends on it).
struct Plan {
  Isa isa = Isa::baseline;
  int64_t lanes = 4;   // channels per block
  int64_t chunk = 32;  // time steps between saved states
};

// The plan for dtype T (float: the best instruction set this CPU supports, unless
// force_isa() chose another; double: baseline).
template <typename T>
Plan plan_for();
bool isa_supported(Isa isa);
const char* isa_name(Isa isa);
// Tests and benchmarks: make plan_for<float>() use `isa`. False (and no change) when the
// CPU lacks it. Not thread-safe against concurrent scans.
bool force_isa(Isa isa);
void unforce_isa();

inline int64_t channel_blocks(const Plan& pl, int64_t dim) {
  return (dim + pl.lanes - 1) / pl.lanes;
}
inline int64_t chunks(const Plan& pl, int64_t len) { return (len + pl.chunk - 1) / pl.chunk; }
// Elements of the checkpoint buffer: [batch, blocks, chunks - 1, nstate, lanes].
inline int64_t checkpoint_size(const Plan& pl, int64_t batch, int64_t dim, int64_t len, int64_t n) {
  return batch * channel_blocks(pl, dim) * (chunks(pl, len) - 1) * n * pl.lanes;
}

template <typename T>
struct ForwardOut {
  T* out = nullptr;   // [batch, dim, len], contiguous
  T* ckpt = nullptr;  // checkpoint_size() elements, or null not to keep states
};

// Forward over blocks [begin, end) of batch * channel_blocks(dim) (block = b * blocks + j).
template <typename T>
void forward(const Plan& pl, const Problem<T>& p, const ForwardOut<T>& o, int64_t begin,
             int64_t end);

template <typename T>
struct BackwardIO {
  Strided<T> gout;          // gradient of the output
  const T* ckpt = nullptr;  // forward's checkpoints (required when chunks(len) > 1)
  T* du = nullptr;          // [batch, dim, len], contiguous
  T* ddelta = nullptr;      // [batch, dim, len]
  T* dz = nullptr;          // [batch, dim, len], or null without z
  T* da = nullptr;          // [batch, dim, nstate]: per-batch partial sums
  T* dd = nullptr;          // [batch, dim] per-batch partial sums, or null without D
  T* dbias = nullptr;       // [batch, dim] per-batch partial sums, or null without bias
  T* db = nullptr;          // [batch, groups, nstate, len]: partial sums per channel group
  T* dc = nullptr;          // [batch, groups, nstate, len]
  int64_t groups = 1;       // channel groups per batch entry (1..channel_blocks)
};

// Backward over tasks [begin, end) of batch * groups (task = b * groups + g; a group is a
// contiguous range of channel blocks).
template <typename T>
void backward(const Plan& pl, const Problem<T>& p, const BackwardIO<T>& g, int64_t begin,
              int64_t end);

}  // namespace patchbay::aum::scan_kernel

// Selective-scan kernel: dispatch (interface and tiling: selective_scan_kernel.hpp).
//
// The bodies live in selective_scan_kernel.inc, included here three times, each copy in its
// own namespace and compiled for one instruction set by `#pragma GCC target`: the x86-64
// baseline (float W 4, and double), AVX2+FMA (W 8) and AVX-512 (W 16). plan_for() picks one
// at run time from the CPU's features; the binary itself needs only x86-64. Anything the
// bodies call outside their namespace (std::, libm) was declared before the pragmas, so it
// is compiled for the baseline. This file is built with -ffp-contract=fast, so a * b + c is
// one FMA where the target has it, and -Wno-psabi (vector values only pass between
// always_inline functions, never across an ABI).
#include "selective_scan_kernel.hpp"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>

#define PB_INLINE inline __attribute__((always_inline))

namespace patchbay::aum::scan_kernel {

namespace baseline {
namespace {
#define PB_SCAN_AVX2 0
#define PB_SCAN_AVX512 0
#include "selective_scan_kernel.inc"
#undef PB_SCAN_AVX2
#undef PB_SCAN_AVX512
}  // namespace
}  // namespace baseline

#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi,bmi2")
namespace avx2 {
namespace {
#define PB_SCAN_AVX2 1
#define PB_SCAN_AVX512 0
#include "selective_scan_kernel.inc"
#undef PB_SCAN_AVX2
#undef PB_SCAN_AVX512
}  // namespace
}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,bmi,bmi2")
namespace avx512 {
namespace {
#define PB_SCAN_AVX2 1
#define PB_SCAN_AVX512 1
#include "selective_scan_kernel.inc"
#undef PB_SCAN_AVX2
#undef PB_SCAN_AVX512
}  // namespace
}  // namespace avx512
#pragma GCC pop_options

namespace {

constexpr int64_t kLanes[] = {4, 8, 16};  // by Isa
// Steps between saved states: memory 1/32 of the states; the replay buffers of one chunk
// (2 x 32 x n x lanes values) stay in L2. 8, 16, 32 and 64 measured alike at B 8, D 384,
// L 100, N 16.
constexpr int64_t kChunk = 32;
std::atomic<int> forced_isa{-1};

Isa best_isa() {
  static const Isa best = isa_supported(Isa::avx512) ? Isa::avx512
                          : isa_supported(Isa::avx2) ? Isa::avx2
                                                     : Isa::baseline;
  return best;
}

}  // namespace

bool isa_supported(Isa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             isa_supported(Isa::avx2);
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
    case Isa::baseline:
      return true;
  }
  return false;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return "avx512";
    case Isa::avx2:
      return "avx2";
    case Isa::baseline:
      return "baseline";
  }
  return "?";
}

bool force_isa(Isa isa) {
  if (!isa_supported(isa)) return false;
  forced_isa = static_cast<int>(isa);
  return true;
}
void unforce_isa() { forced_isa = -1; }

template <>
Plan plan_for<float>() {
  const int forced = forced_isa.load();
  const Isa isa = forced >= 0 ? static_cast<Isa>(forced) : best_isa();
  return {isa, kLanes[static_cast<int>(isa)], kChunk};
}
template <>
Plan plan_for<double>() {
  return {Isa::baseline, kLanes[0], kChunk};
}

template <>
void forward<float>(const Plan& pl, const Problem<float>& p, const ForwardOut<float>& o,
                    int64_t begin, int64_t end) {
  switch (pl.isa) {
    case Isa::avx512:
      return avx512::forward_entry<float, 16>(pl, p, o, begin, end);
    case Isa::avx2:
      return avx2::forward_entry<float, 8>(pl, p, o, begin, end);
    case Isa::baseline:
      return baseline::forward_entry<float, 4>(pl, p, o, begin, end);
  }
}
template <>
void forward<double>(const Plan& pl, const Problem<double>& p, const ForwardOut<double>& o,
                     int64_t begin, int64_t end) {
  baseline::forward_entry<double, 4>(pl, p, o, begin, end);
}
template <>
void backward<float>(const Plan& pl, const Problem<float>& p, const BackwardIO<float>& g,
                     int64_t begin, int64_t end) {
  switch (pl.isa) {
    case Isa::avx512:
      return avx512::backward_entry<float, 16>(pl, p, g, begin, end);
    case Isa::avx2:
      return avx2::backward_entry<float, 8>(pl, p, g, begin, end);
    case Isa::baseline:
      return baseline::backward_entry<float, 4>(pl, p, g, begin, end);
  }
}
template <>
void backward<double>(const Plan& pl, const Problem<double>& p, const BackwardIO<double>& g,
                      int64_t begin, int64_t end) {
  baseline::backward_entry<double, 4>(pl, p, g, begin, end);
}

}  // namespace patchbay::aum::scan_kernel

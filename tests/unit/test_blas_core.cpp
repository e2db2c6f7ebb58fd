// The launcher's OpenBLAS core choice (framework/app/blas_core.hpp) on CPUs we have met, and
// GEMM on whatever core this process runs against a float64 reference at odd shapes (the
// kernels a choice switches on must give the same numbers).
#include <doctest/doctest.h>

#include <torch/types.h>

#include "../../framework/app/blas_core.hpp"

using namespace patchbay::cli;

namespace {

const char* kXeon6 =
    "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) 6975P-C\n"
    "flags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl "
    "avx512_bf16 amx_tile\nprocessor\t: 1\nflags\t\t: fpu\n";
const char* kZen3 = "model name\t: AMD EPYC 7B13\nflags\t\t: fpu sse sse2 avx avx2 fma bmi2\n";
const char* kOld = "flags\t\t: fpu sse sse2 sse3 ssse3\n";

}  // namespace

TEST_SUITE("unit") {
TEST_CASE("blas core: the first flags line is read") {
  const auto f = cpu_flags(kXeon6);
  CHECK(f.count("avx512bw") == 1);
  CHECK(f.count("amx_tile") == 1);
  CHECK(f.size() == 16);
  CHECK(cpu_flags("no flags here").empty());
}

TEST_CASE("blas core: older kernels than the CPU allows are replaced; a good choice is kept") {
  // Xeon 6 under Debian 12's OpenBLAS 0.3.21: detected Prescott -> SkylakeX.
  const auto xeon = choose_openblas_core("Prescott", cpu_flags(kXeon6));
  CHECK(xeon.core == "SkylakeX");
  CHECK(xeon.reason.find("detected core Prescott") != std::string::npos);
  // An AVX-512 CPU that OpenBLAS knows only as an AVX2 core (Zen 5 under 0.3.21).
  CHECK(choose_openblas_core("Zen", cpu_flags(kXeon6)).core == "SkylakeX");
  CHECK(choose_openblas_core("SkylakeX", cpu_flags(kXeon6)).core.empty());
  CHECK(choose_openblas_core("SapphireRapids", cpu_flags(kXeon6)).core.empty());
  // Zen 3: OpenBLAS's Zen is right; an unrecognised AVX2 CPU gets Haswell.
  CHECK(choose_openblas_core("Zen", cpu_flags(kZen3)).core.empty());
  CHECK(choose_openblas_core("Prescott", cpu_flags(kZen3)).core == "Haswell");
  // Nothing better to offer an old CPU, or a CPU whose flags we cannot read.
  CHECK(choose_openblas_core("Prescott", cpu_flags(kOld)).core.empty());
  CHECK(choose_openblas_core("Prescott", {}).core.empty());
  // AVX-512 without BW/VL (Knights Landing) is not SkylakeX material.
  CHECK(choose_openblas_core("Prescott", {"avx2", "fma", "avx512f", "avx512cd"}).core == "Haswell");
}

TEST_CASE("blas core: float32 GEMM agrees with float64 at odd shapes on this process's core") {
  torch::manual_seed(0);
  for (const auto& [m, k, n] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {1, 1, 1}, {7, 13, 5}, {33, 65, 17}, {257, 129, 65}, {100, 1023, 31}}) {
    CAPTURE(m);
    CAPTURE(k);
    const auto a = torch::randn({m, k}), b = torch::randn({k, n});
    const auto exact = torch::mm(a.to(torch::kDouble), b.to(torch::kDouble));
    const auto got = torch::mm(a, b).to(torch::kDouble);
    // float32 accumulation over k terms of unit variance: error ~ 1e-7 * sqrt(k) * |c|.
    const double err = (got - exact).abs().max().item<double>();
    CHECK(err < 2e-5 * std::sqrt(static_cast<double>(k)) * (1.0 + exact.abs().max().item<double>()));
    // Transposed operands take other kernels (the backward pass uses them).
    const auto t = torch::mm(b.t().contiguous(), a.t().contiguous()).t().to(torch::kDouble);
    CHECK((t - exact).abs().max().item<double>() < 2e-5 * std::sqrt(static_cast<double>(k)) * (1.0 + exact.abs().max().item<double>()));
  }
}
}

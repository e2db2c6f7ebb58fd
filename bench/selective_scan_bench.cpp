// Times patchbay's selective-scan kernel on Mamba-sized inputs: forward only (no autograd
// graph, as in inference) and forward + backward (through autograd, as in training).
// Usage: patchbay_bench_selective_scan B D L N THREADS REPEATS [ISA]
//   ISA: avx512 | avx2 | baseline (default: the best this CPU supports)
// Prints "kernel_check" (sums of the output and of each gradient, to compare with the
// reference's), "kernel_isa <isa>", then "kernel_fwd_ms", "kernel_fwd_cpu_ms", "kernel_fwdbwd_ms"
// and "kernel_fwdbwd_cpu_ms", each a median over REPEATS timed runs after 2 warm-up runs
// (wall clock, and the process's CPU time: robust to a busy machine at 1 thread).
// bench/run_selective_scan.sh compares them with the PyTorch reference loop
// (selective_scan_reference.py) on the same inputs, shapes and thread count.
#include <ATen/Parallel.h>
#include <torch/nn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <utility>
#include <vector>

#include "../plugins/backbones/aum/selective_scan.hpp"
#include "../plugins/backbones/aum/selective_scan_kernel.hpp"

namespace {

double cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Medians of wall-clock and process CPU time (ms) over `repeats` runs after 2 warm-ups.
std::pair<double, double> median_ms(int repeats, const std::function<void()>& fn) {
  std::vector<double> wall, cpu;
  for (int i = 0; i < repeats + 2; ++i) {
    const auto w0 = std::chrono::steady_clock::now();
    const double c0 = cpu_ms();
    fn();
    const double c1 = cpu_ms();
    const auto w1 = std::chrono::steady_clock::now();
    if (i >= 2) {
      wall.push_back(std::chrono::duration<double, std::milli>(w1 - w0).count());
      cpu.push_back(c1 - c0);
    }
  }
  return {median(wall), median(cpu)};
}

}  // namespace

int main(int argc, char** argv) {
  namespace sk = patchbay::aum::scan_kernel;
  if (argc != 7 && argc != 8) {
    std::fprintf(stderr, "usage: %s B D L N THREADS REPEATS [avx512|avx2|baseline]\n", argv[0]);
    return 2;
  }
  const int64_t b = std::atoll(argv[1]), d = std::atoll(argv[2]), l = std::atoll(argv[3]),
                n = std::atoll(argv[4]);
  at::set_num_threads(std::atoi(argv[5]));
  const int repeats = std::max(1, std::atoi(argv[6]));
  if (argc == 8) {
    const sk::Isa isas[] = {sk::Isa::baseline, sk::Isa::avx2, sk::Isa::avx512};
    bool ok = false;
    for (const auto isa : isas) {
      if (std::strcmp(argv[7], sk::isa_name(isa)) == 0) ok = sk::force_isa(isa);
    }
    if (!ok) {
      std::fprintf(stderr, "instruction set %s unknown or not supported by this CPU\n", argv[7]);
      return 2;
    }
  }
  // The same inputs as selective_scan_reference.py (same seed and draw order).
  torch::manual_seed(0);
  const auto leaf = [](at::Tensor t) { return t.requires_grad_(true); };
  auto u = leaf(torch::randn({b, d, l})), delta = leaf(torch::randn({b, d, l}) * 0.5);
  auto A = leaf(-torch::rand({d, n}) - 0.5), B = leaf(torch::randn({b, n, l})),
       C = leaf(torch::randn({b, n, l})), D = leaf(torch::randn({d})),
       z = leaf(torch::randn({b, d, l})), bias = leaf(torch::randn({d}) * 0.1);
  const auto scan = [&] {
    return patchbay::aum::selective_scan(u, delta, A, B, C, D, z, bias, true);
  };

  const auto fwd = median_ms(repeats, [&] {
    torch::NoGradGuard no_grad;
    scan();
  });
  const auto fwdbwd = median_ms(repeats, [&] {
    for (auto* t : {&u, &delta, &A, &B, &C, &D, &z, &bias}) t->mutable_grad() = at::Tensor();
    scan().sum().backward();
  });
  // The same numbers as the reference's check line: sum of the output, then of each gradient.
  for (auto* t : {&u, &delta, &A, &B, &C, &D, &z, &bias}) t->mutable_grad() = at::Tensor();
  const auto out = scan();
  out.sum().backward();
  std::printf("kernel_check %.6g", out.sum().item<double>());
  for (auto* t : {&u, &delta, &A, &B, &C, &D, &z, &bias})
    std::printf(" %.6g", t->grad().sum().item<double>());
  std::printf("\nkernel_isa %s\n", sk::isa_name(sk::plan_for<float>().isa));
  std::printf("kernel_fwd_ms %.3f\nkernel_fwd_cpu_ms %.3f\n", fwd.first, fwd.second);
  std::printf("kernel_fwdbwd_ms %.3f\nkernel_fwdbwd_cpu_ms %.3f\n", fwdbwd.first, fwdbwd.second);
  return 0;
}

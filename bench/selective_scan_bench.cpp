// Times patchbay's selective-scan kernel, forward + backward, on Mamba-sized inputs.
// Usage: patchbay_bench_selective_scan B D L N THREADS REPEATS
// Prints one line: "kernel_ms <median>". bench/run_selective_scan.sh compares it with the
// PyTorch reference loop (selective_scan_reference.py) on the same shapes and threads.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/nn.h>

#include "../plugins/backbones/aum/selective_scan.hpp"

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s B D L N THREADS REPEATS\n", argv[0]);
    return 2;
  }
  const int64_t b = std::atoll(argv[1]), d = std::atoll(argv[2]), l = std::atoll(argv[3]),
                n = std::atoll(argv[4]);
  at::set_num_threads(std::atoi(argv[5]));
  const int repeats = std::atoi(argv[6]);
  torch::manual_seed(0);
  const auto leaf = [](at::Tensor t) { return t.requires_grad_(true); };
  auto u = leaf(torch::randn({b, d, l})), delta = leaf(torch::randn({b, d, l}) * 0.5);
  auto A = leaf(-torch::rand({d, n}) - 0.5), B = leaf(torch::randn({b, n, l})),
       C = leaf(torch::randn({b, n, l})), D = leaf(torch::randn({d})), z = leaf(torch::randn({b, d, l})),
       bias = leaf(torch::randn({d}) * 0.1);
  std::vector<double> ms;
  for (int i = 0; i < repeats + 2; ++i) {
    for (auto* t : {&u, &delta, &A, &B, &C, &D, &z, &bias}) t->mutable_grad() = at::Tensor();
    const auto t0 = std::chrono::steady_clock::now();
    patchbay::aum::selective_scan(u, delta, A, B, C, D, z, bias, true).sum().backward();
    const auto t1 = std::chrono::steady_clock::now();
    if (i >= 2) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("kernel_ms %.3f\n", ms[ms.size() / 2]);
  return 0;
}

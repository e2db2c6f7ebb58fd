#!/usr/bin/python3
"""The selective scan as a per-timestep loop of PyTorch ops (the math of REFERENCE.md §3, as
Mamba's selective_scan_ref computes it), timed forward + backward.

Usage: selective_scan_reference.py B D L N THREADS REPEATS   -> prints "reference_ms <median>"
Debian's python3-torch; used by bench/run_selective_scan.sh only, never by patchbay itself.
"""
import sys
import time

import torch
import torch.nn.functional as F


def scan(u, delta, A, B, C, D, z, bias):
    delta = F.softplus(delta + bias[None, :, None])
    b, d, l = u.shape
    h = u.new_zeros(b, d, A.shape[1])
    ys = []
    for t in range(l):
        dA = torch.exp(delta[:, :, t, None] * A)
        h = dA * h + delta[:, :, t, None] * B[:, None, :, t] * u[:, :, t, None]
        ys.append((h * C[:, None, :, t]).sum(-1))
    y = torch.stack(ys, -1) + D[None, :, None] * u
    return y * F.silu(z)


def main():
    b, d, l, n, threads, repeats = map(int, sys.argv[1:7])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    leaf = lambda t: t.requires_grad_(True)
    inputs = [leaf(torch.randn(b, d, l)), leaf(torch.randn(b, d, l) * 0.5), leaf(-torch.rand(d, n) - 0.5),
              leaf(torch.randn(b, n, l)), leaf(torch.randn(b, n, l)), leaf(torch.randn(d)),
              leaf(torch.randn(b, d, l)), leaf(torch.randn(d) * 0.1)]
    times = []
    for i in range(repeats + 2):
        for t in inputs:
            t.grad = None
        t0 = time.perf_counter()
        scan(*inputs).sum().backward()
        if i >= 2:
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    print(f"reference_ms {times[len(times) // 2]:.3f}")


if __name__ == "__main__":
    main()

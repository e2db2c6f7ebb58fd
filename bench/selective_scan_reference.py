#!/usr/bin/python3
"""The selective scan as the PyTorch reference loop, timed forward-only and forward+backward.

The loop is mamba_ssm's selective_scan_ref (docs/reference.md §3): softplus(delta + bias);
exp(delta A) and delta B u materialised as [b, d, l, n] tensors by einsum before the loop;
one state update and one einsum contraction with C per time step; D skip and silu(z) gate on
the stacked outputs; autograd does the backward. Two ways to walk the time steps:
  unbind (default): the per-step slices come from unbind(), whose backward is one stack.
      Same ops per step as mamba_ssm; the fastest loop, so the fair one to compare against.
  index: mamba_ssm's own deltaA[:, :, i] indexing. Each step's backward then adds a
      full-size [b, d, l, n] gradient, which makes backward ~100x slower than unbind: shown
      for reference, not used for the headline ratio.

Usage: selective_scan_reference.py B D L N THREADS REPEATS [unbind|index]
Prints "reference_check" (sums of the output and of each gradient: the C++ benchmark prints
the same for the same seeded inputs), then "reference_fwd_ms", "reference_fwd_cpu_ms",
"reference_fwdbwd_ms" and "reference_fwdbwd_cpu_ms": medians over REPEATS timed runs after
2 warm-ups, of wall-clock and of process CPU time. Debian's python3-torch, run with
/usr/bin/python3 by bench/run_selective_scan.sh; never used by patchbay itself.
"""
import sys
import time

import torch
import torch.nn.functional as F


def scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus=True, index=False):
    delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, length = u.shape
    x = A.new_zeros((batch, dim, A.shape[1]))
    delta_a = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    delta_b_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    if index:  # mamba_ssm's own indexing: each step's backward adds a full [b, d, l, n] gradient
        steps = ((delta_a[:, :, i], delta_b_u[:, :, i], C[:, :, i]) for i in range(length))
    else:  # the same ops on unbind() views: one stack in backward, linear in l
        steps = zip(delta_a.unbind(2), delta_b_u.unbind(2), C.unbind(2))
    ys = []
    for a_i, bu_i, c_i in steps:
        x = a_i * x + bu_i
        ys.append(torch.einsum("bdn,bn->bd", x, c_i))
    y = torch.stack(ys, dim=2)
    out = y + u * D[:, None]
    return out * F.silu(z)


def median_ms(fn, repeats):
    """Medians of wall-clock and process CPU time (ms) over `repeats` runs after 2 warm-ups."""
    wall, cpu = [], []
    for i in range(repeats + 2):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        if i >= 2:
            wall.append((time.perf_counter() - w0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
    return sorted(wall)[len(wall) // 2], sorted(cpu)[len(cpu) // 2]


def main():
    b, d, l, n, threads, repeats = map(int, sys.argv[1:7])
    index = len(sys.argv) > 7 and sys.argv[7] == "index"
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    leaf = lambda t: t.requires_grad_(True)
    inputs = [leaf(torch.randn(b, d, l)), leaf(torch.randn(b, d, l) * 0.5), leaf(-torch.rand(d, n) - 0.5),
              leaf(torch.randn(b, n, l)), leaf(torch.randn(b, n, l)), leaf(torch.randn(d)),
              leaf(torch.randn(b, d, l)), leaf(torch.randn(d) * 0.1)]

    def forward():
        with torch.no_grad():
            scan_ref(*inputs, index=index)

    def forward_backward():
        for t in inputs:
            t.grad = None
        scan_ref(*inputs, index=index).sum().backward()

    for t in inputs:
        t.grad = None
    out = scan_ref(*inputs, index=index)
    out.sum().backward()
    print("reference_check " + " ".join(f"{v:.6g}" for v in [out.sum().item()] + [t.grad.sum().item() for t in inputs]))
    for name, fn in (("fwd", forward), ("fwdbwd", forward_backward)):
        wall, cpu = median_ms(fn, repeats)
        print(f"reference_{name}_ms {wall:.3f}")
        print(f"reference_{name}_cpu_ms {cpu:.3f}")


if __name__ == "__main__":
    main()

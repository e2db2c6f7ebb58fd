"""The AST training step in plain PyTorch-Python, the reference for patchbay_bench_ast_train.

The model is written from docs/reference.md §2 the way AST's own code has it (timm's DeiT
blocks): a Conv2d patch embedding (square: kernel 16x16 stride 10 -> 144 tokens on 128x128;
fftp: kernel (128, 16) stride (128, 4) -> 29 tokens), class + distillation tokens, positional
embedding N + 2, depth x pre-norm blocks (LayerNorm eps 1e-6, attention with one qkv Linear,
(q @ k^T) * scale, softmax, @ v, proj; LayerNorm, MLP fc1 -> exact GELU -> fc2, ratio 4),
final LayerNorm, mean of the two extra tokens, LayerNorm (eps 1e-5) + Linear head. Dropouts
and drop path are 0, as patchbay's defaults (the Dropout modules are there, as in timm).

The step: zero_grad, forward, cross-entropy on 35 classes, loss.item(), backward, AdamW
(lr 2.5e-4, betas 0.95/0.999, weight decay 5e-7: patchbay's [train] defaults), on one fixed
random batch; median of `steps` timed steps after `warmup`. The parameter count is checked
against patchbay's (hard-coded per preset and patcher below, and --expect-params when given).

Usage: /usr/bin/python3 ast_train_reference.py PRESET PATCHER THREADS [--batch 32]
           [--steps 5] [--warmup 2] [--depth 12] [--expect-params N] [--peak-size 2048]
Prints one JSON object (same keys as patchbay_bench_ast_train --json).
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {"tiny": (192, 3), "small": (384, 6), "base": (768, 12)}
PATCHERS = {  # kernel, stride on the [1, 128, 128] input
    "square": ((16, 16), (10, 10)),
    "fftp": ((128, 16), (128, 4)),
}
# patchbay's Model::cost().params for depth 12, 128 x 128, 35 classes (patchbay_bench_ast_train).
EXPECTED_PARAMS = {
    ("tiny", "square"): 5423651,
    ("tiny", "fftp"): 5745635,
    ("small", "square"): 21464099,
    ("small", "fftp"): 22108067,
}
CLASSES = 35
FREQ, FRAMES = 128, 128


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(0.0)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(0.0)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(round(dim * mlp_ratio)))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class AST(nn.Module):
    def __init__(self, dim, heads, depth, kernel, stride, classes):
        super().__init__()
        self.patch_embed = nn.Conv2d(1, dim, kernel_size=kernel, stride=stride)
        rows = (FREQ - kernel[0]) // stride[0] + 1
        cols = (FRAMES - kernel[1]) // stride[1] + 1
        self.tokens = rows * cols
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.tokens + 2, dim))
        self.pos_drop = nn.Dropout(0.0)
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, classes))
        for t in (self.cls_token, self.dist_token, self.pos_embed):
            nn.init.trunc_normal_(t, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, spec):  # [B, 1, F, T]
        x = self.patch_embed(spec).flatten(2).transpose(1, 2)
        b = x.shape[0]
        x = torch.cat((self.cls_token.expand(b, -1, -1), self.dist_token.expand(b, -1, -1), x), dim=1)
        x = self.pos_drop(x + self.pos_embed)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        x = (x[:, 0] + x[:, 1]) / 2
        return self.mlp_head(x)

    def forward_flops(self, dim, hidden, depth, kernel):
        """Same count as patchbay's Cost::flops (one example): 2 x multiply-adds of the patch
        embedding, every Linear and attention's q k^T and attn v."""
        t = self.tokens + 2
        conv = self.tokens * dim * kernel[0] * kernel[1]
        linear = depth * t * (3 * dim * dim + dim * dim + 2 * dim * hidden) + dim * CLASSES
        attention = depth * 2 * t * t * dim
        return 2 * (conv + linear + attention)


def median_ms(fn, repeats, warmup):
    """Median and minimum wall ms, and median process CPU ms (all threads)."""
    ms, cpu = [], []
    for i in range(warmup + repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        t = (time.perf_counter() - t0) * 1000.0
        c = (time.process_time() - c0) * 1000.0
        if i >= warmup:
            ms.append(t)
            cpu.append(c)
    return statistics.median(ms), min(ms), statistics.median(cpu)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("preset", choices=sorted(PRESETS))
    ap.add_argument("patcher", choices=sorted(PATCHERS))
    ap.add_argument("threads", type=int)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--expect-params", type=int, default=0)
    ap.add_argument("--peak-size", type=int, default=2048)
    ap.add_argument("--peak-repeats", type=int, default=5)
    ap.add_argument("--profile", type=int, default=0,
                    help="print the autograd profiler's table of the N slowest ops (by self CPU "
                         "time, over the timed steps) to stderr")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dim, heads = PRESETS[args.preset]
    kernel, stride = PATCHERS[args.patcher]
    model = AST(dim, heads, args.depth, kernel, stride, CLASSES)
    model.train()
    params = sum(p.numel() for p in model.parameters())
    expected = EXPECTED_PARAMS.get((args.preset, args.patcher)) if args.depth == 12 else None
    assert expected is None or params == expected, f"{params} parameters, patchbay has {expected}"
    assert args.expect_params == 0 or params == args.expect_params, \
        f"{params} parameters, patchbay has {args.expect_params}"

    opt = torch.optim.AdamW(model.parameters(), lr=2.5e-4, betas=(0.95, 0.999), weight_decay=5e-7)
    spec = torch.randn(args.batch, 1, FREQ, FRAMES)
    labels = torch.randint(0, CLASSES, (args.batch,))

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(spec), labels)
        loss.item()
        loss.backward()
        opt.step()

    if args.profile:
        for _ in range(args.warmup):
            step()
        with torch.autograd.profiler.profile() as prof:
            for _ in range(args.steps):
                step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile),
              file=sys.stderr)
    step_ms, min_ms, cpu_ms = median_ms(step, args.steps, args.warmup)

    with torch.no_grad():
        n = args.peak_size
        a, b = torch.randn(n, n), torch.randn(n, n)
        c = torch.empty(n, n)
        mm_ms, _, _ = median_ms(lambda: torch.mm(a, b, out=c), args.peak_repeats, 2)
    peak = 2.0 * n ** 3 / (mm_ms / 1000.0) / 1e9

    flops = model.forward_flops(dim, int(round(dim * 4.0)), args.depth, kernel)
    achieved = 3.0 * flops * args.batch / (step_ms / 1000.0) / 1e9
    print(json.dumps({
        "impl": "python", "preset": args.preset, "patcher": args.patcher,
        "threads": torch.get_num_threads(), "batch": args.batch, "tokens": model.tokens,
        "params": params, "fwd_gflop_per_example": round(flops / 1e9, 6),
        "step_ms": round(step_ms, 3), "min_ms": round(min_ms, 3), "cpu_ms": round(cpu_ms, 3),
        "examples_per_s": round(args.batch / (step_ms / 1000.0), 2),
        "achieved_gflops": round(achieved, 2), "peak_gflops": round(peak, 2),
        "pct_peak": round(100.0 * achieved / peak, 2), "torch": torch.__version__,
    }), flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Load a patchbay weights file into plain PyTorch models with the original parameter names.

    /usr/bin/python3 tools/load_weights.py W.h5 INPUT.npy [--out LOGITS.npy] [--save-pth CKPT.pth]

W.h5 comes from `patchbay weights export` (docs/weights.md). The models below are written
from the original code's structure and names -- AST (YuanGongND/ast: ASTModel with its timm
DeiT encoder `v`) and AuM (kaistmm/Audio-Mamba-AuM: Vim's VisionMamba, selective scan as a
plain loop) -- and receive the file with load_state_dict(strict=True), so every name and
shape must match. INPUT.npy is a spectrogram batch, [B, 1, F, T] (patchbay's layout) or
[B, T, F] (AST's input layout), float32. The logits are printed, one line per example, and
written to --out as float32 [B, C]. --save-pth writes the plain model's state_dict() with
torch.save, as the original code publishes its checkpoints (`patchbay weights import` and
train.init_weights read it back).

The architecture is read from the file: sizes from the tensors' shapes, the stride and the
AST head count from the file's attributes (stride_freq, stride_time, config). Options
override them, so a file written by other means loads too.

Needs Debian's python3-torch, python3-h5py and python3-numpy (run with /usr/bin/python3).
"""
import argparse
import math
import re
import sys
import tomllib

import h5py
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


class PatchEmbed(nn.Module):
    """timm's PatchEmbed as AST and AuM use it: one Conv2d over [B, 1, F, T]."""

    def __init__(self, dim, kernel, stride):
        super().__init__()
        self.proj = nn.Conv2d(1, dim, kernel_size=kernel, stride=stride)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # frequency-major tokens


# --- AST ------------------------------------------------------------------------------------

class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class DeitBlock(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DistilledEncoder(nn.Module):
    """The parts of timm's distilled DeiT that ASTModel's forward uses, as `v`."""

    def __init__(self, dim, depth, heads, hidden, kernel, stride, tokens):
        super().__init__()
        self.patch_embed = PatchEmbed(dim, kernel, stride)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + 2, dim))
        self.blocks = nn.ModuleList([DeitBlock(dim, heads, hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)


class AST(nn.Module):
    """ASTModel.forward of YuanGongND/ast, from a spectrogram [B, 1, F, T]."""

    def __init__(self, dim, depth, heads, hidden, kernel, stride, tokens, classes):
        super().__init__()
        self.v = DistilledEncoder(dim, depth, heads, hidden, kernel, stride, tokens)
        self.mlp_head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, classes))

    def forward(self, x):
        b = x.shape[0]
        x = self.v.patch_embed(x)
        x = torch.cat((self.v.cls_token.expand(b, -1, -1), self.v.dist_token.expand(b, -1, -1), x), dim=1)
        x = x + self.v.pos_embed
        for blk in self.v.blocks:
            x = blk(x)
        x = self.v.norm(x)
        return self.mlp_head((x[:, 0] + x[:, 1]) / 2)


# --- AuM ------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def selective_scan(u, delta, A, B, C, D, z, delta_bias):
    """Mamba's selective_scan_ref: u, delta, z [b, d, l]; A [d, n]; B, C [b, n, l]; D [d]."""
    delta = F.softplus(delta + delta_bias[None, :, None])
    dA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    dBu = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for i in range(u.shape[2]):
        h = dA[:, :, i] * h + dBu[:, :, i]
        ys.append(torch.einsum("bdn,bn->bd", h, C[:, :, i]))
    y = torch.stack(ys, dim=2) + u * D[None, :, None]
    return y * F.silu(z)


class Mamba(nn.Module):
    """Vim's Mamba mixer; bimamba "v1" adds A_b_log, "v2" a whole backward direction."""

    def __init__(self, dim, d_inner, d_state, d_conv, dt_rank, bimamba):
        super().__init__()
        self.bimamba, self.d_state, self.dt_rank = bimamba, d_state, dt_rank
        self.in_proj = nn.Linear(dim, 2 * d_inner, bias=False)
        make_conv = lambda: nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1, bias=True)
        self.conv1d = make_conv()
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner, bias=True)
        self.A_log = nn.Parameter(torch.zeros(d_inner, d_state))
        self.D = nn.Parameter(torch.ones(d_inner))
        if bimamba in ("v1", "v2"):
            self.A_b_log = nn.Parameter(torch.zeros(d_inner, d_state))
        if bimamba == "v2":
            self.conv1d_b = make_conv()
            self.x_proj_b = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
            self.dt_proj_b = nn.Linear(dt_rank, d_inner, bias=True)
            self.D_b = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, dim, bias=False)

    def direction(self, xc, z, x_proj, dt_proj, A_log, D):
        """One scan over the (already convolved) xc [b, d, l]."""
        r, n = self.dt_rank, self.d_state
        dbl = x_proj(xc.transpose(1, 2))  # [b, l, r + 2n]
        delta = (dbl[..., :r] @ dt_proj.weight.t()).transpose(1, 2)
        B = dbl[..., r:r + n].transpose(1, 2)
        C = dbl[..., r + n:].transpose(1, 2)
        return selective_scan(xc, delta, -torch.exp(A_log), B, C, D, z, dt_proj.bias)

    def forward(self, h):
        length = h.shape[1]
        x, z = self.in_proj(h).transpose(1, 2).chunk(2, dim=1)
        xc = F.silu(self.conv1d(x)[..., :length])
        y = self.direction(xc, z, self.x_proj, self.dt_proj, self.A_log, self.D)
        if self.bimamba == "v1":
            y = y + self.direction(xc.flip(-1), z.flip(-1), self.x_proj, self.dt_proj, self.A_b_log,
                                   self.D).flip(-1)
        elif self.bimamba == "v2":
            xb = F.silu(self.conv1d_b(x.flip(-1))[..., :length])
            y = y + self.direction(xb, z.flip(-1), self.x_proj_b, self.dt_proj_b, self.A_b_log,
                                   self.D_b).flip(-1)
            y = y / 2  # if_devide_out=True, as AuM configures Vim's bimamba "v2"
        return self.out_proj(y.transpose(1, 2))


class MambaBlock(nn.Module):
    def __init__(self, dim, **mixer):
        super().__init__()
        self.mixer = Mamba(dim, **mixer)
        self.norm = RMSNorm(dim)

    def forward(self, x):
        return x + self.mixer(self.norm(x))


class AuM(nn.Module):
    """AuM's VisionMamba forward: class token in the middle, read out from there."""

    def __init__(self, dim, depth, kernel, stride, tokens, classes, **mixer):
        super().__init__()
        self.patch_embed = PatchEmbed(dim, kernel, stride)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + 1, dim))
        self.layers = nn.ModuleList([MambaBlock(dim, **mixer) for _ in range(depth)])
        self.norm_f = RMSNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x)
        b, n = x.shape[0], x.shape[1]
        pos = n // 2
        x = torch.cat((x[:, :pos], self.cls_token.expand(b, -1, -1), x[:, pos:]), dim=1)
        x = x + self.pos_embed
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm_f(x)[:, pos])


# --- building from a file -------------------------------------------------------------------

def count(state, pattern):
    return len({m.group(1) for k in state for m in [re.fullmatch(pattern, k)] if m})


def text_attr(f, key):
    v = f.attrs.get(key)
    return v.decode() if isinstance(v, bytes) else v


def build(state, f, args):
    config = tomllib.loads(text_attr(f, "config") or "")
    stride = args.stride or [int(f.attrs["stride_freq"]), int(f.attrs["stride_time"])]
    arch = args.arch or ("ast" if "v.cls_token" in state else "aum")
    if arch == "ast":
        dim = state["v.cls_token"].shape[-1]
        backbone = config.get("backbone", {})
        presets = {"tiny": 3, "small": 6, "base": 12}
        heads = args.heads or backbone.get("heads") or presets.get(backbone.get("preset"), 0) or dim // 64
        return AST(dim=dim, depth=count(state, r"v\.blocks\.(\d+)\.norm1\.weight"), heads=heads,
                   hidden=state["v.blocks.0.mlp.fc1.weight"].shape[0],
                   kernel=tuple(state["v.patch_embed.proj.weight"].shape[2:]), stride=tuple(stride),
                   tokens=state["v.pos_embed"].shape[1] - 2, classes=state["mlp_head.1.weight"].shape[0])
    mixer = "layers.0.mixer."
    bimamba = "v2" if mixer + "conv1d_b.weight" in state else "v1" if mixer + "A_b_log" in state else "none"
    return AuM(dim=state["cls_token"].shape[-1], depth=count(state, r"layers\.(\d+)\.norm\.weight"),
               kernel=tuple(state["patch_embed.proj.weight"].shape[2:]), stride=tuple(stride),
               tokens=state["pos_embed"].shape[1] - 1, classes=state["head.weight"].shape[0],
               d_inner=state[mixer + "in_proj.weight"].shape[0] // 2, d_state=state[mixer + "A_log"].shape[1],
               d_conv=state[mixer + "conv1d.weight"].shape[-1], dt_rank=state[mixer + "dt_proj.weight"].shape[1],
               bimamba=bimamba)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("weights", help="a patchbay weights file (HDF5)")
    p.add_argument("input", help="spectrogram batch .npy: [B, 1, F, T] or AST's [B, T, F]")
    p.add_argument("--out", help="write the logits here as float32 .npy")
    p.add_argument("--arch", choices=["ast", "aum"], help="default: from the tensor names")
    p.add_argument("--heads", type=int, help="AST attention heads (default: from the file's config)")
    p.add_argument("--stride", type=int, nargs=2, metavar=("FREQ", "TIME"),
                   help="patch stride (default: the file's stride_freq, stride_time)")
    p.add_argument("--save-pth", help="torch.save the loaded model's state_dict() here")
    args = p.parse_args()

    with h5py.File(args.weights, "r") as f:
        state = {k: torch.from_numpy(np.array(v[()])) for k, v in f.items()}
        model = build(state, f, args)
    model.load_state_dict(state, strict=True)
    model.eval()

    x = torch.from_numpy(np.load(args.input).astype(np.float32))
    if x.dim() == 3:  # AST's [B, T, F], as ASTModel.forward takes it
        x = x.unsqueeze(1).transpose(2, 3)
    with torch.no_grad():
        logits = model(x)
    for row in logits:
        print(" ".join(f"{v:.6f}" for v in row.tolist()))
    if args.out:
        np.save(args.out, logits.numpy().astype(np.float32))
    if args.save_pth:
        torch.save(model.state_dict(), args.save_pth)


if __name__ == "__main__":
    sys.exit(main())

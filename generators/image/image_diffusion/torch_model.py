"""The denoising network as a pure nn.Module: a small UNet over images padded to a multiple of 4, conditioned on
the noise level (sinusoidal embedding) plus a class embedding with one extra "no label" class."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def groups(channels: int) -> int:
    """GroupNorm groups for a channel count: 8 when it divides, else the largest divisor up to 8."""
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (n, dim) of noise levels t in [0, 1] (scaled by 1000, as for 1000 discrete steps)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(10_000.0) / max(half - 1, 1)))
    angles = 1000.0 * t.to(torch.float32)[:, None] * freqs[None]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm, SiLU, 3x3 conv, plus the embedding's shift per channel, then again; a 1x1 skip when widths differ."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups(c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(groups(c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class Attention(nn.Module):
    """Single-head self-attention over the positions of the coarsest map (its global layout)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups(channels), channels)
        self.qkv, self.out = nn.Conv2d(channels, 3 * channels, 1), nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).unbind(1)
        weights = torch.softmax(torch.einsum("ncp,ncq->npq", q, k) / math.sqrt(c), dim=2)
        return x + self.out(torch.einsum("npq,ncq->ncp", weights, v).reshape(n, c, h, w))


class DenoisingUNet(nn.Module):
    """Predicts the noise (or v) of noisy padded images x_t (n, channels, H, W), H and W multiples of 4, at noise
    levels t (n,) in [0, 1] for class indices (n,) in 0..n_classes, where index n_classes means "no label"
    (classifier-free guidance). Three resolutions (base, 2 base, 2 base channels), one residual block per level
    on the way down and two on the way up, attention at the coarsest; no batch statistics (GroupNorm), so an image's
    output never depends on the rest of its batch."""

    def __init__(self, channels: int, n_classes: int, base: int):
        super().__init__()
        self.n_classes = n_classes
        self.base = base
        emb_dim = 4 * base
        widths = (base, 2 * base, 2 * base)
        self.time_mlp = nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_embedding = nn.Embedding(n_classes + 1, emb_dim)
        self.stem = nn.Conv2d(channels, base, 3, padding=1)
        self.down = nn.ModuleList([ResBlock(base, widths[0], emb_dim), ResBlock(widths[0], widths[1], emb_dim),
                                   ResBlock(widths[1], widths[2], emb_dim)])
        self.downsample = nn.ModuleList([nn.Conv2d(widths[0], widths[0], 3, 2, 1),
                                         nn.Conv2d(widths[1], widths[1], 3, 2, 1)])
        self.mid1, self.attention = ResBlock(widths[2], widths[2], emb_dim), Attention(widths[2])
        self.mid2 = ResBlock(widths[2], widths[2], emb_dim)
        self.up = nn.ModuleList([ResBlock(2 * widths[2], widths[1], emb_dim),
                                 ResBlock(widths[1] + widths[1], widths[0], emb_dim),
                                 ResBlock(widths[0] + widths[0], base, emb_dim)])
        self.upsample = nn.ModuleList([nn.Conv2d(widths[1], widths[1], 3, padding=1),
                                       nn.Conv2d(widths[0], widths[0], 3, padding=1)])
        self.head = nn.Sequential(nn.GroupNorm(groups(base), base), nn.SiLU(), nn.Conv2d(base, channels, 3, padding=1))
        nn.init.zeros_(self.head[2].weight)
        nn.init.zeros_(self.head[2].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(time_embedding(t, self.base)) + self.class_embedding(classes)
        emb = F.silu(emb)
        h = self.stem(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < 2:
                h = self.downsample[i](h)
        h = self.mid2(self.attention(self.mid1(h, emb)), emb)
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if i < 2:
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.head(h)

"""The diffusion model's loss and its noise schedule: mean squared error of the predicted noise (or v) at a noise
level drawn uniformly in [0, 1] on the cosine schedule (Nichol & Dhariwal, 2021)."""

from __future__ import annotations

import math

import torch

COSINE_OFFSET = 0.008
MIN_ALPHA_BAR = 1e-6  # at t = 1 the cosine schedule reaches 0: images are then (almost) pure noise


def alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """The signal's share of the variance of x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) noise, at t in [0, 1]."""
    s = COSINE_OFFSET
    f = torch.cos((t.to(torch.float64) + s) / (1 + s) * (math.pi / 2)) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
    return f.clamp(MIN_ALPHA_BAR, 1.0).to(torch.float32)


def diffusion_loss(net, x0: torch.Tensor, classes: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                   prediction: str) -> torch.Tensor:
    """Mean squared error per pixel of `net`'s prediction of `noise` ("epsilon") or of
    v = sqrt(alpha_bar) noise - sqrt(1 - alpha_bar) x0 ("v", Salimans & Ho 2022) from x_t; x0 in [-1, 1]."""
    a = alpha_bar(t)[:, None, None, None]
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    target = noise if prediction == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * x0
    return (net(xt, t, classes) - target).pow(2).mean()

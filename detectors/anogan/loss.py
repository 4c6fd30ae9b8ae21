"""Losses of AnoGAN-style training and scoring."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    real = F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))
    fake = F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))
    return 0.5 * (real + fake)


def generator_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating GAN loss."""
    return F.binary_cross_entropy_with_logits(logits_fake, torch.ones_like(logits_fake))


def residual_feature_score(x, x_hat, features_real, features_fake, kappa: float) -> torch.Tensor:
    """Per-item f-AnoGAN score: |x - G(E(x))|^2 + kappa * |f(x) - f(G(E(x)))|^2 (means over dimensions)."""
    residual = ((x - x_hat) ** 2).flatten(1).mean(dim=1)
    feature = ((features_real - features_fake) ** 2).mean(dim=1)
    return residual + kappa * feature


def search_loss(x, x_hat, features_real, features_fake, lam: float) -> torch.Tensor:
    """Per-item AnoGAN latent-search loss: (1 - lambda) * |x - G(z)|_1 + lambda * |f(x) - f(G(z))|_1."""
    residual = (x - x_hat).abs().flatten(1).mean(dim=1)
    feature = (features_real - features_fake).abs().mean(dim=1)
    return (1.0 - lam) * residual + lam * feature

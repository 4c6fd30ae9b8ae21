"""GANomaly losses: adversarial (feature matching), contextual (L1 reconstruction) and latent (L2)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class GeneratorLoss(nn.Module):
    """w_adv * |f(x) - f(x_hat)|^2 + w_con * |x - x_hat| + w_lat * |z - z_hat|^2 (paper: weights 1/50/1, L1).

    `contextual="l2"` uses a squared contextual error instead of the paper's L1.
    """

    def __init__(self, w_adv: float = 1.0, w_con: float = 50.0, w_lat: float = 1.0, contextual: str = "l1"):
        super().__init__()
        self.w_adv, self.w_con, self.w_lat = w_adv, w_con, w_lat
        self.contextual = contextual

    def forward(self, x, x_hat, z, z_hat, features_real, features_fake) -> torch.Tensor:
        adversarial = F.mse_loss(features_fake, features_real.detach())
        contextual = F.l1_loss(x_hat, x) if self.contextual == "l1" else F.mse_loss(x_hat, x)
        latent = F.mse_loss(z_hat, z)
        return self.w_adv * adversarial + self.w_con * contextual + self.w_lat * latent


class DiscriminatorLoss(nn.Module):
    """Binary cross-entropy: real items -> 1, reconstructions -> 0."""

    def forward(self, logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
        real = F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))
        fake = F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake))
        return 0.5 * (real + fake)

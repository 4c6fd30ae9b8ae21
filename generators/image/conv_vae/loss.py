"""The VAE's loss: Bernoulli cross-entropy of the pixel intensities plus beta times the KL to the class prior."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def vae_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, mu: torch.Tensor,
             logvar: torch.Tensor, prior_mu: torch.Tensor, beta: float
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction, kl), each the mean over images; `mask` is 1 on real pixels, 0 on the padding, and
    the prior of each image's code is N(prior_mu, I)."""
    recon = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * mask).flatten(1).sum(1).mean()
    kl = (-0.5 * (1 + logvar - (mu - prior_mu).pow(2) - logvar.exp())).sum(1).mean()
    return recon + beta * kl, recon, kl


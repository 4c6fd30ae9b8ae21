"""The adversarial critic shared by conv_vae (VAE-GAN term) and image_gan, and its hinge losses: a pure nn.Module
and two functions, used in training only (a critic is never saved)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from generators.image.base import padded_side


class ConditionalCritic(nn.Module):
    """The adversarial critic of generated images (training only, never saved): two spectrally normalised stride-2
    convolutions, then a linear score plus a projection of the features on the class embedding (Miyato & Koyama
    2018), so it judges an image against its own label. Scores are unbounded (hinge loss)."""

    def __init__(self, channels: int, height: int, width: int, n_classes: int, base: int):
        super().__init__()
        sn = nn.utils.spectral_norm
        ph, pw = padded_side(height), padded_side(width)
        flat = 2 * base * (ph // 4) * (pw // 4)
        self.body = nn.Sequential(
            sn(nn.Conv2d(channels, base, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(base, 2 * base, 4, 2, 1)), nn.LeakyReLU(0.2), nn.Flatten(),
            sn(nn.Linear(flat, 256)), nn.LeakyReLU(0.2))
        self.score = sn(nn.Linear(256, 1))
        self.embed = sn(nn.Embedding(n_classes, 256))

    def forward(self, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """One score per padded image x in [0, 1] (higher = more real for its class)."""
        h = self.body(x - 0.5)
        return self.score(h).squeeze(1) + (self.embed(classes) * h).sum(1)


def critic_hinge_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """The critic's hinge loss: real images scored above +1, generated ones below -1."""
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def adversarial_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """The generating network's side of the hinge game: raise the critic's score of its images."""
    return -fake_scores.mean()

"""The conditional GAN's generator as a pure nn.Module (its critic is `generators.image.critic.ConditionalCritic`)."""

from __future__ import annotations

import torch
from torch import nn

from generators.image.base import padded_side


def _norm(channels: int) -> nn.GroupNorm:
    """Per-image normalisation (no batch statistics): a sample never depends on the others in its batch."""
    return nn.GroupNorm(min(8, channels), channels)


class ConditionalImageGenerator(nn.Module):
    """[z, class embedding] -> a (2 base, H/4, W/4) map -> two nearest-neighbour upsamplings each followed by 3x3
    convolutions (no transposed convolutions, so no checkerboard) -> pixel logits at the padded size (the caller
    crops). Group normalisation, not batch normalisation, so training and sampling compute the same function."""

    def __init__(self, channels: int, height: int, width: int, n_classes: int, latent_dim: int, base: int):
        super().__init__()
        self.channels, self.n_classes, self.latent_dim = channels, n_classes, latent_dim
        self.ph, self.pw = padded_side(height), padded_side(width)
        self.map_shape = (2 * base, self.ph // 4, self.pw // 4)
        self.embed = nn.Embedding(n_classes, latent_dim)
        self.from_code = nn.Sequential(nn.Linear(2 * latent_dim, 2 * base * (self.ph // 4) * (self.pw // 4)),
                                       nn.LeakyReLU(0.2))
        self.body = nn.Sequential(
            _norm(2 * base),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * base, base, 3, 1, 1), _norm(base),
            nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(base, base, 3, 1, 1), _norm(base),
            nn.LeakyReLU(0.2),
            nn.Conv2d(base, channels, 3, 1, 1))

    def forward(self, z: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """Pixel logits (n, channels, padded H, padded W) of codes z ~ N(0, I) for the given class indices."""
        h = self.from_code(torch.cat([z, self.embed(classes)], dim=1))
        return self.body(h.view(-1, *self.map_shape)).contiguous()

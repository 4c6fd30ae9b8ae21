"""The conditional convolutional VAE as a pure nn.Module: images padded to a multiple of 4, one-hot class input."""

from __future__ import annotations

import torch
from torch import nn

from generators.image.base import padded_side


class ConditionalConvVAE(nn.Module):
    """Encoder: two stride-2 convolutions, then [features, one-hot class] -> mean and log-variance of z.
    Decoder: [z, one-hot class] -> a (2 width, H/4, W/4) map -> two stride-2 transposed convolutions -> pixel logits
    at the padded size (the caller crops). The prior is class-conditional, N(prior_mean[class], I): with one
    N(0, I) for every class the decoder learns to read the class from z and ignore its one-hot input, and samples
    drawn from N(0, I) mix the classes."""

    def __init__(self, channels: int, height: int, width: int, n_classes: int, latent_dim: int, base: int):
        super().__init__()
        self.channels, self.n_classes, self.latent_dim = channels, n_classes, latent_dim
        self.ph, self.pw = padded_side(height), padded_side(width)
        self.map_shape = (2 * base, self.ph // 4, self.pw // 4)
        flat = 2 * base * (self.ph // 4) * (self.pw // 4)
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, base, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(base, 2 * base, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten())
        self.to_stats = nn.Sequential(nn.Linear(flat + n_classes, 256), nn.LeakyReLU(0.2),
                                      nn.Linear(256, 2 * latent_dim))
        self.from_code = nn.Sequential(nn.Linear(latent_dim + n_classes, 256), nn.LeakyReLU(0.2),
                                       nn.Linear(256, flat), nn.LeakyReLU(0.2))
        self.prior_mean = nn.Embedding(n_classes, latent_dim)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * base, base, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(base, channels, 4, 2, 1))

    def one_hot(self, classes: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(classes, self.n_classes).to(torch.float32)

    def encode(self, x: torch.Tensor, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.cat([self.encoder(x), self.one_hot(classes)], dim=1)
        mu, logvar = self.to_stats(h).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode(self, z: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        h = self.from_code(torch.cat([z, self.one_hot(classes)], dim=1))
        return self.decoder(h.view(-1, *self.map_shape))

    def forward(self, x: torch.Tensor, classes: torch.Tensor, noise: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pixel logits, mu, logvar) of padded images x in [0, 1]; `noise` ~ N(0, 1) is the reparameterisation."""
        mu, logvar = self.encode(x, classes)
        z = mu + noise * torch.exp(0.5 * logvar)
        return self.decode(z, classes), mu, logvar


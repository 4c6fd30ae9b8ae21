"""GANomaly networks: encoder -> decoder -> encoder generator and a discriminator (pure nn.Modules)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from detectors.backbones import Discriminator, make_decoder, make_encoder


class GanomalyGenerator(nn.Module):
    """x -> z (encoder 1) -> x_hat (decoder) -> z_hat (encoder 2)."""

    def __init__(self, shape: Sequence[int], latent_dim: int, width: int):
        super().__init__()
        self.encoder1 = make_encoder(shape, latent_dim, width)
        self.decoder = make_decoder(shape, latent_dim, width)
        self.encoder2 = make_encoder(shape, latent_dim, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.encoder1(x)
        x_hat = self.decoder(z)
        return x_hat, z, self.encoder2(x_hat)


__all__ = ["GanomalyGenerator", "Discriminator"]

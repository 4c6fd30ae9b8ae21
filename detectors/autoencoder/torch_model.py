"""Plain reconstruction autoencoder (pure nn.Module)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from detectors.backbones import make_decoder, make_encoder


class AutoencoderModel(nn.Module):
    def __init__(self, shape: Sequence[int], latent_dim: int, width: int):
        super().__init__()
        self.encoder = make_encoder(shape, latent_dim, width)
        self.decoder = make_decoder(shape, latent_dim, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

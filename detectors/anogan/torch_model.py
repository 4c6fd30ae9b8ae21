"""AnoGAN / f-AnoGAN networks: generator z -> x, discriminator with a feature trunk, encoder x -> z."""

from __future__ import annotations

from typing import Sequence

from detectors.backbones import Discriminator, make_decoder, make_encoder


def make_generator(shape: Sequence[int], latent_dim: int, width: int):
    return make_decoder(shape, latent_dim, width)


def make_latent_encoder(shape: Sequence[int], latent_dim: int, width: int):
    return make_encoder(shape, latent_dim, width)


__all__ = ["Discriminator", "make_generator", "make_latent_encoder"]

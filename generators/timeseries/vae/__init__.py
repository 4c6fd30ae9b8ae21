"""Sequence VAE generator (own torch model, TimeVAE-like)."""

from generators.timeseries.vae.generator import SequenceVAEGenerator

__all__ = ["SequenceVAEGenerator"]

"""Autoregressive tabular generator (own torch model)."""

from generators.tabular.autoregressive.generator import AutoregressiveGenerator

__all__ = ["AutoregressiveGenerator"]

"""Autoregressive sequence generator (own torch model, the default for timeseries)."""

from generators.timeseries.autoregressive.generator import SequenceARGenerator

__all__ = ["SequenceARGenerator"]

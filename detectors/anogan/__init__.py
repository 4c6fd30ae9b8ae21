"""AnoGAN / f-AnoGAN detector."""

from detectors.anogan.model import AnoGAN

__all__ = ["AnoGAN"]

"""Plain reconstruction autoencoder detector."""

from detectors.autoencoder.model import Autoencoder

__all__ = ["Autoencoder"]

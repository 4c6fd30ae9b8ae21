"""GANomaly: encoder-decoder-encoder GAN anomaly detector."""

from detectors.ganomaly.model import Ganomaly

__all__ = ["Ganomaly"]

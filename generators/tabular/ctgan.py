"""SDV's CTGAN behind the Generator protocol."""

from __future__ import annotations

from generators.tabular._sdv import SDVGenerator


class CTGANGenerator(SDVGenerator):
    """Conditional tabular GAN (SDV CTGANSynthesizer); slow on CPU, so `epochs` is the budget knob."""

    name = "ctgan"
    synthesizer = "CTGANSynthesizer"

    def __init__(self, *, epochs: int = 300, batch_size: int = 500, seed: int = 0):
        self.epochs = epochs
        self.batch_size = batch_size
        self.seed = seed

    def _synthesizer_kwargs(self):
        return {"epochs": self.epochs, "batch_size": self.batch_size, "enable_gpu": False, "verbose": False}

"""SDV's Gaussian copula behind the Generator protocol."""

from __future__ import annotations

from generators.tabular._sdv import SDVGenerator


class GaussianCopulaGenerator(SDVGenerator):
    """Per-column marginals joined by a Gaussian copula (SDV GaussianCopulaSynthesizer)."""

    name = "gaussian_copula"
    synthesizer = "GaussianCopulaSynthesizer"

    def __init__(self, *, default_distribution: str = "beta", seed: int = 0):
        self.default_distribution = default_distribution
        self.seed = seed

    def _synthesizer_kwargs(self):
        return {"default_distribution": self.default_distribution}

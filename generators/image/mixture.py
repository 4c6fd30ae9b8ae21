"""Class-conditional Gaussian mixtures over codes (PCA scores, VAE latents): fit, draw, and check a saved one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generators.base import take_array
from generators.errors import ModelFormatError

MIXTURE_ARRAYS = ("weights", "means", "covariances")


@dataclass
class ClassMixtures:
    """One full-covariance Gaussian mixture per class: weights (K, k), means (K, k, p), covariances (K, k, p, p);
    a class with fewer components than k has zero weight on the rest."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def __post_init__(self):
        self.cholesky = np.ascontiguousarray(np.linalg.cholesky(self.covariances))

    @classmethod
    def fit(cls, codes: np.ndarray, classes: np.ndarray, n_classes: int, max_components: int,
            codes_per_component: int, reg_covar: float, rng: np.random.Generator) -> "ClassMixtures":
        """EM per class with min(max_components, n_class // codes_per_component) components (at least 1);
        `reg_covar` is relative to the mean code variance. A class with one code gets a small isotropic Gaussian."""
        from sklearn.mixture import GaussianMixture

        p = codes.shape[1]
        k_max = int(max(1, max_components))
        weights = np.zeros((n_classes, k_max))
        means = np.zeros((n_classes, k_max, p))
        covs = np.tile(np.eye(p), (n_classes, k_max, 1, 1))
        scale = float(codes.var(axis=0).mean()) if len(codes) > 1 else 1.0
        for c in range(n_classes):
            s = codes[classes == c]
            k = int(min(k_max, max(1, len(s) // max(1, codes_per_component))))
            if len(s) < 2:
                weights[c, 0], means[c, 0] = 1.0, s.mean(axis=0)
                covs[c, 0] = np.eye(p) * max(scale, 1e-6) * 0.01
                continue
            gmm = GaussianMixture(k, covariance_type="full", reg_covar=reg_covar * max(scale, 1e-12),
                                  random_state=int(rng.integers(0, 2**31 - 1)), max_iter=200)
            gmm.fit(s)
            order = np.argsort(-gmm.weights_, kind="stable")
            weights[c, :k] = gmm.weights_[order] / gmm.weights_.sum()
            means[c, :k] = gmm.means_[order]
            cov = gmm.covariances_[order]
            covs[c, :k] = (cov + np.swapaxes(cov, -1, -2)) / 2.0
        return cls(weights, means, covs)

    def draw(self, classes: np.ndarray, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
        """One code (float64) per requested class index; `scale` widens (> 1) or narrows each component's spread
        (its standard deviations times `scale`)."""
        k_max, p = self.weights.shape[1], self.means.shape[2]
        cdf = np.cumsum(self.weights, axis=1)
        u = rng.random(len(classes))
        component = np.minimum((u[:, None] >= cdf[classes]).sum(axis=1), k_max - 1)
        eps = rng.standard_normal((len(classes), p))
        if scale != 1.0:
            eps = eps * scale
        return self.means[classes, component] + np.einsum("nij,nj->ni", self.cholesky[classes, component], eps)

    def arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {f"{prefix}{k}": getattr(self, k) for k in MIXTURE_ARRAYS}

    @classmethod
    def from_arrays(cls, arrays, prefix: str, n_classes: int, max_components: int, dim: int | None = None
                    ) -> "ClassMixtures":
        """Rebuild saved mixtures of `n_classes` classes, at most `max_components` components and `dim`-dimensional
        codes (None: any); ModelFormatError on bad shapes, weights, or covariances that are not symmetric positive
        definite."""
        weights = take_array(arrays, f"{prefix}weights", np.float64, ndim=2)
        k = weights.shape[1]
        if weights.shape[0] != n_classes or not 1 <= k <= max_components:
            raise ModelFormatError(f"array '{prefix}weights' has shape {weights.shape}, expected ({n_classes}, "
                                   f"<= {max_components})")
        if (weights < 0).any() or not np.allclose(weights.sum(axis=1), 1.0, atol=1e-9):
            raise ModelFormatError(f"array '{prefix}weights' must hold non-negative mixture weights summing to 1 "
                                   "per class")
        means = take_array(arrays, f"{prefix}means", np.float64, ndim=3)
        p = means.shape[2]
        if means.shape[:2] != (n_classes, k) or (dim is not None and p != dim) or p < 1:
            raise ModelFormatError(f"array '{prefix}means' has shape {means.shape}, expected ({n_classes}, {k}, "
                                   f"{'p' if dim is None else dim})")
        covs = take_array(arrays, f"{prefix}covariances", np.float64, (n_classes, k, p, p))
        if not np.array_equal(covs, np.swapaxes(covs, -1, -2)):
            raise ModelFormatError(f"array '{prefix}covariances' holds a matrix that is not symmetric")
        try:
            return cls(weights, means, covs)
        except np.linalg.LinAlgError:
            raise ModelFormatError(f"array '{prefix}covariances' holds a matrix that is not positive definite"
                                   ) from None

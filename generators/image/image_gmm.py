"""Image GMM: one PCA basis for all images, then a full-covariance Gaussian mixture per class in its scores."""

from __future__ import annotations

import numpy as np

from generators.base import check_array_keys, take_array
from generators.errors import ModelFormatError
from generators.image.base import ImageGenerator, check_positive, from_unit, to_unit


class ImageGMMGenerator(ImageGenerator):
    """The fast baseline: pixels -> `n_basis` principal components -> a Gaussian mixture per class.

    Each class gets min(`max_components`, n_class // `images_per_component`) components (at least 1), fitted
    by EM on at most `max_fit_images` images. Samples are decoded from the basis and clipped to 0..255, so they
    look like smooth reconstructions: fine structure beyond `n_basis` components is not modelled.
    """

    name = "image_gmm"

    def __init__(self, *, n_basis: int = 48, max_components: int = 8, images_per_component: int = 40,
                 reg_covar: float = 1e-4, max_fit_images: int = 20_000, seed: int = 0):
        self.n_basis = n_basis
        self.max_components = max_components
        self.images_per_component = images_per_component
        self.reg_covar = reg_covar
        self.max_fit_images = max_fit_images
        self.seed = seed

    # --------------------------------------------------------------- fit
    def _fit(self, pixels: np.ndarray, classes: np.ndarray) -> None:
        from sklearn.mixture import GaussianMixture

        rng = np.random.default_rng(self.seed)
        if len(pixels) > self.max_fit_images:  # stratified: keep each class's share
            keep = np.sort(rng.permutation(len(pixels))[: self.max_fit_images])
            pixels, classes = pixels[keep], classes[keep]
        x = to_unit(pixels).reshape(len(pixels), -1).astype(np.float64)
        mean = x.mean(axis=0)
        centred = x - mean
        p = int(max(1, min(self.n_basis, x.shape[1], len(x) - 1)))
        # the thin SVD of the centred data: the basis is its leading right singular vectors, signs fixed
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        basis = vt[:p]
        basis *= np.where(basis[np.arange(p), np.abs(basis).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]
        scores = centred @ basis.T
        k_max = int(max(1, self.max_components))
        K = self.n_classes_
        weights = np.zeros((K, k_max))
        means = np.zeros((K, k_max, p))
        covs = np.tile(np.eye(p), (K, k_max, 1, 1))
        scale = float(scores.var(axis=0).mean()) if len(scores) > 1 else 1.0
        for c in range(K):
            s = scores[classes == c]
            k = int(min(k_max, max(1, len(s) // max(1, self.images_per_component))))
            if len(s) < 2:
                weights[c, 0], means[c, 0] = 1.0, s.mean(axis=0)
                covs[c, 0] = np.eye(p) * max(scale, 1e-6) * 0.01
                continue
            gmm = GaussianMixture(k, covariance_type="full", reg_covar=self.reg_covar * max(scale, 1e-12),
                                  random_state=int(rng.integers(0, 2**31 - 1)), max_iter=200)
            gmm.fit(s)
            order = np.argsort(-gmm.weights_, kind="stable")
            weights[c, :k] = gmm.weights_[order] / gmm.weights_.sum()
            means[c, :k] = gmm.means_[order]
            cov = gmm.covariances_[order]
            covs[c, :k] = (cov + np.swapaxes(cov, -1, -2)) / 2.0
        self.mean_, self.basis_ = mean, basis
        self.weights_, self.means_, self.covariances_ = weights, means, covs

    # ------------------------------------------------------------ sample
    def _sample(self, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, d = len(classes), self.basis_.shape[1]
        k_max = self.weights_.shape[1]
        cdf = np.cumsum(self.weights_, axis=1)
        out = np.empty((n, d), dtype=np.uint8)
        step = 4096  # bounded memory: (step, p, p) Cholesky factors and (step, d) float64 pixels at a time
        for i in range(0, n, step):
            c = classes[i:i + step]
            u = rng.random(len(c))
            component = np.minimum((u[:, None] >= cdf[c]).sum(axis=1), k_max - 1)
            eps = rng.standard_normal((len(c), self.basis_.shape[0]))
            z = self.means_[c, component] + np.einsum("nij,nj->ni", self.cholesky_[c, component], eps)
            out[i:i + step] = from_unit(z @ self.basis_ + self.mean_)
        return out.reshape(n, *self.shape_)

    # ------------------------------------------------------- persistence
    def _get_state(self):
        return {}, {"mean": self.mean_, "basis": self.basis_, "weights": self.weights_, "means": self.means_,
                    "covariances": self.covariances_}

    def _set_state(self, state, arrays):
        check_positive(self.name, n_basis=self.n_basis, max_components=self.max_components)
        if state != {}:
            raise ModelFormatError("state must be an empty mapping for image_gmm")
        check_array_keys(arrays, ["mean", "basis", "weights", "means", "covariances"])
        d = int(np.prod(self.shape_))
        K = self.n_classes_
        basis = take_array(arrays, "basis", np.float64, ndim=2)
        p = basis.shape[0]
        if basis.shape[1] != d or not 1 <= p <= min(self.n_basis, d):
            raise ModelFormatError(f"array 'basis' has shape {basis.shape}, expected (<= {self.n_basis}, {d})")
        weights = take_array(arrays, "weights", np.float64, ndim=2)
        k = weights.shape[1]
        if weights.shape[0] != K or not 1 <= k <= self.max_components:
            raise ModelFormatError(f"array 'weights' has shape {weights.shape}, expected ({K}, "
                                   f"<= {self.max_components})")
        if (weights < 0).any() or not np.allclose(weights.sum(axis=1), 1.0, atol=1e-9):
            raise ModelFormatError("array 'weights' must hold non-negative mixture weights summing to 1 per class")
        mean = take_array(arrays, "mean", np.float64, (d,))
        means = take_array(arrays, "means", np.float64, (K, k, p))
        covs = take_array(arrays, "covariances", np.float64, (K, k, p, p))
        if not np.array_equal(covs, np.swapaxes(covs, -1, -2)):
            raise ModelFormatError("array 'covariances' holds a matrix that is not symmetric")
        try:
            chol = np.linalg.cholesky(covs)
        except np.linalg.LinAlgError:
            raise ModelFormatError("array 'covariances' holds a matrix that is not positive definite") from None
        self.mean_, self.basis_, self.weights_, self.means_, self.covariances_ = mean, basis, weights, means, covs
        self.cholesky_ = np.ascontiguousarray(chol)

"""Image GMM: one PCA basis for all images, then a full-covariance Gaussian mixture per class in its scores."""

from __future__ import annotations

import numpy as np

from generators.base import check_array_keys, take_array
from generators.errors import ModelFormatError
from generators.image.base import ImageGenerator, check_positive, from_unit, to_unit
from generators.image.mixture import MIXTURE_ARRAYS, ClassMixtures


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
        self.mixtures_ = ClassMixtures.fit(scores, classes, self.n_classes_, self.max_components,
                                           self.images_per_component, self.reg_covar, rng)
        self.mean_, self.basis_ = mean, basis

    # ------------------------------------------------------------ sample
    def _sample(self, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, d = len(classes), self.basis_.shape[1]
        out = np.empty((n, d), dtype=np.uint8)
        step = 4096  # bounded memory: (step, p, p) Cholesky factors and (step, d) float64 pixels at a time
        for i in range(0, n, step):
            out[i:i + step] = from_unit(self.mixtures_.draw(classes[i:i + step], rng) @ self.basis_ + self.mean_)
        return out.reshape(n, *self.shape_)

    # ------------------------------------------------------- persistence
    def _get_state(self):
        return {}, {"mean": self.mean_, "basis": self.basis_, **self.mixtures_.arrays()}

    def _set_state(self, state, arrays):
        check_positive(self.name, n_basis=self.n_basis, max_components=self.max_components)
        if state != {}:
            raise ModelFormatError("state must be an empty mapping for image_gmm")
        check_array_keys(arrays, ["mean", "basis", *MIXTURE_ARRAYS])
        d = int(np.prod(self.shape_))
        basis = take_array(arrays, "basis", np.float64, ndim=2)
        p = basis.shape[0]
        if basis.shape[1] != d or not 1 <= p <= min(self.n_basis, d):
            raise ModelFormatError(f"array 'basis' has shape {basis.shape}, expected (<= {self.n_basis}, {d})")
        mean = take_array(arrays, "mean", np.float64, (d,))
        self.mixtures_ = ClassMixtures.from_arrays(arrays, "", self.n_classes_, self.max_components, p)
        self.mean_, self.basis_ = mean, basis

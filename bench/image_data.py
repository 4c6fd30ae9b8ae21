"""Real image sets for the image benchmarks: Fashion-MNIST (IDX files in data/raw) and scikit-learn's 8x8 digits."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FASHION = ROOT / "data" / "raw" / "fashion-mnist"
FASHION_NAMES = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"]


def _idx(path: Path) -> np.ndarray:
    raw = gzip.open(path).read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (n, 28, 28, 1), object labels: class names) of one split."""
    prefix = "train" if split == "train" else "t10k"
    px = _idx(FASHION / f"{prefix}-images-idx3-ubyte.gz")[..., None]
    labels = np.array(FASHION_NAMES, dtype=object)[_idx(FASHION / f"{prefix}-labels-idx1-ubyte.gz")]
    return np.ascontiguousarray(px), labels


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 8x8 digits as uint8 (n, 8, 8, 1) (0..16 scaled to 0..255), labels "0".."9"."""
    from sklearn.datasets import load_digits

    d = load_digits()
    px = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[..., None]
    return px, np.array([str(int(v)) for v in d.target], dtype=object)


def stratified_split(labels: np.ndarray, sizes: list[int], seed: int) -> list[np.ndarray]:
    """Disjoint index sets of the given sizes, each drawn stratified by label."""
    rng = np.random.default_rng(seed)
    classes, inverse = np.unique(labels.astype(str), return_inverse=True)
    share = np.bincount(inverse) / len(labels)
    pools = [list(rng.permutation(np.flatnonzero(inverse == c))) for c in range(len(classes))]
    out = []
    for size in sizes:
        want = np.floor(share * size).astype(int)
        for c in np.argsort(-(share * size - want))[: size - want.sum()]:
            want[c] += 1
        part = []
        for c, k in enumerate(want):
            part += pools[c][:k]
            pools[c] = pools[c][k:]
        out.append(np.sort(np.array(part, dtype=np.int64)))
    return out

"""`evaluate_images`: the quality gate for synthetic images (fidelity, label fidelity, memorisation), pure numpy in.

Every measure lives in the feature space of a small network trained here, on the real training images only (no
downloaded weights): a CNN classifier of the labels, or a convolutional autoencoder's code when the images have
fewer than two labels. In that space:

- `frechet_ratio`: the Frechet distance of the synthetic images to the training images, divided by the holdout's
  (equal sample sizes): 1 = as close as unseen real images;
- `coverage` (Naeem et al., 2020): the share of real images whose k-NN ball holds a synthetic image (mode
  dropping); precision, recall and density are reported beside it;
- `discriminator_auc`: cross-validated AUROC of a classifier telling synthetic from real images, on the learnt
  features, a small thumbnail and sharpness statistics (blur and noise show there);
- `label_fidelity`: the share of synthetic images the classifier assigns to their own label;
- `memorisation_pixels` / `memorisation_features`: the share of synthetic images nearer to their nearest
  training image than the `memorisation_quantile` of the holdout's own nearest-training distances;
- `exact_copy_rate`: synthetic images byte-identical to a training image.

Bounds are fixed where the gate states its intent and size-aware where sampling noise matters, as in
`quality.gate`: each is the fixed bound or the value an independent real sample of these sizes reaches with
probability 1 - Phi(`sampling_z`), whichever is looser.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

import numpy as np

from quality import bounds
from quality.checks import CheckResult, QualityReport, bounded_check, overlay_thresholds
from quality.errors import InvalidInputError, SchemaMismatchError
from quality.privacy import chunked_nearest

DEFAULT_IMAGE_THRESHOLDS: dict[str, float | None] = {
    "frechet_ratio": 3.0,          # max: FD(synthetic, train) / FD(holdout, train) at equal sizes; or exp(z sd),
                                   #   sd the spread of log FD ratios between random halves of the holdout (real
                                   #   samples of 75 images reach 2.5; the generators benchmarked reach 10 and more)
    "coverage": 0.7,               # min: share of real images with a synthetic one in their k-NN ball; or the
                                   #   holdout's coverage - z SE
    "discriminator_auc": 0.85,     # max: 0.5 = synthetic and real images cannot be told apart; or 0.5 + z SE
    "label_fidelity": 0.85,        # min: share of synthetic images classified as their own label; or the
                                   #   classifier's accuracy on the holdout - z SE
    "memorisation_pixels": 0.1,    # max: share of synthetic images closer (pixels) to a training image than the
                                   #   holdout's `memorisation_quantile`; or that quantile + z SE
    "memorisation_features": 0.1,  # max: the same in the feature space
    "memorisation_quantile": 0.05,  # the quantile of the holdout's nearest-training distances called "too close"
    "exact_copy_rate": None,       # max: None = what an exact binomial test against the holdout's copies accepts
    "exact_copy_z": 3.0,           # one-sided z of that test
    "sampling_z": 3.0,             # one-sided z of every size-aware bound; None = fixed bounds only
}
NEIGHBOURS = 5          # k of precision/recall/density/coverage
MAX_SIDE = 32           # images are area-pooled to at most this side for the network and pixel distances
FEATURE_DIM = 64


def resolve_image_thresholds(thresholds: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with `thresholds`; unknown names raise so a config typo cannot silently loosen the gate."""
    return overlay_thresholds(DEFAULT_IMAGE_THRESHOLDS, thresholds, "image quality")


# ---------------------------------------------------------------------- inputs
def _check_images(pixels: Any, labels: Any, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    if not isinstance(pixels, np.ndarray) or pixels.ndim != 4 or pixels.dtype != np.uint8:
        raise InvalidInputError(f"{what} images must be a uint8 array of shape (n, height, width, channels), got "
                                f"{getattr(pixels, 'dtype', type(pixels).__name__)} "
                                f"{getattr(pixels, 'shape', '')}")
    if len(pixels) == 0 or 0 in pixels.shape[1:]:
        raise InvalidInputError(f"{what} holds no images (shape {pixels.shape})")
    if labels is None:
        return pixels, None
    labels = np.asarray(labels, dtype=object)
    if labels.shape != (len(pixels),):
        raise InvalidInputError(f"{what} has {labels.size} labels for {len(pixels)} images; give one per image")
    if any(v is not None and not isinstance(v, str) for v in labels):
        raise InvalidInputError(f"{what} labels must be text or None")
    return pixels, labels


def _label_codes(vocab: list, labels: np.ndarray | None, n: int) -> np.ndarray:
    """Index of each label in `vocab`; -1 for a label the vocabulary lacks."""
    if labels is None:
        return np.full(n, vocab.index(None) if None in vocab else -1, dtype=np.int64)
    index = {v: i for i, v in enumerate(vocab)}
    return np.fromiter((index.get(v, -1) for v in labels), dtype=np.int64, count=n)


def _pooled(pixels: np.ndarray) -> np.ndarray:
    """float32 (n, c, h', w') in [0, 1], area-pooled so that no side exceeds MAX_SIDE."""
    x = pixels.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255.0)
    h, w = x.shape[2:]
    fh, fw = math.ceil(h / MAX_SIDE), math.ceil(w / MAX_SIDE)
    if fh > 1 or fw > 1:
        ph, pw = math.ceil(h / fh) * fh - h, math.ceil(w / fw) * fw - w
        x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="edge")
        x = x.reshape(x.shape[0], x.shape[1], x.shape[2] // fh, fh, x.shape[3] // fw, fw).mean(axis=(3, 5))
    return np.ascontiguousarray(x, dtype=np.float32)


# ---------------------------------------------------------------------- the feature network
def _build_net(channels: int, height: int, width: int, n_out: int):
    import torch
    from torch import nn

    class FeatureNet(nn.Module):
        """Three small convolutions to a FEATURE_DIM code; a linear head (classes, or the pooled image)."""

        def __init__(self):
            super().__init__()
            # stride 2 from the first layer on images of 16 pixels or more: 4x cheaper, as accurate
            first = 2 if min(height, width) >= 16 else 1
            side = (min(height, 4), min(width, 4))
            self.body = nn.Sequential(
                nn.Conv2d(channels, 16, 3, stride=first, padding=1), nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                nn.AdaptiveAvgPool2d(side), nn.Flatten(),
                nn.Linear(64 * side[0] * side[1], FEATURE_DIM), nn.ReLU())
            self.head = nn.Linear(FEATURE_DIM, n_out)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            f = self.body(x - 0.5)
            return f, self.head(f)

    return FeatureNet()


def train_feature_net(images: np.ndarray, classes: np.ndarray | None, *, steps: int, batch_size: int = 128,
                      seed: int = 0):
    """The feature network trained on pooled real images: a classifier of `classes` (>= 2 distinct), else an
    autoencoder of the pooled image. Seeded and single-threaded, so the same input gives the same network."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = images.shape
    decode = classes is None
    n_out = c * h * w if decode else int(classes.max()) + 1
    before = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.set_num_threads(1)
        try:
            torch.manual_seed(seed)
            net = _build_net(c, h, w, n_out)
            opt = torch.optim.Adam(net.parameters(), lr=3e-3)
            x_all = torch.from_numpy(images)
            y_all = None if decode else torch.from_numpy(classes)
            g = torch.Generator().manual_seed(seed)
            net.train()
            for _ in range(steps):
                idx = torch.randint(0, n, (min(batch_size, n),), generator=g)
                x = x_all[idx]
                _, out = net(x)
                loss = F.mse_loss(out, x.flatten(1)) if decode else F.cross_entropy(out, y_all[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            net.eval()
        finally:
            torch.set_num_threads(before)
    return net


def _embed(net, images: np.ndarray, with_logits: bool = False):
    import torch

    feats, logits = [], []
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for i in range(0, len(images), 1024):
                f, out = net(torch.from_numpy(images[i:i + 1024]))
                feats.append(f.numpy())
                if with_logits:
                    logits.append(out.numpy())
    finally:
        torch.set_num_threads(before)
    f = np.concatenate(feats).astype(np.float64)
    return (f, np.concatenate(logits)) if with_logits else f


# ---------------------------------------------------------------------- measures
def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature samples (rows)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1 = np.cov(a, rowvar=False) if len(a) > 1 else np.zeros((a.shape[1],) * 2)
    s2 = np.cov(b, rowvar=False) if len(b) > 1 else np.zeros((b.shape[1],) * 2)
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(root1 @ s2 @ root1)
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * np.sqrt(np.clip(cross, 0, None)).sum())
    return max(value, 0.0)


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d2 = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.clip(d2, 0, None))


def prdc(real: np.ndarray, fake: np.ndarray, k: int = NEIGHBOURS) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al., 2020) of `fake` against `real` feature rows."""
    k = int(max(1, min(k, len(real) - 1)))
    rr = _pairwise(real, real)
    real_radius = np.sort(rr, axis=1)[:, k]  # column 0 is the point itself
    rf = _pairwise(real, fake)  # (n_real, n_fake)
    inside = rf <= real_radius[:, None]
    if len(fake) > 1:
        fake_radius = np.sort(_pairwise(fake, fake), axis=1)[:, min(k, len(fake) - 1)]
        recall = float((rf <= fake_radius[None, :]).any(axis=1).mean())
    else:
        recall = float("nan")  # one synthetic image has no neighbourhood
    return {"precision": float(inside.any(axis=0).mean()), "recall": recall,
            "density": float(inside.sum() / (k * fake.shape[0])),
            "coverage": float((rf.min(axis=1) <= real_radius).mean()), "k": k}


def _discriminator_inputs(pooled: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Learnt features, a thumbnail of 8 to 15 pixels a side (9x9 for 28x28 images) and sharpness/contrast statistics
    per image."""
    n, c, h, w = pooled.shape
    fh, fw = max(1, h // 8), max(1, w // 8)
    th = pooled[:, :, : (h // fh) * fh, : (w // fw) * fw]
    thumb = th.reshape(n, c, h // fh, fh, w // fw, fw).mean(axis=(3, 5)).reshape(n, -1)
    dx = np.abs(np.diff(pooled, axis=3)).mean(axis=(2, 3)) if w > 1 else np.zeros((n, c))
    dy = np.abs(np.diff(pooled, axis=2)).mean(axis=(2, 3)) if h > 1 else np.zeros((n, c))
    flat = pooled.reshape(n, c, -1)
    stats = np.hstack([dx, dy, flat.mean(2), flat.std(2), (flat <= 1 / 255).mean(2), (flat >= 254 / 255).mean(2)])
    return np.hstack([features, thumb, stats])


def discriminator_auc(real: np.ndarray, synthetic: np.ndarray, *, folds: int = 3, seed: int = 0) -> float:
    """Cross-validated AUROC of a gradient-boosted classifier telling real rows from synthetic rows (0.5 = none)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    x = np.vstack([real, synthetic])
    y = np.r_[np.ones(len(real)), np.zeros(len(synthetic))]
    folds = int(max(2, min(folds, len(real), len(synthetic))))
    model = HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=15, learning_rate=0.15,
                                           early_stopping=False, random_state=seed)
    with threadpool_limits(limits=1, user_api="openmp"):
        proba = cross_val_predict(model, x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                                  method="predict_proba")[:, 1]
    return float(roc_auc_score(y, proba))


def _hashes(pixels: np.ndarray) -> np.ndarray:
    flat = pixels.reshape(len(pixels), -1)
    return np.array([hashlib.blake2b(row.tobytes(), digest_size=16).hexdigest() for row in flat], dtype=object)


def _loosen(fixed: float | None, null: float, z: float | None, se: float, direction: str):
    """(bound, sampling bound): the fixed bound, or the null value -+ z SE when that is looser."""
    if fixed is None or z is None or not np.isfinite(se):
        return fixed, None
    sampled = null + z * se if direction == "max" else null - z * se
    return (max(fixed, sampled) if direction == "max" else min(fixed, sampled)), sampled


def _subsample(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.permutation(n)[:m]) if m < n else np.arange(n)


# ---------------------------------------------------------------------- the gate
def evaluate_images(real: np.ndarray, real_labels: np.ndarray | None, synthetic: np.ndarray,
                    synthetic_labels: np.ndarray | None, holdout: np.ndarray | None = None,
                    holdout_labels: np.ndarray | None = None, *, thresholds: dict[str, Any] | None = None,
                    seed: int = 0, label: str | None = None, max_images: int = 2000,
                    extractor_steps: int = 300, extractor_images: int = 20_000) -> QualityReport:
    """Every image check of `synthetic` against `real` (the training images) and `holdout` (real images kept out).

    Images are uint8 (n, height, width, channels), all of one shape; labels are text or None per image (or None
    for unlabelled images). `label`: the label the synthetic images were conditioned on; distribution checks then
    compare them with the real images of that label only (memorisation still looks at every training image).
    At most `max_images` images per set enter the distribution checks and the synthetic side of memorisation
    (drawn at random with `seed`); the feature network trains for `extractor_steps` batches on at most
    `extractor_images` training images. Without a holdout, the frechet ratio and the holdout-relative bounds are
    not available: memorisation then compares with the training images' leave-one-out distances.
    """
    real, real_labels = _check_images(real, real_labels, "real")
    if len(real) < 2:
        raise InvalidInputError("the gate needs at least 2 real training images to compare with")
    synthetic, synthetic_labels = _check_images(synthetic, synthetic_labels, "synthetic")
    if holdout is not None:
        holdout, holdout_labels = _check_images(holdout, holdout_labels, "holdout")
    for what, other in (("synthetic", synthetic), ("holdout", holdout)):
        if other is not None and other.shape[1:] != real.shape[1:]:
            raise SchemaMismatchError(f"{what} images are {other.shape[1:]} (height, width, channels), the real "
                                      f"ones {real.shape[1:]}; compare images of one shape")
    limits = resolve_image_thresholds(thresholds)
    z = limits["sampling_z"]
    rng = np.random.default_rng(seed)
    timings: dict[str, float] = {}
    checks: list[CheckResult] = []
    arrays: dict[str, np.ndarray] = {}

    # -- labels: the classes the feature network learns (None counts as a class when some images have labels)
    vocab: list = [] if real_labels is None else sorted({v for v in real_labels if v is not None})
    if real_labels is not None and any(v is None for v in real_labels):
        vocab.append(None)
    labelled = len(vocab) >= 2
    if label is not None and (real_labels is None or label not in set(real_labels)):
        raise InvalidInputError(f"label {label!r} is not a label of the real images; known: "
                                f"{[v for v in vocab if v is not None][:30]}")
    metrics: dict[str, Any] = {"n_real": len(real), "n_synthetic": len(synthetic),
                               "n_holdout": None if holdout is None else len(holdout),
                               "shape": list(real.shape[1:]), "labels": [str(v) for v in vocab], "label": label}

    t = time.perf_counter()
    pooled_real = _pooled(real)
    train_idx = _subsample(len(real), extractor_images, rng)
    classes_real = _label_codes(vocab, real_labels, len(real)) if labelled else None
    net = train_feature_net(pooled_real[train_idx], None if classes_real is None else classes_real[train_idx],
                            steps=extractor_steps, seed=seed)
    timings["extractor"] = time.perf_counter() - t

    t = time.perf_counter()
    syn_idx = _subsample(len(synthetic), max_images, rng)
    pooled_syn = _pooled(synthetic[syn_idx])
    f_real = _embed(net, pooled_real)
    f_syn, logits_syn = _embed(net, pooled_syn, with_logits=True)
    labels_syn = None if synthetic_labels is None else synthetic_labels[syn_idx]
    if holdout is not None:
        hold_idx = _subsample(len(holdout), max_images, rng)
        pooled_hold = _pooled(holdout[hold_idx])
        f_hold, logits_hold = _embed(net, pooled_hold, with_logits=True)
        labels_hold = None if holdout_labels is None else holdout_labels[hold_idx]
    # the reference sets of the distribution checks: the conditioned label only, when there is one
    ref_real = np.arange(len(real)) if label is None else np.flatnonzero(real_labels == label)
    ref_syn = np.arange(len(syn_idx))
    ref_hold = None
    if holdout is not None:
        ref_hold = (np.arange(len(hold_idx)) if label is None or labels_hold is None
                    else np.flatnonzero(labels_hold == label))
        if len(ref_hold) < 2:
            ref_hold = None
    ref_real = ref_real[_subsample(len(ref_real), max_images, rng)]
    timings["embed"] = time.perf_counter() - t

    # -- Frechet distance
    t = time.perf_counter()
    fr = f_real[ref_real]
    fd = frechet_distance(f_syn[ref_syn], fr)
    metrics["frechet_distance"] = fd
    if ref_hold is not None:
        m = min(len(ref_syn), len(ref_hold))
        fs_eq = f_syn[ref_syn[_subsample(len(ref_syn), m, rng)]]
        fh_eq = f_hold[ref_hold[_subsample(len(ref_hold), m, rng)]]
        fd_syn, fd_hold = frechet_distance(fs_eq, fr), frechet_distance(fh_eq, fr)
        ratio = fd_syn / fd_hold if fd_hold > 0 else float("inf")
        # the ratio two disjoint halves of the holdout reach, as log-ratio spread. With no true difference the
        # Frechet distance is all estimation error, quadratic in it, so numerator and denominator shrink alike
        # (about 1/n) and the log-ratio's spread hardly depends on the size: the halves' spread is used as it is
        # (scaling it by 1/sqrt(2) quarantined 1 in 10 real samples of 75 digits in bench/image_gate_calibration)
        logs = []
        if len(fh_eq) >= 8:
            for _ in range(20):
                perm = rng.permutation(len(fh_eq))
                a, b = fh_eq[perm[: len(perm) // 2]], fh_eq[perm[len(perm) // 2:]]
                fa, fb = frechet_distance(a, fr), frechet_distance(b, fr)
                if fa > 0 and fb > 0:
                    logs.append(math.log(fa / fb))
        spread = float(np.std(logs, ddof=1)) if len(logs) >= 5 else float("nan")
        fixed = limits["frechet_ratio"]
        sampled = None if z is None or not np.isfinite(spread) else math.exp(z * spread)
        limit = fixed if fixed is None or sampled is None else max(fixed, sampled)
        metrics.update(frechet_synthetic=fd_syn, frechet_holdout=fd_hold, frechet_ratio=ratio)
        checks.append(bounded_check(
            "frechet_ratio", ratio, limit, direction="max", kind="fidelity",
            explanation=(f"Frechet distance to the training images {fd_syn:.3g} for {m} synthetic images vs "
                         f"{fd_hold:.3g} for {m} holdout images (1 = as close as unseen real images)"),
            details={"frechet_synthetic": fd_syn, "frechet_holdout": fd_hold, "n": m, "log_spread": spread,
                     "sampling_bound": sampled}))
    else:
        checks.append(bounded_check(
            "frechet_distance", fd, None, direction="max", kind="fidelity",
            explanation=(f"Frechet distance {fd:.3g} to the training images in the learnt feature space (no holdout "
                         "given to judge it against)")))

    # -- precision / recall / density / coverage
    pr = prdc(fr, f_syn[ref_syn])
    metrics["prdc"] = pr
    cov_limit, cov_details = limits["coverage"], {"k": pr["k"], "precision": pr["precision"],
                                                 "recall": pr["recall"], "density": pr["density"]}
    if ref_hold is not None:
        m = min(len(ref_syn), len(ref_hold))
        hold_pr = prdc(fr, f_hold[ref_hold[_subsample(len(ref_hold), m, rng)]])
        syn_pr = pr if m == len(ref_syn) else prdc(fr, f_syn[ref_syn[_subsample(len(ref_syn), m, rng)]])
        c_h = hold_pr["coverage"]
        se = math.sqrt(max(c_h * (1 - c_h), 1.0 / len(fr)) * 2.0 / len(fr))
        cov_limit, sampled = _loosen(cov_limit, c_h, z, se, "min")
        metrics["holdout_prdc"] = hold_pr
        cov_details.update(holdout_coverage=c_h, se=se, sampling_bound=sampled, n=m)
        coverage = syn_pr["coverage"]
    else:
        coverage = pr["coverage"]
    checks.append(bounded_check(
        "coverage", coverage, cov_limit, direction="min", kind="fidelity",
        explanation=(f"{coverage:.1%} of real images have a synthetic image among their {pr['k']} nearest neighbours' "
                     f"radius (mode dropping lowers it)"
                     + (f"; the holdout reaches {cov_details['holdout_coverage']:.1%}" if ref_hold is not None else "")
                     + f"; precision {pr['precision']:.2f}, recall {pr['recall']:.2f}, density {pr['density']:.2f}"),
        details=cov_details))
    checks.append(bounded_check("precision", pr["precision"], None, direction="min", kind="fidelity",
                                explanation="share of synthetic images inside the real images' k-NN balls"))
    checks.append(bounded_check("recall", pr["recall"], None, direction="min", kind="fidelity",
                                explanation="share of real images inside the synthetic images' k-NN balls"))
    checks.append(bounded_check("density", pr["density"], None, direction="min", kind="fidelity",
                                explanation="mean number of real k-NN balls holding a synthetic image, over k "
                                            "(1 = like real images)"))
    timings["distribution"] = time.perf_counter() - t

    # -- discriminator
    t = time.perf_counter()
    if ref_hold is not None:
        side, side_f, side_name = pooled_hold[ref_hold], f_hold[ref_hold], "holdout"
    else:
        side, side_f, side_name = pooled_real[ref_real], f_real[ref_real], "training"
    m = min(len(side), len(ref_syn))
    if m >= 4:
        a = _subsample(len(side), m, rng)
        b = ref_syn[_subsample(len(ref_syn), m, rng)]
        auc = discriminator_auc(_discriminator_inputs(side[a], side_f[a]),
                                _discriminator_inputs(pooled_syn[b], f_syn[b]), seed=seed)
        auc_limit, sampled = _loosen(limits["discriminator_auc"], 0.5, z, bounds.mann_whitney_se(m, m), "max")
        checks.append(bounded_check(
            "discriminator_auc", auc, auc_limit, direction="max", kind="fidelity",
            explanation=(f"a cross-validated classifier tells {m} synthetic from {m} {side_name} images with AUROC "
                         f"{auc:.3f} (0.5 = cannot)"),
            details={"n_per_class": m, "real_side": side_name, "sampling_bound": sampled}))
        metrics["discriminator_auc"] = auc
    else:
        checks.append(bounded_check("discriminator_auc", None, None, direction="max", kind="fidelity",
                                    explanation=f"not run: {m} images per side is too few for a classifier"))
    timings["discriminator"] = time.perf_counter() - t

    # -- label fidelity
    t = time.perf_counter()
    if labelled and labels_syn is not None:
        codes_syn = _label_codes(vocab, labels_syn, len(labels_syn))
        fidelity = float((logits_syn.argmax(1) == codes_syn).mean())
        per_label = {str(v): float((logits_syn.argmax(1)[codes_syn == i] == i).mean())
                     for i, v in enumerate(vocab) if (codes_syn == i).any()}
        lf_limit, details = limits["label_fidelity"], {"per_label": per_label}
        if holdout is not None and labels_hold is not None:
            codes_hold = _label_codes(vocab, labels_hold, len(labels_hold))
            accuracy = float((logits_hold.argmax(1) == codes_hold).mean())
            se = math.sqrt(max(accuracy * (1 - accuracy), 0.25 / len(codes_hold))
                           * (1.0 / len(codes_syn) + 1.0 / len(codes_hold)))
            lf_limit, sampled = _loosen(lf_limit, accuracy, z, se, "min")
            details.update(holdout_accuracy=accuracy, se=se, sampling_bound=sampled)
        worst = min(per_label, key=per_label.get)
        checks.append(bounded_check(
            "label_fidelity", fidelity, lf_limit, direction="min", kind="fidelity",
            explanation=(f"a classifier trained on the real images assigns {fidelity:.1%} of synthetic images to "
                         f"their own label (worst {worst!r}: {per_label[worst]:.1%})"
                         + (f"; it is right on {details['holdout_accuracy']:.1%} of holdout images"
                            if "holdout_accuracy" in details else "")),
            details=details))
        metrics["label_fidelity"] = fidelity
        real_share = {str(v): float(np.mean(_label_codes(vocab, real_labels, len(real)) == i))
                      for i, v in enumerate(vocab)}
        syn_share = {str(v): float(np.mean(codes_syn == i)) for i, v in enumerate(vocab)}
        tvd = 0.5 * sum(abs(real_share[k] - syn_share[k]) for k in real_share)
        metrics["label_shares"] = {"real": real_share, "synthetic": syn_share}
        checks.append(bounded_check("label_tvd", tvd, None, direction="max", kind="fidelity",
                                    explanation=f"total variation between real and synthetic label shares "
                                                f"{tvd:.3f}" + (" (conditioned on one label)" if label else "")))
    else:
        checks.append(bounded_check("label_fidelity", None, None, direction="min", kind="fidelity",
                                    explanation="not run: the real images have fewer than two labels, or the "
                                                "synthetic images none"))
    timings["labels"] = time.perf_counter() - t

    # -- memorisation: nearest training image, in pixels and in features
    t = time.perf_counter()
    q = limits["memorisation_quantile"] or 0.05
    p_real = pooled_real.reshape(len(real), -1)
    p_syn = pooled_syn.reshape(len(syn_idx), -1)
    spaces = {"pixels": (p_real, p_syn), "features": (f_real, f_syn)}
    if holdout is not None:
        reference_name = "holdout"
        p_hold = pooled_hold.reshape(len(hold_idx), -1)
        refs = {"pixels": p_hold, "features": f_hold}
    else:
        reference_name = "training (leave one out)"
        loo = _subsample(len(real), max_images, rng)
        refs = {"pixels": p_real[loo], "features": f_real[loo]}
    priv: dict[str, Any] = {"reference": reference_name, "quantile": q}
    for space, (train_x, syn_x) in spaces.items():
        d_syn, i_syn, _ = chunked_nearest(syn_x, train_x, k=1, track_reference=False)
        if holdout is not None:
            d_ref = chunked_nearest(refs[space], train_x, k=1, track_reference=False)[0][:, 0]
        elif len(train_x) >= 2:
            d_ref = chunked_nearest(refs[space], train_x, k=2, track_reference=False)[0][:, 1]
        else:
            d_ref = np.array([np.inf])
        d_syn = d_syn[:, 0]
        tau = float(np.quantile(d_ref, q))
        share = float(np.mean(d_syn <= tau))
        se = math.sqrt(q * (1 - q) * (1.0 / len(d_syn) + 1.0 / len(d_ref)))
        limit, sampled = _loosen(limits[f"memorisation_{space}"], q, z, se, "max")
        arrays[f"distance_{space}"] = d_syn
        arrays[f"reference_distance_{space}"] = d_ref
        arrays[f"nearest_train_{space}"] = i_syn[:, 0]
        priv[space] = {"share": share, "tau": tau, "median_synthetic": float(np.median(d_syn)),
                       "median_reference": float(np.median(d_ref)), "se": se}
        checks.append(bounded_check(
            f"memorisation_{space}", share, limit, direction="max", kind="privacy",
            explanation=(f"{share:.1%} of synthetic images are nearer ({space}) to a training image than "
                         f"{q:.0%} of {reference_name} images are ({tau:.3g}); median nearest-training distance "
                         f"{np.median(d_syn):.3g} vs {np.median(d_ref):.3g}"),
            details={"tau": tau, "se": se, "sampling_bound": sampled, "reference": reference_name},
            reach=1.0, enlarge=f"the {reference_name} images"))
    arrays["synthetic_index"] = syn_idx

    train_hashes = set(_hashes(real))
    syn_copies = int(sum(h in train_hashes for h in _hashes(synthetic)))
    rate = syn_copies / len(synthetic)
    if holdout is not None:
        ref_copies, n_ref = int(sum(h in train_hashes for h in _hashes(holdout))), len(holdout)
        ref_what = "holdout images"
    else:
        _, counts = np.unique(_hashes(real), return_counts=True)
        ref_copies, n_ref = int(counts[counts > 1].sum()), len(real)
        ref_what = "training images equal another one"
    copy_limit = limits["exact_copy_rate"]
    if copy_limit is None:
        allowed = bounds.max_count_same_rate(ref_copies, n_ref, len(synthetic),
                                             bounds.alpha_from_z(limits["exact_copy_z"] or 3.0))
        copy_limit = allowed / len(synthetic)
    priv["exact_copies"] = syn_copies
    priv["reference_copies"] = ref_copies
    checks.append(bounded_check(
        "exact_copy_rate", rate, copy_limit, direction="max", kind="privacy",
        explanation=(f"{syn_copies} of {len(synthetic)} synthetic images ({rate:.2%}) equal a training image "
                     f"pixel for pixel; {ref_copies} of {n_ref} {ref_what}"),
        details={"copies": syn_copies, "reference_copies": ref_copies},
        reach=1.0 if limits["exact_copy_rate"] is None else None, enlarge=f"the {ref_what.split()[0]} images"))
    metrics["memorisation"] = priv
    timings["memorisation"] = time.perf_counter() - t
    timings["total"] = sum(timings.values())
    return QualityReport(checks=checks, metrics=metrics, arrays=arrays, timings=timings)

"""Privacy of a synthetic table against its training data, with the holdout split as the baseline.

One mixed-type distance serves every distance metric:

    d(a, b) = sqrt( ( sum_numeric ((a - b) / range)^2 + sum_numeric [a missing != b missing]
                      + sum_categorical [a != b] ) / n_columns )

where `range` is the real data's 1st-99th percentile spread (max - min, then 1, when that is 0), a missing
numeric is imputed with the real median, and a missing category is a category of its own. Rows are embedded
so that squared Euclidean distance equals the sum above (categoricals one-hot scaled by 1/sqrt(2)), and
nearest neighbours are found with matrix products over chunks of query rows, so 50k x 50k rows never holds
more than `memory_mb` of distances at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from quality.bounds import cluster_share_se, mann_whitney_se, median_se
from quality.columns import ColumnSpec, category_strings, numeric_values
from quality.errors import InvalidInputError


class MixedTypeDistance:
    """Gower-like Euclidean distance over numeric (robust-scaled) and categorical (0/1) columns."""

    def __init__(self, spec: ColumnSpec, *, range_quantiles: tuple[float, float] = (0.01, 0.99),
                 memory_mb: int = 256):
        self.spec = spec
        self.range_quantiles = range_quantiles
        self.memory_mb = memory_mb

    def fit(self, real: pd.DataFrame) -> "MixedTypeDistance":
        """Learn medians, robust ranges and category sets from the real (training) table."""
        lo, hi = self.range_quantiles
        self.medians_, self.scales_ = {}, {}
        for column in self.spec.numeric:
            values = numeric_values(real[column])
            finite = values[~np.isnan(values)]
            if len(finite) == 0:
                self.medians_[column], self.scales_[column] = 0.0, 1.0
                continue
            q_lo, q_hi = np.quantile(finite, [lo, hi])
            scale = q_hi - q_lo
            if scale <= 0:
                scale = finite.max() - finite.min()
            self.medians_[column] = float(np.median(finite))
            self.scales_[column] = float(scale) if scale > 0 else 1.0
        self.categories_ = {c: pd.Index(pd.unique(category_strings(real[c]))) for c in self.spec.categorical}
        self.n_columns_ = len(self.spec.numeric) + len(self.spec.categorical)
        if self.n_columns_ == 0:
            raise InvalidInputError("the distance needs at least one numeric or categorical column")
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Embed rows (float64) so that squared Euclidean distance / n_columns = squared mixed distance."""
        parts = []
        for column in self.spec.numeric:
            values = numeric_values(frame[column])
            missing = np.isnan(values)
            parts.append(np.where(missing, self.medians_[column], values)[:, None]
                         / self.scales_[column] - self.medians_[column] / self.scales_[column])
            parts.append(missing.astype(np.float64)[:, None])
        for column in self.spec.categorical:
            cats = self.categories_[column]
            codes = cats.get_indexer(category_strings(frame[column]))
            # categories unseen in the real table share one extra slot: unseen-vs-unseen counts as equal,
            # unseen-vs-seen as different, which is what a 0/1 mismatch needs
            codes = np.where(codes < 0, len(cats), codes)
            onehot = np.zeros((len(frame), len(cats) + 1))
            onehot[np.arange(len(frame)), codes] = np.sqrt(0.5)
            parts.append(onehot)
        return np.hstack(parts) / np.sqrt(self.n_columns_)

    def pairwise(self, a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
        """The full distance matrix between two small tables (exact, float64; for tests and small data)."""
        ea, eb = self.transform(a), self.transform(b)
        return np.sqrt(((ea[:, None, :] - eb[None, :, :]) ** 2).sum(-1))

    def nearest(self, query: pd.DataFrame | np.ndarray, reference: pd.DataFrame | np.ndarray, *, k: int = 1,
                chunk_rows: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """k nearest reference rows of every query row, and each reference row's nearest query distance.

        Returns (distances (n_query, k) ascending, indices (n_query, k), reference_min (n_reference,)).
        """
        q = query if isinstance(query, np.ndarray) else self.transform(query)
        r = reference if isinstance(reference, np.ndarray) else self.transform(reference)
        return chunked_nearest(q, r, k=k, chunk_rows=chunk_rows, memory_mb=self.memory_mb)


def chunked_nearest(query: np.ndarray, reference: np.ndarray, *, k: int = 1, chunk_rows: int | None = None,
                    memory_mb: int = 256, track_reference: bool = True
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Exact k-NN under Euclidean distance by matmul over query chunks (float32 products, float64 results).

    `reference_min` (each reference row's nearest query distance) costs two extra passes over every chunk;
    pass `track_reference=False` when it is not needed (it is then None).
    """
    if k < 1 or k > len(reference):
        raise InvalidInputError(f"k={k} nearest neighbours needs 1 <= k <= {len(reference)} reference rows")
    # centring on the reference mean keeps the |q|^2 + |r|^2 - 2qr cancellation error small in float32
    center = reference.mean(axis=0)
    ref = reference - center
    # one augmented product gives |r|^2 - 2 q.r directly: [q, 1] @ [-2 r, |r|^2]^T
    ref_aug = np.ascontiguousarray(np.hstack([-2.0 * ref, (ref ** 2).sum(1, keepdims=True)]).T.astype(np.float32))
    if chunk_rows is None:
        chunk_rows = max(1, int(memory_mb * 2**20 // (4 * 2 * max(len(ref), 1))))
    n = len(query)
    dist = np.empty((n, k))
    idx = np.empty((n, k), dtype=np.int64)
    ref_min = np.full(len(ref), np.inf, dtype=np.float32) if track_reference else None
    for start in range(0, n, chunk_rows):
        centred = query[start:start + chunk_rows] - center
        q_aug = np.hstack([centred, np.ones((len(centred), 1))]).astype(np.float32)
        d2 = q_aug @ ref_aug
        rows = np.arange(len(q_aug))
        if ref_min is not None:
            # the per-row |q|^2 does not change a row's argmin, so it is added only when columns are compared
            d2 += (centred ** 2).sum(1).astype(np.float32)[:, None]
            np.minimum(ref_min, d2.min(axis=0), out=ref_min)
        if k == 1:
            best = d2.argmin(axis=1)[:, None]
        elif k == 2:
            first = d2.argmin(axis=1)
            d2[rows, first] = np.inf
            best = np.stack([first, d2.argmin(axis=1)], axis=1)
        else:
            part = np.argpartition(d2, k - 1, axis=1)[:, :k]
            order = np.argsort(np.take_along_axis(d2, part, axis=1), axis=1)
            best = np.take_along_axis(part, order, axis=1)
        idx[start:start + len(q_aug)] = best
        # recompute the chosen distances exactly in float64 so ties and exact copies are exact zeros
        diff = query[start:start + len(q_aug)][:, None, :] - reference[best]
        dist[start:start + len(q_aug)] = np.sqrt((diff ** 2).sum(-1))
    if ref_min is not None:
        ref_min = np.sqrt(np.maximum(ref_min, 0.0).astype(np.float64))
    return dist, idx, ref_min


def row_hashes(frame: pd.DataFrame, spec: ColumnSpec) -> np.ndarray:
    """One 64-bit hash per row over the feature columns, insensitive to int/float and dtype differences."""
    normalised = pd.DataFrame(index=range(len(frame)))
    for column in spec.features:
        if column in spec.numeric:
            normalised[column] = numeric_values(frame[column])
        else:
            normalised[column] = category_strings(frame[column])
    return pd.util.hash_pandas_object(normalised, index=False).to_numpy()


def exact_copy_rate(rows: pd.DataFrame, train: pd.DataFrame, spec: ColumnSpec) -> float:
    """Share of `rows` identical (on every feature column) to some training row."""
    return float(np.isin(row_hashes(rows, spec), row_hashes(train, spec)).mean())


def twin_rate(frame: pd.DataFrame, spec: ColumnSpec) -> float:
    """Share of rows equal to at least one other row of the same table.

    The no-holdout baseline for exact copies: a fresh row equals one of n real rows about as often as a real
    row equals one of the n - 1 others (the `duplicate_rate`, which counts only later repeats, is about half).
    """
    return float(pd.Series(row_hashes(frame, spec)).duplicated(keep=False).mean())


def _auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    return float(roc_auc_score(y, np.r_[positive, negative]))


def privacy_metrics(train: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame, spec: ColumnSpec, *,
                    max_rows: int = 50_000, seed: int = 0, memory_mb: int = 256,
                    chunk_rows: int | None = None) -> dict[str, Any]:
    """Exact copies, DCR share, NNDR and a distance-based membership-inference attack.

    Train and holdout are subsampled to the same size n = min(len(train), len(holdout), max_rows) so that a
    synthetic row with no memory of training is as likely to sit closest to either (DCR share 0.5).
    Returns plain metrics plus an `arrays` entry of distances for the report's histograms.
    """
    rng = np.random.default_rng(seed)
    n = min(len(train), len(holdout), max_rows)
    train_s = train.iloc[rng.choice(len(train), n, replace=False)].reset_index(drop=True)
    hold_s = holdout.iloc[rng.choice(len(holdout), n, replace=False)].reset_index(drop=True)
    synth_s = synthetic
    if len(synthetic) > max_rows:
        synth_s = synthetic.iloc[rng.choice(len(synthetic), max_rows, replace=False)].reset_index(drop=True)

    distance = MixedTypeDistance(spec, memory_mb=memory_mb).fit(train)
    e_train, e_hold, e_synth = (distance.transform(f) for f in (train_s, hold_s, synth_s))
    # embedding columns that are zero in every row (unused missing flags and unseen-category slots) add
    # nothing to any distance: dropping them shortens every product
    used = (e_train != 0).any(0) | (e_hold != 0).any(0) | (e_synth != 0).any(0)
    e_train, e_hold, e_synth = e_train[:, used], e_hold[:, used], e_synth[:, used]

    # each scan gives both directions: query -> nearest reference rows and reference -> nearest query row
    to_train, train_idx, train_to_synth = chunked_nearest(e_synth, e_train, k=min(2, n), chunk_rows=chunk_rows,
                                                          memory_mb=memory_mb)
    to_hold, hold_idx, hold_to_synth = chunked_nearest(e_synth, e_hold, k=1, chunk_rows=chunk_rows,
                                                       memory_mb=memory_mb)
    hold_to_train, _, _ = chunked_nearest(e_hold, e_train, k=min(2, n), chunk_rows=chunk_rows, memory_mb=memory_mb,
                                          track_reference=False)

    d_train, d_hold = to_train[:, 0], to_hold[:, 0]
    tol = 1e-9
    closer = (d_train < d_hold - tol).mean()
    ties = (np.abs(d_train - d_hold) <= tol).mean()
    dcr_share = float(closer + 0.5 * ties)
    # null spread: training and holdout rows are exchangeable, so each pooled row is a training row by a fair
    # coin that every synthetic row nearest to it shares (ties count 0.5 whatever the coin says)
    tied = np.abs(d_train - d_hold) <= tol
    nearest_pooled = np.where(d_train < d_hold, train_idx[:, 0], n + hold_idx[:, 0])
    dcr_share_se = cluster_share_se(nearest_pooled, weight=(~tied).astype(np.float64))

    def nndr(d: np.ndarray) -> np.ndarray:
        if d.shape[1] < 2:
            return np.ones(len(d))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = d[:, 0] / d[:, 1]
        return np.where(d[:, 1] > 0, ratio, 0.0)  # two exact matches: as close as it gets

    nndr_synth, nndr_hold = nndr(to_train), nndr(hold_to_train)
    # membership inference: training rows sit nearer the synthetic data than holdout rows do
    mia = _auroc(-train_to_synth, -hold_to_synth)
    mia_se = mann_whitney_se(n, n, np.r_[train_to_synth, hold_to_synth])
    median_synth, median_hold = float(np.median(nndr_synth)), float(np.median(nndr_hold))
    # standard error of the ratio of two independent medians (delta method), in units of the ratio
    nndr_ratio_se = (float(np.hypot(median_se(nndr_synth), median_se(nndr_hold)) / median_hold)
                     if median_hold > 0 else float("nan"))

    synth_copy = exact_copy_rate(synthetic, train, spec)
    hold_copy = exact_copy_rate(holdout, train, spec)
    return {
        "n_train_sample": n, "n_holdout_sample": n, "n_synthetic": len(synth_s),
        "exact_copy_rate": synth_copy, "holdout_exact_copy_rate": hold_copy,
        "n_synthetic_total": len(synthetic), "n_holdout_total": len(holdout),
        "dcr_share": dcr_share, "dcr_share_se": dcr_share_se, "dcr_ties": float(ties),
        "dcr_train_median": float(np.median(d_train)), "dcr_holdout_median": float(np.median(d_hold)),
        "holdout_dcr_median": float(np.median(hold_to_train[:, 0])),
        "nndr_median": median_synth, "holdout_nndr_median": median_hold, "nndr_ratio_se": nndr_ratio_se,
        "nndr_p05": float(np.quantile(nndr_synth, 0.05)), "holdout_nndr_p05": float(np.quantile(nndr_hold, 0.05)),
        "mia_auroc": mia, "mia_auroc_se": mia_se,
        "arrays": {"dcr_synthetic_to_train": d_train, "dcr_synthetic_to_holdout": d_hold,
                   "dcr_holdout_to_train": hold_to_train[:, 0]},
    }


def duplicate_rate(frame: pd.DataFrame, spec: ColumnSpec) -> float:
    """Share of rows that repeat an earlier row of the same table (the no-holdout baseline for copies)."""
    return float(pd.Series(row_hashes(frame, spec)).duplicated().mean())

"""`evaluate_sequences`: the quality gate for synthetic sequences (long frames: one row per entity and step).

Fidelity compares what a data scientist looks at in a panel: the values at a step (per-step marginals), how they
change from one step to the next (and the time steps themselves), per-sequence statistics (length, mean, std,
first and last value, lag-1 autocorrelation), the context (constant per entity) alone and with the values, a
discriminator on per-sequence features, and one-step forecasting trained on synthetic vs on real sequences,
tested on the holdout. Privacy works on whole sequences: copied sequences, the distance-to-closest-record
share against the holdout and a distance-based membership-inference attack.

Every score that two real samples of these sizes would also miss is judged against the fixed bound or what such
samples reach with probability 1 - Phi(`sampling_z`), whichever is looser, like `quality.gate`: the accuracy
scores against a permutation null (sequences, not rows, relabelled between real and synthetic; its
mean TVD taken as log-normal, as a sum of folded deviations is right-skewed), AUROCs and
shares against their permutation standard errors (`quality.bounds`), copies by an exact binomial test against
the holdout's own. Pure: frames and column roles in, a `QualityReport` out; never imports `generators`.
"""

from __future__ import annotations

import hashlib
import math
import time as _time
from typing import Any

import numpy as np
import pandas as pd

from quality import bounds
from quality.checks import CheckResult, QualityReport, bounded_check, overlay_thresholds
from quality.columns import (ColumnSpec, category_strings, decile_codes, is_numeric_column, numeric_values,
                             require_frame, require_same_columns)
from quality.errors import InvalidInputError

DEFAULT_SEQUENCE_THRESHOLDS: dict[str, float | None] = {
    "step_marginal_accuracy": 0.9,   # min: 1 - mean TVD of the value columns over all steps (real deciles)
    "change_accuracy": 0.9,          # min: 1 - mean TVD of step-to-step changes (numerics), transitions
                                     #   (categoricals) and time steps
    "sequence_stat_accuracy": 0.85,  # min: 1 - mean TVD of per-sequence length, mean, std, first, last, lag-1 ac
    "context_accuracy": 0.9,         # min: 1 - mean TVD of each context column and each context x value pair
    "discriminator_auc": 0.8,        # max: classifier on per-sequence features; or 0.5 + z SE
    "forecast_error_ratio": 1.25,    # max: one-step MAE on the holdout, trained on synthetic / trained on real
    "copied_sequence_rate": None,    # max: None = the exact binomial bound against the holdout's own copies
    "copy_z": 3.0,                   # one-sided z of that binomial test
    "dcr_share": 0.55,               # max: synthetic sequences closer to training than to holdout; or 0.5 + z SE
    "mia_auroc": 0.6,                # max: distance tells training from holdout sequences; or 0.5 + z SE
    "sampling_z": 3.0,               # one-sided z of every size-aware bound; None = fixed bounds only
}
NULL_REPS = 40
SHAPE_POINTS = 16   # a sequence's values resampled at this many relative positions for distances
TOP_CATEGORIES = 10
FORECAST_LAGS = 3
ACF_LAGS = 20


def resolve_sequence_thresholds(thresholds: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with `thresholds`; unknown names raise so a config typo cannot silently loosen the gate."""
    return overlay_thresholds(DEFAULT_SEQUENCE_THRESHOLDS, thresholds, "sequence quality")


def segment_series(frame: pd.DataFrame, length: int, *, time: str, column: str = "segment") -> pd.DataFrame:
    """A single long series cut into consecutive segments of `length` steps (a last shorter one dropped), with an
    integer `column` naming the segment: the shape a sequence generator samples a long series in."""
    require_frame(frame, "series")
    if column in frame.columns:
        raise InvalidInputError(f"the series already has a column {column!r}; pick another segment column name")
    if length < 2:
        raise InvalidInputError("segments need at least two steps")
    ordered = frame.sort_values(time, kind="stable").reset_index(drop=True)
    n = (len(ordered) // length) * length
    if n == 0:
        raise InvalidInputError(f"the series has {len(ordered)} rows, fewer than one segment of {length}")
    out = ordered.iloc[:n].copy()
    out.insert(0, column, np.arange(n) // length)
    return out


# ---------------------------------------------------------------------- column roles and per-sequence views
class _Roles:
    """Value, numeric and context columns of the real frame."""

    def __init__(self, real: pd.DataFrame, time: str, entity: str, context: list[str] | None):
        for role, name in (("time", time), ("entity", entity)):
            if name not in real.columns:
                raise InvalidInputError(f"{role} column {name!r} is not in the real table; columns are "
                                        f"{list(real.columns)}")
        self.time, self.entity = time, entity
        if context is None:
            grouped = real.drop(columns=[time]).astype({c: object for c in real.columns if c not in (time, entity)})
            nunique = grouped.groupby(entity, sort=False).nunique(dropna=False)
            multi = real.groupby(entity, sort=False).size().max() >= 2
            context = [c for c in nunique.columns if multi and nunique[c].max() <= 1]
        missing = [c for c in context if c not in real.columns]
        if missing:
            raise InvalidInputError(f"context columns {missing} are not in the real table")
        self.context = list(context)
        self.values = [c for c in real.columns if c not in (time, entity, *self.context)]
        if not self.values:
            raise InvalidInputError("the sequences have no value columns besides the time, entity and context ones")
        self.numeric = [c for c in self.values if is_numeric_column(real[c])]
        self.categorical = [c for c in self.values if c not in self.numeric]


def _time_numbers(series: pd.Series) -> np.ndarray:
    if series.dtype == object:
        return numeric_values(pd.Series(pd.to_datetime(series)))
    return numeric_values(series)


class _View:
    """One frame sorted by entity and time, with its per-row sequence index and per-sequence statistics."""

    def __init__(self, frame: pd.DataFrame, roles: _Roles):
        t = _time_numbers(frame[roles.time])
        codes, uniques = pd.factorize(frame[roles.entity], sort=False)
        order = np.lexsort((t, codes))
        self.frame = frame.iloc[order].reset_index(drop=True)
        self.t = t[order]
        self.seq = codes[order].astype(np.int64)
        self.n = len(uniques)
        self.lengths = np.bincount(self.seq, minlength=self.n)
        self.first = np.r_[True, self.seq[1:] != self.seq[:-1]]
        self.numeric = {c: numeric_values(self.frame[c]) for c in roles.numeric}
        self.categorical = {c: category_strings(self.frame[c]) for c in roles.categorical}
        starts = np.flatnonzero(self.first)
        self.context = {c: category_strings(self.frame[c].iloc[starts]) if not is_numeric_column(frame[c])
                        else numeric_values(self.frame[c].iloc[starts]) for c in roles.context}
        self.context_rows = {c: category_strings(self.frame[c]) if not is_numeric_column(frame[c])
                             else numeric_values(self.frame[c]) for c in roles.context}
        self.stats = self._stats()

    def diffs(self, x: np.ndarray) -> np.ndarray:
        d = np.r_[np.nan, np.diff(x)]
        return d[~self.first]

    def _stats(self) -> dict[str, np.ndarray]:
        out = {"length": self.lengths.astype(np.float64)}
        for c, x in self.numeric.items():
            ok = ~np.isnan(x)
            cnt = np.bincount(self.seq, weights=ok, minlength=self.n)
            s1 = np.bincount(self.seq, weights=np.where(ok, x, 0), minlength=self.n)
            s2 = np.bincount(self.seq, weights=np.where(ok, x, 0) ** 2, minlength=self.n)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = s1 / cnt
                std = np.sqrt(np.maximum(s2 / cnt - mean ** 2, 0))
            out[f"{c}:mean"], out[f"{c}:std"] = mean, std
            frame = pd.DataFrame({"s": self.seq, "x": x})
            valid = frame.dropna()
            g = valid.groupby("s")["x"]
            out[f"{c}:first"] = g.first().reindex(range(self.n)).to_numpy()
            out[f"{c}:last"] = g.last().reindex(range(self.n)).to_numpy()
            out[f"{c}:ac1"] = _lag1_autocorrelation(self.seq, x, self.first, mean, std, self.n)
            out[f"{c}:missing"] = 1 - cnt / self.lengths
        return out


def _lag1_autocorrelation(seq: np.ndarray, x: np.ndarray, first: np.ndarray, mean: np.ndarray, std: np.ndarray,
                          n: int) -> np.ndarray:
    """Per sequence: mean of (x_t - m)(x_{t-1} - m) over consecutive observed pairs / variance (NaN if flat)."""
    centred = x - mean[seq]
    prod = centred[1:] * centred[:-1]
    ok = ~first[1:] & ~np.isnan(prod)
    num = np.bincount(seq[1:][ok], weights=prod[ok], minlength=n)
    cnt = np.bincount(seq[1:][ok], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        ac = (num / cnt) / std ** 2
    ac[(cnt == 0) | ~(std > 0)] = np.nan
    return np.clip(ac, -1, 1)


# ---------------------------------------------------------------------- TVD components with a permutation null
class _Components:
    """Histogram comparisons of pooled real + synthetic codes, each owned by a sequence, for one score.

    A component is (codes, number of codes, owning sequence of each code). The score is 1 - mean TVD between the
    real and synthetic sequences' codes; the null relabels whole sequences between the two groups.
    """

    def __init__(self, n_real: int, n_synth: int):
        self.n_real, self.n_synth = n_real, n_synth
        self.items: list[tuple[str, np.ndarray, int, np.ndarray]] = []

    def add(self, name: str, codes: np.ndarray, k: int, owner: np.ndarray) -> None:
        self.items.append((name, codes.astype(np.int64), int(k), owner.astype(np.int64)))

    def _tvds(self, in_real: np.ndarray) -> np.ndarray:
        out = np.empty(len(self.items))
        for i, (_, codes, k, owner) in enumerate(self.items):
            w = in_real[owner]
            total = np.bincount(codes, minlength=k)
            real = np.bincount(codes, weights=w, minlength=k)
            synth = total - real
            out[i] = 0.5 * np.abs(real / max(real.sum(), 1) - synth / max(synth.sum(), 1)).sum()
        return out

    def observed(self) -> dict[str, float]:
        in_real = np.r_[np.ones(self.n_real), np.zeros(self.n_synth)]
        return {name: float(t) for (name, *_), t in zip(self.items, self._tvds(in_real))}

    def null(self, reps: int, rng: np.random.Generator) -> np.ndarray:
        total = self.n_real + self.n_synth
        out = np.empty(reps)
        for r in range(reps):
            in_real = np.zeros(total)
            in_real[rng.choice(total, self.n_real, replace=False)] = 1.0
            out[r] = 1.0 - float(np.mean(self._tvds(in_real)))
        return out


def _numeric_codes(real: np.ndarray, synth: np.ndarray) -> tuple[np.ndarray, int]:
    (r, s), k = decile_codes(real, [synth])
    return np.r_[r, s], k


def _category_codes(real: np.ndarray, synth: np.ndarray) -> tuple[np.ndarray, int]:
    codes, uniques = pd.factorize(np.r_[real, synth])
    return codes, max(len(uniques), 1)


# ---------------------------------------------------------------------- per-sequence features and distances
def _sequence_features(view: _View, roles: _Roles, top: dict[str, list[str]]) -> pd.DataFrame:
    feats: dict[str, Any] = {}
    for name, v in view.stats.items():
        feats[name] = v
    for c, x in view.numeric.items():
        frame = pd.DataFrame({"s": view.seq, "x": x})
        g = frame.groupby("s")["x"]
        feats[f"{c}:min"] = g.min().reindex(range(view.n)).to_numpy()
        feats[f"{c}:max"] = g.max().reindex(range(view.n)).to_numpy()
        d = np.abs(np.r_[np.nan, np.diff(x)])
        d[view.first] = np.nan
        feats[f"{c}:abs_change"] = pd.Series(d).groupby(view.seq).mean().reindex(range(view.n)).to_numpy()
    for c, labels in view.categorical.items():
        for cat in top[c]:
            feats[f"{c}={cat}"] = np.bincount(view.seq, weights=labels == cat, minlength=view.n) / view.lengths
    dt = np.r_[np.nan, np.diff(view.t)]
    dt[view.first] = np.nan
    feats["time_step"] = pd.Series(dt).groupby(view.seq).mean().reindex(range(view.n)).to_numpy()
    out = pd.DataFrame(feats)
    for c, values in view.context.items():
        out[f"context:{c}"] = values
    return out


def _embed(view: _View, roles: _Roles, scale: dict[str, tuple[float, float]], top: dict[str, list[str]],
           context_levels: dict[str, list]) -> np.ndarray:
    """Fixed-length vectors whose Euclidean distance compares whole sequences (shape, categories, context, length).

    Each numeric column is resampled at SHAPE_POINTS relative positions (gaps interpolated) and scaled by the real
    robust range; categoricals give their category shares, the context one-hot, the length its log. Each column
    weighs the same (divided by the square root of its width).
    """
    parts = []
    pos = np.arange(len(view.seq)) - np.repeat(np.flatnonzero(view.first), view.lengths)
    rel = pos / np.maximum(view.lengths[view.seq] - 1, 1)
    grid = np.linspace(0, 1, SHAPE_POINTS)
    bounds_idx = np.r_[np.flatnonzero(view.first), len(view.seq)]
    for c, x in view.numeric.items():
        centre, width = scale[c]
        mat = np.zeros((view.n, SHAPE_POINTS))
        for i in range(view.n):
            a, b = bounds_idx[i], bounds_idx[i + 1]
            xs, rs = x[a:b], rel[a:b]
            ok = ~np.isnan(xs)
            mat[i] = np.interp(grid, rs[ok], xs[ok]) if ok.any() else centre
        parts.append((mat - centre) / width / math.sqrt(SHAPE_POINTS))
    for c, labels in view.categorical.items():
        shares = np.stack([np.bincount(view.seq, weights=labels == cat, minlength=view.n) / view.lengths
                           for cat in top[c]], axis=1) if top[c] else np.zeros((view.n, 0))
        parts.append(shares / math.sqrt(2))
    for c, levels in context_levels.items():
        values = view.context[c]
        if isinstance(levels, tuple):  # numeric context: robust-scaled
            centre, width = levels
            parts.append(((np.nan_to_num(values.astype(float), nan=centre) - centre) / width)[:, None])
        else:
            onehot = np.stack([values == lv for lv in levels], axis=1).astype(float) if levels else \
                np.zeros((view.n, 0))
            parts.append(onehot / math.sqrt(2))
    parts.append(np.log(view.lengths)[:, None] / max(scale["__length__"][1], 1e-9))
    return np.hstack(parts) / math.sqrt(len(roles.numeric) + len(roles.categorical) + len(roles.context) + 1)


def _robust(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if not len(x):
        return 0.0, 1.0
    lo, hi = np.quantile(x, [0.01, 0.99])
    width = hi - lo if hi > lo else (x.max() - x.min() or 1.0)
    return float(np.median(x)), float(width)


def _sequence_hashes(view: _View, roles: _Roles) -> np.ndarray:
    """One digest per sequence over its values and context in step order (ids and times left out)."""
    cols = {c: view.numeric[c] for c in roles.numeric}
    cols.update({c: view.categorical[c] for c in roles.categorical})
    cols.update({f"context:{c}": view.context_rows[c] for c in roles.context})
    rows = pd.util.hash_pandas_object(pd.DataFrame(cols), index=False).to_numpy()
    bounds_idx = np.r_[np.flatnonzero(view.first), len(view.seq)]
    return np.array([hashlib.blake2b(rows[bounds_idx[i]:bounds_idx[i + 1]].tobytes(), digest_size=16).hexdigest()
                     for i in range(view.n)], dtype=object)


# ---------------------------------------------------------------------- discriminator
def _discriminator_auc(real: pd.DataFrame, synth: pd.DataFrame, spec: ColumnSpec, *, seed: int,
                       max_rows: int = 5_000) -> float:
    """Cross-validated AUROC of gradient boosting telling real from synthetic sequences by their features.

    The table gate's classifier, with leaves sized to the data: a panel has tens of sequences where a table has
    thousands of rows, and leaves of 20 would leave a classifier on 50 sequences unable to split at all.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from quality.fidelity import BOOSTING, _model_frame, _threads

    rng = np.random.default_rng(seed)
    n = min(len(real), len(synth), max_rows)
    r = real.iloc[rng.choice(len(real), n, replace=False)].reset_index(drop=True)
    s = synth.iloc[rng.choice(len(synth), n, replace=False)].reset_index(drop=True)
    xr, xs = _model_frame([r, s], spec, spec.features)
    x = pd.concat([xr, xs], ignore_index=True)
    for c in [c for c in x.columns if c in spec.numeric]:
        # a feature seen in a few sequences only (lag-1 autocorrelation of a column never observed twice in a
        # row) can leave a cross-validation fold without any value, which the boosting's binning cannot take: its
        # gaps become a value below all others, which splits the same way
        seen = x[c].notna()
        if not seen.all() and seen.sum() < 6:
            x[c] = x[c].fillna(x[c].min() - 1 if seen.any() else 0.0)
    y = np.r_[np.ones(n), np.zeros(n)]
    leaf = int(np.clip(n // 10, 3, 20))
    model = HistGradientBoostingClassifier(**BOOSTING, min_samples_leaf=leaf, categorical_features="from_dtype",
                                           early_stopping=False, random_state=seed)
    with _threads(1):
        proba = cross_val_predict(model, x, y, cv=StratifiedKFold(3, shuffle=True, random_state=seed),
                                  method="predict_proba")[:, 1]
    return float(roc_auc_score(y, proba))


# ---------------------------------------------------------------------- forecasting utility
def _lag_design(view: _View, roles: _Roles, target: str, centres: dict[str, tuple[float, float]]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, target values, owning sequence) of every step with FORECAST_LAGS earlier steps."""
    pos = np.arange(len(view.seq)) - np.repeat(np.flatnonzero(view.first), view.lengths)
    keep = pos >= FORECAST_LAGS
    feats = []
    for c in roles.numeric:
        centre, width = centres[c]
        x = (view.numeric[c] - centre) / width
        for lag in range(1, FORECAST_LAGS + 1):
            lagged = np.r_[np.full(lag, np.nan), x[:-lag]]
            feats.append(np.nan_to_num(lagged, nan=0.0))
            feats.append(np.isnan(lagged).astype(float))
    y = view.numeric[target]
    ok = keep & ~np.isnan(y)
    x = np.stack(feats, axis=1)[ok]
    return x, y[ok], view.seq[ok]


def _forecast(train: _View, synth: _View, hold: _View, roles: _Roles, centres, rng: np.random.Generator
              ) -> dict[str, Any] | None:
    from sklearn.linear_model import Ridge

    per, boot_tstr, boot_trtr = {}, [], []
    for c in roles.numeric:
        xr, yr, _ = _lag_design(train, roles, c, centres)
        xs, ys, _ = _lag_design(synth, roles, c, centres)
        xh, yh, sh = _lag_design(hold, roles, c, centres)
        if len(yr) < 10 or len(ys) < 10 or len(yh) < 10:
            continue
        trtr = np.abs(Ridge(alpha=1.0).fit(xr, yr).predict(xh) - yh)
        tstr = np.abs(Ridge(alpha=1.0).fit(xs, ys).predict(xh) - yh)
        per[c] = {"mae_trtr": float(trtr.mean()), "mae_tstr": float(tstr.mean())}
        boot_trtr.append(np.bincount(sh, weights=trtr, minlength=hold.n))
        boot_tstr.append(np.bincount(sh, weights=tstr, minlength=hold.n))
        per[c]["counts"] = np.bincount(sh, minlength=hold.n)
    if not per:
        return None
    names = list(per)

    def ratio(weights: np.ndarray) -> float:
        vals = []
        for i, c in enumerate(names):
            cnt = (per[c]["counts"] * weights).sum()
            a, b = (boot_tstr[i] * weights).sum() / cnt, (boot_trtr[i] * weights).sum() / cnt
            vals.append(a / b if b > 0 else (1.0 if a == 0 else np.inf))
        return float(np.mean(vals))

    value = ratio(np.ones(hold.n))
    reps = [ratio(np.bincount(rng.integers(0, hold.n, hold.n), minlength=hold.n)) for _ in range(100)]
    for c in names:
        del per[c]["counts"]
    return {"ratio": value, "se": float(np.std(reps, ddof=1)), "columns": per}


# ---------------------------------------------------------------------- the gate
def _loosen(fixed: float | None, null: float, z: float | None, se: float, direction: str):
    if fixed is None or z is None or not np.isfinite(se):
        return fixed, None
    sampled = null + z * se if direction == "max" else null - z * se
    return (max(fixed, sampled) if direction == "max" else min(fixed, sampled)), sampled


def evaluate_sequences(real: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame | None = None, *,
                       time: str, entity: str, context: list[str] | None = None,
                       thresholds: dict[str, Any] | None = None, seed: int = 0) -> QualityReport:
    """Every fidelity and privacy check of `synthetic` sequences against `real` (the training sequences) and
    `holdout` (sequences of other entities kept out of training).

    Frames are long (one row per entity and step) with the same columns; `context` (constant per entity) is
    inferred from `real` when None. A single long series must first be cut with `segment_series`. Without a
    holdout, forecasting, DCR share and membership inference are not run and copies are compared with the share
    of real sequences equal to another.
    """
    require_frame(real, "real")
    require_frame(synthetic, "synthetic")
    require_same_columns(real, synthetic, "synthetic")
    if holdout is not None:
        require_frame(holdout, "holdout")
        require_same_columns(real, holdout, "holdout")
    if entity is None:
        raise InvalidInputError("the gate compares sequences: name the entity column (cut a single long series "
                                "into segments with quality.sequence.segment_series first)")
    limits = resolve_sequence_thresholds(thresholds)
    z = limits["sampling_z"]
    rng = np.random.default_rng(seed)
    roles = _Roles(real, time, entity, context)
    timings: dict[str, float] = {}
    t0 = _time.perf_counter()
    r, s = _View(real, roles), _View(synthetic[list(real.columns)], roles)
    h = _View(holdout[list(real.columns)], roles) if holdout is not None else None
    if r.lengths.max() < 2:
        raise InvalidInputError("every real sequence has a single step: there are no sequences to compare")
    metrics: dict[str, Any] = {"n_real_sequences": r.n, "n_synthetic_sequences": s.n,
                               "n_holdout_sequences": None if h is None else h.n,
                               "n_real_rows": len(real), "n_synthetic_rows": len(synthetic),
                               "roles": {"time": time, "entity": entity, "context": roles.context,
                                         "numeric": roles.numeric, "categorical": roles.categorical}}
    checks: list[CheckResult] = []
    row_owner = np.r_[r.seq, s.seq + r.n]
    seq_owner = np.arange(r.n + s.n)

    # per-step marginals, changes, per-sequence statistics, context
    groups = {name: _Components(r.n, s.n) for name in ("step_marginal_accuracy", "change_accuracy",
                                                       "sequence_stat_accuracy", "context_accuracy")}
    for c in roles.numeric:
        groups["step_marginal_accuracy"].add(c, *_numeric_codes(r.numeric[c], s.numeric[c]), row_owner)
        codes, k = _numeric_codes(r.diffs(r.numeric[c]), s.diffs(s.numeric[c]))
        groups["change_accuracy"].add(f"{c} change", codes, k, np.r_[r.seq[~r.first], s.seq[~s.first] + r.n])
    for c in roles.categorical:
        groups["step_marginal_accuracy"].add(c, *_category_codes(r.categorical[c], s.categorical[c]), row_owner)

        def transitions(v: _View) -> np.ndarray:
            lab = v.categorical[c]
            return np.char.add(np.char.add(lab[:-1].astype(str), " -> "), lab[1:].astype(str))[~v.first[1:]]

        codes, k = _category_codes(transitions(r), transitions(s))
        groups["change_accuracy"].add(f"{c} transition", codes, k, np.r_[r.seq[~r.first], s.seq[~s.first] + r.n])
    codes, k = _category_codes(np.asarray(r.diffs(r.t), dtype=str), np.asarray(s.diffs(s.t), dtype=str)) \
        if len(np.unique(r.diffs(r.t))) <= 30 else _numeric_codes(r.diffs(r.t), s.diffs(s.t))
    groups["change_accuracy"].add("time step", codes, k, np.r_[r.seq[~r.first], s.seq[~s.first] + r.n])
    for name in r.stats:
        if name.endswith(":missing"):
            continue
        groups["sequence_stat_accuracy"].add(name, *_numeric_codes(r.stats[name], s.stats[name]), seq_owner)
    for c in roles.context:
        numeric = is_numeric_column(real[c])
        coder = _numeric_codes if numeric else _category_codes
        groups["context_accuracy"].add(c, *coder(r.context[c], s.context[c]), seq_owner)
        ctx_codes, kc = coder(r.context_rows[c], s.context_rows[c])
        for v in roles.values:
            vcodes, kv = (_numeric_codes(r.numeric[v], s.numeric[v]) if v in roles.numeric
                          else _category_codes(r.categorical[v], s.categorical[v]))
            groups["context_accuracy"].add(f"{c} x {v}", ctx_codes * kv + vcodes, kc * kv, row_owner)
    explain = {"step_marginal_accuracy": "values at a step", "change_accuracy": "step-to-step changes",
               "sequence_stat_accuracy": "per-sequence statistics", "context_accuracy": "context and context x value"}
    for name, comp in groups.items():
        if not comp.items:
            checks.append(bounded_check(name, None, None, direction="min", kind="fidelity",
                                        explanation=f"no {explain[name]} to compare (no context columns)"))
            continue
        tvds = comp.observed()
        score = 1.0 - float(np.mean(list(tvds.values())))
        null = comp.null(NULL_REPS, rng)
        # a mean TVD is a sum of folded deviations: right-skewed, so its tail is taken on the log scale
        log_tvd = np.log(np.maximum(1.0 - null, 1e-9))
        limit, sampled = limits[name], None
        if limit is not None and z is not None:
            sampled = 1.0 - float(np.exp(log_tvd.mean() + z * log_tvd.std(ddof=1)))
            limit = min(limit, sampled)
        worst = max(tvds, key=tvds.get)
        metrics[name] = {"score": score, "tvd": tvds, "null_mean": float(np.mean(null)),
                         "null_sd": float(np.std(null, ddof=1))}
        checks.append(bounded_check(
            name, score, limit, direction="min", kind="fidelity",
            explanation=(f"1 - mean TVD of {explain[name]} = {score:.3f}; least faithful: {worst!r} (TVD "
                         f"{tvds[worst]:.3f}); two real samples of these sizes reach {np.mean(null):.3f}"),
            details={"sampling_bound": sampled, "worst": worst}))
    timings["fidelity"] = _time.perf_counter() - t0

    # discriminator on per-sequence features
    t0 = _time.perf_counter()
    top = {c: list(pd.Series(r.categorical[c]).value_counts().index[:TOP_CATEGORIES]) for c in roles.categorical}
    fr, fs = _sequence_features(r, roles, top), _sequence_features(s, roles, top)
    numeric_feats = tuple(c for c in fr.columns if not (c.startswith("context:") and fr[c].dtype == object))
    cat_feats = tuple(c for c in fr.columns if c not in numeric_feats)
    spec = ColumnSpec(numeric_feats, cat_feats, (), tuple(fr.columns))
    n_disc = min(r.n, s.n)
    if n_disc >= 4:
        auc = _discriminator_auc(fr, fs, spec, seed=seed)
        disc_limit, disc_sampled = _loosen(limits["discriminator_auc"], 0.5, z,
                                           bounds.mann_whitney_se(min(n_disc, 5000), min(n_disc, 5000)), "max")
        checks.append(bounded_check(
            "discriminator_auc", auc, disc_limit, direction="max", kind="fidelity",
            explanation=(f"a cross-validated classifier on {fr.shape[1]} per-sequence features tells synthetic "
                         f"from real sequences with AUROC {auc:.3f} (0.5 = cannot)"),
            details={"n_per_class": n_disc, "sampling_bound": disc_sampled}))
        metrics["discriminator_auc"] = auc
    else:
        checks.append(bounded_check("discriminator_auc", None, None, direction="max", kind="fidelity",
                                    explanation=f"{n_disc} sequences per side: too few to train a classifier"))
    timings["discriminator"] = _time.perf_counter() - t0

    # forecasting utility
    t0 = _time.perf_counter()
    centres = {c: _robust(r.numeric[c]) for c in roles.numeric}
    if h is not None and roles.numeric:
        fc = _forecast(r, s, h, roles, centres, rng)
    else:
        fc = None
    if fc is None:
        why = ("no holdout given" if h is None else "no numeric value column" if not roles.numeric
               else f"too few steps beyond {FORECAST_LAGS} lags")
        checks.append(bounded_check("forecast_error_ratio", None, None, direction="max", kind="utility",
                                    explanation=f"one-step forecasting not run: {why}"))
    else:
        metrics["forecast"] = fc
        fc_limit, fc_sampled = _loosen(limits["forecast_error_ratio"], 1.0, z, fc["se"], "max")
        checks.append(bounded_check(
            "forecast_error_ratio", fc["ratio"], fc_limit, direction="max", kind="utility",
            explanation=(f"one-step forecasts ({FORECAST_LAGS} lags, ridge) of the holdout err {fc['ratio']:.3f} "
                         f"times as much when trained on synthetic as on real sequences"),
            details={"se": fc["se"], "sampling_bound": fc_sampled}))
    timings["forecast"] = _time.perf_counter() - t0

    # privacy
    t0 = _time.perf_counter()
    hash_r, hash_s = _sequence_hashes(r, roles), _sequence_hashes(s, roles)
    copied = float(np.isin(hash_s, hash_r).mean())
    if h is not None:
        hash_h = _sequence_hashes(h, roles)
        hold_copies = int(np.isin(hash_h, hash_r).sum())
        ref_n, basis = h.n, f"{hold_copies} of {h.n} holdout sequences equal a training sequence"
    else:
        hold_copies = int(pd.Series(hash_r).duplicated(keep=False).sum())
        ref_n, basis = r.n, f"{hold_copies} of {r.n} real sequences equal another real one (no holdout)"
    copy_limit = limits["copied_sequence_rate"]
    if copy_limit is None:
        copy_limit = bounds.max_count_same_rate(hold_copies, ref_n, s.n,
                                                bounds.alpha_from_z(limits["copy_z"] or 3.0)) / s.n
    checks.append(bounded_check(
        "copied_sequence_rate", copied, copy_limit, direction="max", kind="privacy",
        explanation=f"{copied:.2%} of synthetic sequences repeat a training sequence's values; {basis}",
        details={"reference_copies": hold_copies},
        reach=1.0 if limits["copied_sequence_rate"] is None else None,  # a user's fixed bound is their choice
        enlarge="the holdout (more holdout sequences)"))
    metrics["copied_sequence_rate"] = copied
    arrays: dict[str, np.ndarray] = {}
    if h is not None:
        scale = {**centres, "__length__": (0.0, float(np.log(max(r.lengths.max(), 2))))}
        levels = {c: (_robust(r.context[c]) if is_numeric_column(real[c])
                      else list(pd.unique(r.context[c]))[:50]) for c in roles.context}
        n = min(r.n, h.n)
        tr_idx = rng.choice(r.n, n, replace=False)
        ho_idx = rng.choice(h.n, n, replace=False)
        e_tr = _embed(r, roles, scale, top, levels)[tr_idx]
        e_ho = _embed(h, roles, scale, top, levels)[ho_idx]
        e_sy = _embed(s, roles, scale, top, levels)
        from quality.privacy import _auroc, chunked_nearest

        to_tr, tr_near, tr_to_sy = chunked_nearest(e_sy, e_tr, k=1)
        to_ho, ho_near, ho_to_sy = chunked_nearest(e_sy, e_ho, k=1)
        d_tr, d_ho = to_tr[:, 0], to_ho[:, 0]
        tol = 1e-9
        tied = np.abs(d_tr - d_ho) <= tol
        share = float((d_tr < d_ho - tol).mean() + 0.5 * tied.mean())
        nearest = np.where(d_tr < d_ho, tr_near[:, 0], n + ho_near[:, 0])
        se = bounds.cluster_share_se(nearest, weight=(~tied).astype(float))
        dcr_limit, dcr_sampled = _loosen(limits["dcr_share"], 0.5, z, se, "max")
        checks.append(bounded_check(
            "dcr_share", share, dcr_limit, direction="max", kind="privacy",
            explanation=(f"{share:.1%} of synthetic sequences are closer to a training sequence than to a holdout "
                         f"one (equal samples of {n}; 50% = no memorisation, sd {se:.3f} by chance)"),
            details={"se": se, "sampling_bound": dcr_sampled}, reach=1.0,
            enlarge="the holdout (more holdout sequences, or shorter segments of a long series)"))
        mia = _auroc(-tr_to_sy, -ho_to_sy)
        mia_se = bounds.mann_whitney_se(n, n, np.r_[tr_to_sy, ho_to_sy])
        mia_limit, mia_sampled = _loosen(limits["mia_auroc"], 0.5, z, mia_se, "max")
        checks.append(bounded_check(
            "mia_auroc", mia, mia_limit, direction="max", kind="privacy",
            explanation=(f"an attacker ranking sequences by distance to the synthetic ones tells training from "
                         f"holdout sequences with AUROC {mia:.3f} (0.5 = no leak)"),
            details={"se": mia_se, "sampling_bound": mia_sampled}, reach=1.0,
            enlarge="the holdout (more holdout sequences, or shorter segments of a long series)"))
        metrics["privacy"] = {"dcr_share": share, "dcr_share_se": se, "mia_auroc": mia, "mia_auroc_se": mia_se,
                              "n_pair_sample": n}
        arrays.update(dcr_synthetic_to_train=d_tr, dcr_synthetic_to_holdout=d_ho)
    else:
        for name in ("dcr_share", "mia_auroc"):
            checks.append(bounded_check(name, None, None, direction="max", kind="privacy",
                                        explanation="not run: needs a holdout of real sequences"))
    timings["privacy"] = _time.perf_counter() - t0
    timings["total"] = sum(timings.values())
    return QualityReport(checks=checks, metrics=metrics, arrays=arrays, timings=timings)


# ---------------------------------------------------------------------- the HTML report
def _acf(view: _View, column: str, max_lag: int) -> np.ndarray:
    """Mean over sequences of the sample autocorrelation at lags 1..max_lag (the standard estimator: lagged
    products summed within a sequence over its total squared deviation, so within [-1, 1])."""
    x = view.numeric[column]
    centred = x - view.stats[f"{column}:mean"][view.seq]
    observed = ~np.isnan(centred)
    den = np.bincount(view.seq[observed], weights=centred[observed] ** 2, minlength=view.n)
    out = np.full(max_lag, np.nan)
    for lag in range(1, max_lag + 1):
        if lag >= len(centred):
            break
        prod = centred[lag:] * centred[:-lag]
        ok = (view.seq[lag:] == view.seq[:-lag]) & ~np.isnan(prod)
        num = np.bincount(view.seq[lag:][ok], weights=prod[ok], minlength=view.n)
        use = (den > 0) & (view.lengths > lag)
        if use.any():
            out[lag - 1] = float(np.mean(num[use] / den[use]))
    return out


def render_sequence_report(report: QualityReport, real: pd.DataFrame, synthetic: pd.DataFrame, *, time: str,
                           entity: str, title: str = "Synthetic sequence quality report",
                           path: Any = None) -> str:
    """The report as one HTML string (and written to `path` when given): checks, real and synthetic sequences
    side by side, autocorrelations and per-sequence statistic histograms."""
    import html
    from pathlib import Path

    from quality.report import _CSS, _check_table, _figure_png, _fmt, _img, _subplots

    ctx = report.metrics.get("roles", {}).get("context")
    roles = _Roles(real, time, entity, ctx)
    r, s = _View(real, roles), _View(synthetic[list(real.columns)], roles)
    verdict = "pass" if report.passed else "fail"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             f'<p class="verdict {verdict}">{verdict.upper()}</p>',
             f"<p>real sequences: {r.n}, synthetic sequences: {s.n}, holdout sequences: "
             f"{_fmt(report.metrics.get('n_holdout_sequences'))}. Failing checks: "
             f"{html.escape(', '.join(report.failing) or 'none')}.</p>", "<h2>Checks</h2>", _check_table(report)]
    rng = np.random.default_rng(0)
    parts.append("<h2>Sequences, real (left) and synthetic (right)</h2><div class='grid'>")
    for c in roles.numeric[:8]:
        fig, axes = _subplots(1, 2, figsize=(9, 2.8))
        for ax, view, label, color in ((axes[0], r, "real", "#1f77b4"), (axes[1], s, "synthetic", "#ff7f0e")):
            starts = np.r_[np.flatnonzero(view.first), len(view.seq)]
            for i in rng.choice(view.n, min(view.n, 6), replace=False):
                y = view.numeric[c][starts[i]:starts[i + 1]]
                ax.plot(np.arange(len(y)), y, lw=0.9, color=color, alpha=0.8)
            ax.set_title(f"{c}: {label}", fontsize=10)
            ax.set_xlabel("step", fontsize=8)
        lo = np.nanmin([np.nanquantile(r.numeric[c], 0.001), np.nanquantile(s.numeric[c], 0.001)])
        hi = np.nanmax([np.nanquantile(r.numeric[c], 0.999), np.nanquantile(s.numeric[c], 0.999)])
        if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
            for ax in axes:
                ax.set_ylim(lo, hi)
        fig.subplots_adjust(left=0.07, right=0.98, top=0.88, bottom=0.18, wspace=0.2)
        parts.append(_img(_figure_png(fig), f"{c} sequences"))
    parts.append("</div>")
    if roles.numeric:
        parts.append("<h2>Autocorrelation (mean over sequences)</h2><div class='grid'>")
        max_lag = int(min(ACF_LAGS, max(r.lengths.max() - 1, 1)))
        for c in roles.numeric[:8]:
            fig, ax = _subplots(figsize=(4.2, 2.8))
            lags = np.arange(1, max_lag + 1)
            ax.plot(lags, _acf(r, c, max_lag), marker="o", ms=3, label="real", color="#1f77b4")
            ax.plot(lags, _acf(s, c, max_lag), marker="o", ms=3, label="synthetic", color="#ff7f0e")
            ax.axhline(0, color="#999", lw=0.8)
            ax.set_title(c, fontsize=10)
            ax.set_xlabel("lag", fontsize=8)
            ax.legend(fontsize=7)
            fig.subplots_adjust(left=0.14, right=0.97, top=0.88, bottom=0.16)
            parts.append(_img(_figure_png(fig), f"{c} autocorrelation"))
        parts.append("</div>")
    parts.append("<h2>Per-sequence statistics</h2><div class='grid'>")
    for name in [n for n in r.stats if not n.endswith(":missing")][:24]:
        a, b = r.stats[name], s.stats[name]
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if not len(a) or not len(b):
            continue
        fig, ax = _subplots(figsize=(3.6, 2.5))
        lo, hi = np.quantile(np.r_[a, b], [0.005, 0.995])
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 25)
        for values, label, color in ((a, "real", "#1f77b4"), (b, "synthetic", "#ff7f0e")):
            counts, _ = np.histogram(np.clip(values, bins[0], bins[-1]), bins=bins, density=True)
            ax.stairs(counts, bins, fill=True, alpha=0.55, label=label, color=color)
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
        fig.subplots_adjust(left=0.14, right=0.97, top=0.88, bottom=0.14)
        parts.append(_img(_figure_png(fig), name))
    parts.append("</div>")
    if report.timings:
        parts.append("<p>timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in report.timings.items()) + "</p>")
    parts.append("</body></html>")
    document = "\n".join(parts)
    if path is not None:
        Path(path).write_text(document, encoding="utf-8")
    return document

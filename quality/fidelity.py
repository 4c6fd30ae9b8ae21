"""Fidelity of a synthetic table to the real one: marginals, pairs, a discriminator and downstream utility."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from quality.columns import ColumnSpec, category_codes, decile_codes, numeric_values
from quality.errors import TargetError

MAX_DISCRIMINATOR_CATEGORIES = 250  # HistGradientBoosting's categorical limit is max_bins (255)
BOOSTING = {"max_iter": 60, "max_leaf_nodes": 15, "learning_rate": 0.15}


def _threads(n_threads: int | None):
    """Cap OpenMP threads: on a shared, oversubscribed machine spinning OpenMP workers cost more than they give."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n_threads, user_api="openmp")


def tvd(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """Total-variation distance between two histograms on the same bins (0 = same, 1 = disjoint)."""
    p = p_counts / max(p_counts.sum(), 1)
    q = q_counts / max(q_counts.sum(), 1)
    return float(0.5 * np.abs(p - q).sum())


def encode_binned(real: pd.DataFrame, synthetic: pd.DataFrame, spec: ColumnSpec) -> dict[str, tuple]:
    """Per feature column: (real codes, synthetic codes, number of codes); numerics in real deciles."""
    encoded = {}
    for column in spec.features:
        if column in spec.numeric:
            (r, s), k = decile_codes(numeric_values(real[column]), [numeric_values(synthetic[column])])
        else:
            (r, s), cats = category_codes([real[column], synthetic[column]])
            k = len(cats)
        encoded[column] = (r, s, k)
    return encoded


def column_metrics(real: pd.DataFrame, synthetic: pd.DataFrame, spec: ColumnSpec,
                   encoded: dict[str, tuple]) -> list[dict[str, Any]]:
    """Per column: KS (numerics) or TVD (categoricals), binned TVD, and missing rates."""
    rows = []
    for column in spec.features:
        r_codes, s_codes, k = encoded[column]
        row: dict[str, Any] = {"column": column, "kind": spec.kind(column)}
        if column in spec.numeric:
            r = numeric_values(real[column])
            s = numeric_values(synthetic[column])
            r, s = r[~np.isnan(r)], s[~np.isnan(s)]
            row["ks"] = float(ks_2samp(r, s).statistic) if len(r) and len(s) else float(len(r) != len(s))
            row["statistic"], row["value"] = "ks", row["ks"]
        row["tvd"] = tvd(np.bincount(r_codes, minlength=k), np.bincount(s_codes, minlength=k))
        if column in spec.categorical:
            row["statistic"], row["value"] = "tvd", row["tvd"]
        row["missing_real"] = float(real[column].isna().mean())
        row["missing_synthetic"] = float(synthetic[column].isna().mean())
        row["missing_diff"] = abs(row["missing_real"] - row["missing_synthetic"])
        rows.append(row)
    return rows


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def pair_metrics(real: pd.DataFrame, synthetic: pd.DataFrame, spec: ColumnSpec,
                 encoded: dict[str, tuple]) -> list[dict[str, Any]]:
    """Per column pair: contingency TVD on binned codes; Pearson correlation difference for numeric pairs."""
    numeric_real = {c: numeric_values(real[c]) for c in spec.numeric}
    numeric_synth = {c: numeric_values(synthetic[c]) for c in spec.numeric}
    rows = []
    for a, b in combinations(spec.features, 2):
        ra, sa, ka = encoded[a]
        rb, sb, kb = encoded[b]
        row: dict[str, Any] = {"columns": [a, b],
                               "tvd": tvd(np.bincount(ra * kb + rb, minlength=ka * kb),
                                          np.bincount(sa * kb + sb, minlength=ka * kb))}
        if a in numeric_real and b in numeric_real:
            cr = _pearson(numeric_real[a], numeric_real[b])
            cs = _pearson(numeric_synth[a], numeric_synth[b])
            row.update(corr_real=cr, corr_synthetic=cs, corr_diff=abs(cr - cs) if not np.isnan(cr + cs) else None)
        rows.append(row)
    return rows


def accuracy(columns: list[dict], pairs: list[dict]) -> dict[str, float]:
    """1 - mean TVD: univariate, bivariate, and their mean (the overall `accuracy`)."""
    uni = 1.0 - float(np.mean([c["tvd"] for c in columns])) if columns else float("nan")
    bi = 1.0 - float(np.mean([p["tvd"] for p in pairs])) if pairs else uni
    return {"univariate": uni, "bivariate": bi, "accuracy": float(np.mean([uni, bi]))}


def accuracy_null(encoded: dict[str, tuple], *, reps: int = 30, seed: int = 0) -> np.ndarray:
    """`accuracy` of `reps` random relabellings of the pooled real + synthetic rows into groups of the same sizes.

    The accuracy two samples of one distribution reach at these sizes: with few rows per bin (many sparse
    column pairs, small tables) even two halves of one real table differ by a TVD well above 0.
    """
    rng = np.random.default_rng(seed)
    columns = list(encoded)
    pooled = {c: np.concatenate([encoded[c][0], encoded[c][1]]) for c in columns}
    sizes = {c: encoded[c][2] for c in columns}
    n_real = len(encoded[columns[0]][0])
    n_total = len(pooled[columns[0]])
    n_synth = n_total - n_real
    pairs = list(combinations(columns, 2))

    def combos():
        # pair codes are rebuilt on the fly: caching them all would cost pairs x rows x 8 bytes
        for c in columns:
            yield pooled[c], sizes[c]
        for a, b in pairs:
            yield pooled[a] * sizes[b] + pooled[b], sizes[a] * sizes[b]

    totals = [np.bincount(codes, minlength=k) for codes, k in combos()]
    out = np.empty(reps)
    for rep in range(reps):
        in_real = np.zeros(n_total)
        in_real[rng.choice(n_total, n_real, replace=False)] = 1.0
        tvds = np.empty(len(totals))
        for i, ((codes, k), total) in enumerate(zip(combos(), totals)):
            real_counts = np.bincount(codes, weights=in_real, minlength=k)
            tvds[i] = 0.5 * np.abs(real_counts / n_real - (total - real_counts) / n_synth).sum()
        uni = 1.0 - float(np.mean(tvds[:len(columns)]))
        bi = 1.0 - float(np.mean(tvds[len(columns):])) if pairs else uni
        out[rep] = 0.5 * (uni + bi)
    return out


def _model_frame(frames: list[pd.DataFrame], spec: ColumnSpec, columns: list[str]) -> list[pd.DataFrame]:
    """Model-ready copies: numerics as float, categoricals as shared pandas categories (rare ones pooled)."""
    outs = [pd.DataFrame(index=range(len(f))) for f in frames]
    for column in columns:
        if column in spec.numeric:
            values = [numeric_values(frame[column]) for frame in frames]
            if all(np.isnan(v).all() for v in values):
                continue  # an all-null column carries no signal, and the binner cannot bin it
            for out, v in zip(outs, values):
                out[column] = v
            continue
        codes, cats = category_codes([f[column] for f in frames])
        counts = np.bincount(codes[0], minlength=len(cats))
        keep = np.argsort(-counts, kind="stable")[:MAX_DISCRIMINATOR_CATEGORIES]
        remap = np.full(len(cats), len(keep), dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        dtype = pd.CategoricalDtype(list(range(len(keep) + 1)))
        for out, c in zip(outs, codes):
            out[column] = pd.Categorical(remap[c], dtype=dtype)
    return outs


def discriminator_auc(real: pd.DataFrame, synthetic: pd.DataFrame, spec: ColumnSpec, *, max_rows: int = 5_000,
                      folds: int = 3, seed: int = 0, n_threads: int | None = 1) -> float:
    """Cross-validated AUROC of a gradient-boosted classifier telling real rows from synthetic ones (0.5 = none)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    rng = np.random.default_rng(seed)
    n = min(len(real), len(synthetic), max_rows)
    r = real.iloc[rng.choice(len(real), n, replace=False)].reset_index(drop=True)
    s = synthetic.iloc[rng.choice(len(synthetic), n, replace=False)].reset_index(drop=True)
    xr, xs = _model_frame([r, s], spec, spec.features)
    x = pd.concat([xr, xs], ignore_index=True)
    y = np.r_[np.ones(n), np.zeros(n)]
    folds = max(2, min(folds, n))
    model = HistGradientBoostingClassifier(**BOOSTING, categorical_features="from_dtype", early_stopping=False,
                                           random_state=seed)
    with _threads(n_threads):
        proba = cross_val_predict(model, x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                                  method="predict_proba")[:, 1]
    return float(roc_auc_score(y, proba))


def utility(real: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame, spec: ColumnSpec, target: str,
            *, seed: int = 0, n_threads: int | None = 1) -> dict[str, Any]:
    """Train-on-synthetic/test-on-holdout vs train-on-real/test-on-holdout for one target column.

    Classification (categorical target) reports macro F1 and AUROC (one-vs-rest, weighted, when multiclass);
    regression (numeric target) reports R2. `primary` names the metric the gate compares.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import f1_score, r2_score, roc_auc_score

    if target not in spec.features:
        raise TargetError(f"target column {target!r} is not a feature of the real table; "
                          f"choose one of {spec.features}")
    features = [c for c in spec.features if c != target]
    if not features:
        raise TargetError(f"target column {target!r} is the only column; utility needs at least one feature")
    x_real, x_synth, x_hold = _model_frame([real, synthetic, holdout], spec, features)
    task = "regression" if target in spec.numeric else "classification"
    out: dict[str, Any] = {"target": target, "task": task}
    if task == "regression":
        ys = [numeric_values(f[target]) for f in (real, synthetic, holdout)]
        ok_hold = ~np.isnan(ys[2])
        for label, x, y in (("trtr", x_real, ys[0]), ("tstr", x_synth, ys[1])):
            ok = ~np.isnan(y)
            if ok.sum() < 2:
                raise TargetError(f"target {target!r} has fewer than 2 non-null values in the "
                                  f"{'real' if label == 'trtr' else 'synthetic'} table")
            model = HistGradientBoostingRegressor(**BOOSTING, categorical_features="from_dtype", random_state=seed)
            with _threads(n_threads):
                model.fit(x[ok], y[ok])
            out[label] = {"r2": float(r2_score(ys[2][ok_hold], model.predict(x_hold[ok_hold])))}
        out["primary"] = "r2"
    else:
        codes, classes = category_codes([real[target], synthetic[target], holdout[target]])
        y_real, y_synth, y_hold = codes
        if len(np.unique(y_real)) < 2:
            raise TargetError(f"target {target!r} has a single class in the real table; utility needs two or more")
        for label, x, y in (("trtr", x_real, y_real), ("tstr", x_synth, y_synth)):
            if len(np.unique(y)) < 2:
                out[label] = {"f1": 0.0, "auroc": 0.5, "note": "single class in the training table"}
                continue
            model = HistGradientBoostingClassifier(**BOOSTING, categorical_features="from_dtype", random_state=seed)
            with _threads(n_threads):
                model.fit(x, y)
                proba = np.zeros((len(x_hold), len(classes)))
                proba[:, model.classes_] = model.predict_proba(x_hold)
            present = np.unique(y_hold)
            f1 = f1_score(y_hold, model.predict(x_hold), average="macro", labels=present)
            if len(present) < 2:
                auroc = float("nan")
            elif len(classes) == 2:
                auroc = roc_auc_score(y_hold, proba[:, 1])
            else:
                p = proba[:, present]
                p = p / np.clip(p.sum(1, keepdims=True), 1e-12, None)
                auroc = roc_auc_score(y_hold, p, multi_class="ovr", average="weighted", labels=present)
            out[label] = {"f1": float(f1), "auroc": float(auroc)}
        out["primary"] = "auroc"
    out["drop"] = out["trtr"][out["primary"]] - out["tstr"][out["primary"]]
    return out


def shuffled_columns(frame: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """Each column permuted independently: same marginals, no joint structure (a fidelity negative control)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: frame[c].to_numpy()[rng.permutation(len(frame))] for c in frame.columns})

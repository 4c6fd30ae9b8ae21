"""Benchmark every tabular generator on UCI Adult: fit and sample time, fidelity (accuracy) and privacy (DCR share).

Run by hand (heavy, takes minutes):
    flock /tmp/synthwatch-heavy.lock .venv/bin/python bench/tabular.py > bench/results/tabular.log 2>&1
Train = adult.data (32,561 rows), holdout = adult.test (16,281 rows). Results go to bench/results/tabular.md.

The accuracy and DCR helpers below are bench-local simple versions until `quality/` lands:
- accuracy = 1 - mean total-variation distance over every single column and every column pair, numerics binned
  into deciles of the real (training) data, nulls as their own category;
- DCR share = share of synthetic rows whose nearest training row is closer than their nearest holdout row (ties
  count half), with equal-size training and holdout samples; numerics scaled by their 1%-99% range of the
  training data, categoricals one-hot so a mismatch adds 1 to the squared distance. 0.5 is ideal.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("XDG_DATA_HOME", str(ROOT / "data" / ".xdg"))
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(ROOT / "data" / ".torchinductor"))

from flows.datasets import ADULT_COLUMNS  # noqa: E402  (the catalog's column names)
from generators.registry import make_generator  # noqa: E402


# Fixed budgets. SDV's own default is 300 epochs for CTGAN and TVAE; on this 2-core CPU that is far too slow,
# so both get the same documented budget.
SDV_EPOCHS = 30
# (label, registry name, parameters); a second cart with bigger leaves shows its privacy knob.
BENCH_RUNS = [
    ("autoregressive", "autoregressive", {}),
    ("cart", "cart", {"min_samples_leaf": 5}),
    ("cart (leaf 50)", "cart", {"min_samples_leaf": 50}),
    ("ctgan", "ctgan", {"epochs": SDV_EPOCHS}),
    ("gaussian_copula", "gaussian_copula", {}),
    ("gmm", "gmm", {}),
    ("tvae", "tvae", {"epochs": SDV_EPOCHS}),
]


def load_adult(raw: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) from adult.data and adult.test ('?' is null; the test labels' trailing '.' dropped)."""
    kw = dict(header=None, names=ADULT_COLUMNS, skipinitialspace=True, na_values="?")
    train = pd.read_csv(raw / "adult.data", **kw).dropna(how="all")
    test = pd.read_csv(raw / "adult.test", skiprows=1, **kw).dropna(how="all")
    test["income"] = test["income"].str.rstrip(".")
    for df in (train, test):
        for c in ("age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"):
            df[c] = df[c].astype(np.int64)
    return train.reset_index(drop=True), test.reset_index(drop=True)


# --------------------------------------------------------------- fidelity
def bench_discretise(real: pd.DataFrame, other: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Both tables as integer codes: numerics in deciles of the real data, categoricals by value, nulls own code."""
    r_cols, o_cols = [], []
    for c in real.columns:
        if pd.api.types.is_numeric_dtype(real[c]) and not pd.api.types.is_bool_dtype(real[c]):
            edges = np.unique(np.nanquantile(real[c].astype(float), np.linspace(0, 1, 11))[1:-1])
            enc = lambda s: np.where(s.isna(), len(edges) + 1,  # noqa: E731
                                     np.digitize(s.astype(float).fillna(0), edges, right=True))
        else:
            cats = {v: i for i, v in enumerate(bench_text(pd.concat([real[c], other[c]])).unique())}
            enc = lambda s: bench_text(s).map(cats).to_numpy()  # noqa: E731
        r_cols.append(enc(real[c]))
        o_cols.append(enc(other[c]))
    return np.stack(r_cols, 1).astype(np.int64), np.stack(o_cols, 1).astype(np.int64)


def bench_text(s: pd.Series) -> pd.Series:
    """Values as text with every kind of null (None, NaN, NA) as one token."""
    return s.astype(object).where(s.notna(), "<null>").astype(str)


def bench_tvd(a: np.ndarray, b: np.ndarray) -> float:
    """Total-variation distance between the empirical distributions of the rows of two code arrays."""
    base = int(max(a.max(), b.max())) + 1
    key = lambda x: x[:, 0] * base + x[:, 1] if x.shape[1] == 2 else x[:, 0]  # noqa: E731
    _, inv = np.unique(np.concatenate([key(a), key(b)]), return_inverse=True)
    pa = np.bincount(inv[: len(a)], minlength=inv.max() + 1) / len(a)
    pb = np.bincount(inv[len(a):], minlength=inv.max() + 1) / len(b)
    return 0.5 * float(np.abs(pa - pb).sum())


def bench_accuracy(real: pd.DataFrame, other: pd.DataFrame) -> float:
    """1 - mean TVD over all single columns and all column pairs."""
    r, o = bench_discretise(real, other)
    m = r.shape[1]
    tvds = [bench_tvd(r[:, [j]], o[:, [j]]) for j in range(m)]
    tvds += [bench_tvd(r[:, [i, j]], o[:, [i, j]]) for i, j in itertools.combinations(range(m), 2)]
    return 1.0 - float(np.mean(tvds))


# ---------------------------------------------------------------- privacy
def bench_embed(ref: pd.DataFrame, frames: list[pd.DataFrame]) -> list[np.ndarray]:
    """Rows as vectors: numerics / (q99 - q01 of ref), categoricals one-hot / sqrt(2)."""
    outs = [[] for _ in frames]
    for c in ref.columns:
        if pd.api.types.is_numeric_dtype(ref[c]) and not pd.api.types.is_bool_dtype(ref[c]):
            q1, q99 = np.nanquantile(ref[c].astype(float), [0.01, 0.99])
            scale = (q99 - q1) or (ref[c].max() - ref[c].min()) or 1.0
            med = float(ref[c].median())
            for out, f in zip(outs, frames):
                out.append((f[c].astype(float).fillna(med).to_numpy() / scale)[:, None])
        else:
            cats = pd.Index(bench_text(pd.concat([f[c] for f in frames])).unique())
            for out, f in zip(outs, frames):
                idx = cats.get_indexer(bench_text(f[c]))
                out.append(np.eye(len(cats))[idx] / np.sqrt(2))
    return [np.hstack(o).astype(np.float32) for o in outs]


def bench_nearest(x: np.ndarray, ref: np.ndarray, chunk: int = 2048) -> np.ndarray:
    import torch

    ref_t = torch.from_numpy(ref)
    out = []
    for i in range(0, len(x), chunk):
        d = torch.cdist(torch.from_numpy(x[i:i + chunk]), ref_t)
        out.append(d.min(dim=1).values.numpy())
    return np.concatenate(out)


def bench_dcr_share(train: pd.DataFrame, holdout: pd.DataFrame, synth: pd.DataFrame, n_synth: int,
                    seed: int = 0) -> float:
    """Share of synthetic rows nearer to a training row than to any holdout row (equal-size samples, ties half)."""
    rng = np.random.default_rng(seed)
    tr = train.iloc[rng.permutation(len(train))[: len(holdout)]]
    sy = synth.iloc[rng.permutation(len(synth))[:n_synth]]
    e_tr, e_ho, e_sy = bench_embed(tr, [tr, holdout, sy])
    d_tr, d_ho = bench_nearest(e_sy, e_tr), bench_nearest(e_sy, e_ho)
    return float(np.mean(d_tr < d_ho - 1e-6) + 0.5 * np.mean(np.abs(d_tr - d_ho) <= 1e-6))


def bench_exact_copy_rate(train: pd.DataFrame, synth: pd.DataFrame) -> float:
    as_text = lambda df: df.apply(bench_text).to_numpy()  # noqa: E731
    real = set(map(tuple, as_text(train)))
    return float(np.mean([tuple(r) in real for r in as_text(synth)]))


# ------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generators", nargs="*", default=sorted({n for _, n, _ in BENCH_RUNS}),
                    help="registry names to run (every configured run of each)")
    ap.add_argument("--raw", type=Path, default=ROOT / "data" / "raw" / "adult")
    ap.add_argument("--dcr-rows", type=int, default=10_000, help="synthetic rows used for the DCR share")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "tabular.md")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    log = logging.getLogger("bench")

    train, holdout = load_adult(args.raw)
    log.info("train %s holdout %s", train.shape, holdout.shape)
    n = len(train)
    rows = []
    t = time.perf_counter()
    ceiling = bench_accuracy(train, holdout)
    log.info("holdout accuracy (ceiling) %.4f in %.1fs", ceiling, time.perf_counter() - t)
    rows.append({"generator": "holdout (real, ceiling)", "params": "", "fit_s": None, "sample_s": None,
                 "accuracy": ceiling, "dcr_share": None,
                 "exact_copies": bench_exact_copy_rate(train, holdout)})
    for label, name, params in BENCH_RUNS:
        if name not in args.generators:
            continue
        p = dict(params, seed=args.seed)
        log.info("fitting %s %s", name, p)
        gen = make_generator(name, **p)
        t = time.perf_counter()
        gen.fit(train)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        synth = gen.sample(n, seed=args.seed)
        sample_s = time.perf_counter() - t
        acc = bench_accuracy(train, synth)
        dcr = bench_dcr_share(train, holdout, synth, args.dcr_rows, args.seed)
        copies = bench_exact_copy_rate(train, synth)
        extra = f" epochs_run={gen.epochs_run_}" if hasattr(gen, "epochs_run_") else ""
        log.info("%s fit %.1fs sample %.1fs accuracy %.4f dcr %.4f copies %.4f%s", label, fit_s, sample_s, acc,
                 dcr, copies, extra)
        rows.append({"generator": label, "params": ", ".join(f"{k}={v}" for k, v in p.items()) + extra,
                     "fit_s": fit_s, "sample_s": sample_s, "accuracy": acc, "dcr_share": dcr,
                     "exact_copies": copies})
        write_table(rows, args, n, len(holdout))
    print(write_table(rows, args, n, len(holdout)))
    return 0


def write_table(rows: list[dict], args, n_train: int, n_holdout: int) -> str:
    lines = [
        f"UCI Adult: train {n_train} rows (adult.data), holdout {n_holdout} (adult.test); sample {n_train} rows; "
        f"DCR on {args.dcr_rows} synthetic rows vs {n_holdout} train / {n_holdout} holdout rows. "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared). Seed {args.seed}.",
        "",
        "| generator | fit s | sample s | accuracy | DCR share | exact copies | params |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        f = lambda v, d: "" if v is None else f"{v:.{d}f}"  # noqa: E731
        lines.append(f"| {r['generator']} | {f(r['fit_s'], 1)} | {f(r['sample_s'], 1)} | {r['accuracy']:.4f} | "
                     f"{f(r['dcr_share'], 4)} | {r['exact_copies']:.4f} | {r['params']} |")
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return text


if __name__ == "__main__":
    raise SystemExit(main())

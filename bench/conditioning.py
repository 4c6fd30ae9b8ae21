"""What does native conditioning in `autoregressive` cost, and how close is it to the real conditional rows? (issue 16)

Run by hand (heavy, about 10 minutes on 2 cores):
    flock /work/heavy.lock env PYTHONPATH=. .venv/bin/python bench/conditioning.py > bench/results/conditioning.log 2>&1
Results go to bench/results/conditioning.md (and .json).

Data (choices fixed before any figure was seen): each table is split at random 80/20 (seed 0, stratified on the
label); the generator (default hyperparameters, seed 0, table in its own column order, so every condition below is
on a late column) learns the 80%; fidelity is measured against the held-out 20% rows that meet the condition.
ULB: `Time` dropped (as in bench/augment.py), the training majority subsampled to 40,000 rows (all training frauds
kept) so the fit stays short; Class is the last column. Adult: adult.csv as it is; income is the last column.

Methods, each sampling n rows for three seeds in the same run (seconds: the median; figures: mean ± sd over seeds):
- unconditional: `sample(n)`, the cost every ratio is against;
- proposal: `conditioning="proposal"`, n rows from the given-first network q alone, no correction;
- fast (the default): `conditioning="fast"`, n proposals from q importance-resampled to n rows of the column-order
  chain p (weights p/q read while proposing);
- exact: `conditioning="exact"`, rounds of 2n proposals until the effective sample size reaches n (cap 16n): the
  path that was the default before (its weights now read while proposing too, so it is cheaper than it was);
- rejection: unconditional rows kept when they match, the peer; one seed only (slow), capped at
  `max_rejection_draws` (2,000,000 rows drawn).
Fidelity against the held-out rows meeting the condition, over the columns not fixed by an equality: mean per-column
KS (numerics) / TVD (categoricals), mean |correlation difference| over numeric pairs, `quality.fidelity` accuracy
(1 - mean binned TVD, columns and pairs) and the cross-validated discriminator AUC (`quality.fidelity`; 0.5 = cannot
tell). "real train rows" compares the training rows meeting the condition with the held-out ones: how far two real
samples of that size already are (the noise floor; few frauds make it high).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("XDG_DATA_HOME", str(ROOT / "data" / ".xdg"))

from generators.base import Generator  # noqa: E402
from generators.codec import matches  # noqa: E402
from generators.conditions import parse_conditions  # noqa: E402
from generators.errors import ConditionUnreachableError  # noqa: E402
from generators.registry import make_generator  # noqa: E402
from quality.columns import ColumnSpec, infer_columns  # noqa: E402
from quality.fidelity import accuracy, column_metrics, discriminator_auc, encode_binned, pair_metrics  # noqa: E402

CASES = {"ulb": ["Class=1", "Amount>100", "Class=1,Amount>100"],
         "adult": ["income=>50K", "hours_per_week>=50", "income=>50K,sex=Female"]}
METHODS = ["unconditional", "proposal", "fast", "exact", "rejection"]
SEEDS = (1, 2, 3)
log = logging.getLogger("bench.conditioning")


# ------------------------------------------------------------------ data
def split(df: pd.DataFrame, label: str, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random 80/20 split, stratified on `label`."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(df), bool)
    for _, idx in df.groupby(label).indices.items():
        test[rng.choice(idx, int(round(0.2 * len(idx))), replace=False)] = True
    return df[~test].reset_index(drop=True), df[test].reset_index(drop=True)


def load(name: str, raw: Path, majority: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    if name == "ulb":
        df = pd.read_csv(raw / "creditcard" / "creditcard.csv").drop(columns="Time")
        train, holdout = split(df, "Class")
        pos, neg = train[train["Class"] == 1], train[train["Class"] == 0]
        if majority and len(neg) > majority:
            neg = neg.sample(majority, random_state=0)
        return pd.concat([neg, pos]).sort_index().reset_index(drop=True), holdout
    df = pd.read_csv(raw / "adult" / "adult.csv", skipinitialspace=True, na_values="?")
    df["income"] = df["income"].str.rstrip(".")
    return split(df, "income")


# --------------------------------------------------------------- figures
def fidelity(real: pd.DataFrame, synthetic: pd.DataFrame, fixed: list[str]) -> dict[str, float]:
    """Distance of `synthetic` from `real` over the columns not fixed by an equality condition."""
    cols = [c for c in real.columns if c not in fixed]
    full = infer_columns(real[cols], id_columns=[])
    spec = ColumnSpec(full.numeric, full.categorical, (), tuple(cols))
    real, synthetic = real[cols].reset_index(drop=True), synthetic[cols].reset_index(drop=True)
    encoded = encode_binned(real, synthetic, spec)
    columns = column_metrics(real, synthetic, spec, encoded)
    pairs = pair_metrics(real, synthetic, spec, encoded)
    diffs = [p["corr_diff"] for p in pairs if p.get("corr_diff") is not None]
    return {"column": float(np.mean([c["value"] for c in columns])),
            "corr": float(np.mean(diffs)) if diffs else float("nan"),
            "accuracy": accuracy(columns, pairs)["accuracy"],
            "disc_auc": discriminator_auc(real, synthetic, spec, seed=0)}


def draw(gen, method: str, n: int, seed: int, conds: dict) -> pd.DataFrame:
    """n rows meeting `conds` by `method` (see the module docstring)."""
    if method == "unconditional":
        return gen.sample(n, seed=seed)
    if method == "rejection":
        gen._can_condition = lambda constraints: False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return gen.sample(n, seed=seed, conditions=conds)
        finally:
            del gen._can_condition
    gen.conditioning = method
    try:
        return gen.sample(n, seed=seed, conditions=conds)
    finally:
        del gen.conditioning


def run(name: str, raw: Path, n: int, majority: int, epochs: int, models: Path | None) -> list[dict]:
    train, holdout = load(name, raw, majority)
    log.info("%s: %d training rows, %d held out", name, len(train), len(holdout))
    start = time.perf_counter()
    saved = None if models is None else models / f"{name}_e{epochs}"
    if saved is not None and saved.exists():
        gen = Generator.load(saved)
    else:
        gen = make_generator("autoregressive", epochs=epochs, seed=0).fit(train)
        if saved is not None:
            gen.save(saved)
    log.info("%s: fitted in %.1fs (%d epochs)", name, time.perf_counter() - start, gen.epochs_run_)
    rows = []
    unconditional = []
    for seed in SEEDS:
        t = time.perf_counter()
        draw(gen, "unconditional", n, seed, {})
        unconditional.append(time.perf_counter() - t)
    base = float(np.median(unconditional))
    rows.append({"data": name, "where": "", "method": "unconditional", "seconds": base, "ratio": 1.0})
    for text in CASES[name]:
        conds = gen.codec_.check_conditions(parse_conditions(text))
        fixed = [c for c, v in conds.items() if not hasattr(v, "low")]
        real_hold = holdout[matches(holdout, conds)]
        real_train = train[matches(train, conds)]
        ref = fidelity(real_hold, real_train, fixed)
        rows.append({"data": name, "where": text, "method": "real train rows", "n_real": len(real_hold),
                     "n_synthetic": len(real_train), **ref})
        log.info("%s %s: %d held-out rows meet it; real train rows %s", name, text, len(real_hold), ref)
        exact_seconds = None
        for method in METHODS[1:]:
            seconds, figures = [], []
            for seed in SEEDS[:1] if method == "rejection" else SEEDS:
                t = time.perf_counter()
                try:
                    s = draw(gen, method, n, seed, conds)
                except ConditionUnreachableError as exc:
                    log.info("%s %s %s: %s", name, text, method, exc)
                    seconds = None
                    break
                seconds.append(time.perf_counter() - t)
                if not matches(s, conds).all():
                    raise AssertionError(f"{method} returned rows outside {text}")
                figures.append(fidelity(real_hold, s, fixed))
            if seconds is None:
                rows.append({"data": name, "where": text, "method": method, "seconds": None, "capped": True})
                continue
            sec = float(np.median(seconds))
            exact_seconds = sec if method == "exact" else exact_seconds
            row = {"data": name, "where": text, "method": method, "seconds": sec, "ratio": sec / base,
                   "n_real": len(real_hold), "n_synthetic": n,
                   **{k: float(np.mean([f[k] for f in figures])) for k in figures[0]},
                   **{f"{k}_sd": float(np.std([f[k] for f in figures], ddof=1)) for k in figures[0]
                      if len(figures) > 1}}
            rows.append(row)
            log.info("%s %s %s: %.2fs (%.2fx) %s", name, text, method, sec, sec / base,
                     {k: round(v, 4) for k, v in row.items() if isinstance(v, float)})
        for row in rows:
            if row["where"] == text and row.get("seconds") and exact_seconds:
                row["vs_exact"] = row["seconds"] / exact_seconds
    return rows


def table(rows: list[dict]) -> str:
    out = ["| data, where | method | seconds | x unconditional | x exact | column KS/TVD | corr diff | accuracy | "
           "disc. AUC |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]

    def f(row, key, fmt):
        v = row.get(key)
        return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, fmt)

    for r in rows:
        what = f"{r['data']}, {r['where'] or '(none)'}" + (f" ({r['n_real']} held-out rows)" if r.get("n_real")
                                                              and r["method"] == "real train rows" else "")
        if r.get("capped"):
            out.append(f"| {what} | {r['method']} | cap | - | - | - | - | - | - |")
            continue
        sd = {k: (f" ± {r[k + '_sd']:.3f}" if r.get(k + "_sd") is not None else "") for k in
              ("column", "corr", "accuracy", "disc_auc")}
        out.append(f"| {what} | {r['method']} | {f(r, 'seconds', '.2f')} | {f(r, 'ratio', '.2f')} | "
                   f"{f(r, 'vs_exact', '.2f')} | {f(r, 'column', '.3f')}{sd['column'] if 'column' in r else ''} | "
                   f"{f(r, 'corr', '.3f')} | {f(r, 'accuracy', '.3f')} | {f(r, 'disc_auc', '.3f')}{sd['disc_auc'] if 'disc_auc' in r and r['method'] != 'real train rows' else ''} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=["ulb", "adult"], choices=sorted(CASES))
    ap.add_argument("--rows", type=int, default=10_000, help="rows per conditional sample")
    ap.add_argument("--ulb-majority", type=int, default=40_000)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--raw", type=Path, default=ROOT / "data" / "raw")
    ap.add_argument("--models", type=Path, default=None, help="keep the fitted models here and reuse them")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "conditioning")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("generators.autoregressive").setLevel(logging.WARNING)
    rows = []
    for name in args.data:
        rows += run(name, args.raw, args.rows, args.ulb_majority, args.epochs, args.models)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    md = table(rows)
    args.out.with_suffix(".json").write_text(json.dumps({"rows": rows, "args": {k: str(v) for k, v in
                                                                                 vars(args).items()},
                                                         "python": platform.python_version()}, indent=1))
    args.out.with_suffix(".md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()

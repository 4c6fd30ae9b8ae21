"""Does augmenting the rare class with our synthetic rows help a classifier, against SMOTE? (issue 16)

Run by hand (heavy, about 20 minutes on 2 cores):
    flock /work/heavy.lock env PYTHONPATH=. .venv/bin/python bench/augment.py > bench/results/augment.log 2>&1
Results go to bench/results/augment.md (and .json).

Data sets, all choices fixed before any test figure was seen:
- ULB credit card fraud: rows sorted by `Time`; train = the first 80%, test = the last 20%. The training majority
  is subsampled to `--ulb-majority` rows (all training frauds kept) so the whole run fits its time budget; the
  test split is never subsampled. Features: V1..V28 and Amount (`Time` only orders the split: a time split
  would make it an extrapolated feature). The generator learns the same columns plus Class.
- Adult: target income >50K; training = adult.csv with the positives subsampled so they are 2% or 5% of the rows
  (all negatives kept); test = adult_test.csv, whole (about 24% positive).
Seeds: for each data set the subsample and the generator are fitted once (seed 0); the 5 seeds vary the
classifier, SMOTE and the synthetic sample. The intervals therefore do not include the variance from refitting
the generator or redrawing the subsample.
Arms: real only; real + class weights ("balanced"); real + SMOTE (imbalanced-learn; SMOTENC on Adult's mixed
columns; default strategy: up to 1:1); real + synthetic rare rows from our autoregressive generator (default
hyperparameters, trained on the training split with the target first in its column order, conditioned natively on
the rare class) at 1x, 5x and 20x the real rare count. No synthetic row equals a real training row (checked;
copies are redrawn by `generators.augment.synthesize_rare`).
Classifiers: scikit-learn HistGradientBoostingClassifier (default hyperparameters, early stopping off) and
LogisticRegression (standardised one-hot features, C=1, max_iter 2000). Figures on the test split: AUPRC (average
precision), AUROC, recall at 1% false-positive rate, classifier fit seconds; paired differences against SMOTE
with a 95% t interval over the 5 seeds.
"""

from __future__ import annotations

import argparse
import json
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

from generators.augment import copied_rows, fit_for_augmentation, synthesize_rare  # noqa: E402

T_975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306, 10: 2.262}
ARMS = ["real only", "class weights", "SMOTE", "synthetic 1x", "synthetic 5x", "synthetic 20x"]
MULTIPLES = {"synthetic 1x": 1, "synthetic 5x": 5, "synthetic 20x": 20}
log = logging.getLogger("bench.augment")


# ------------------------------------------------------------------ data
def load_ulb(raw: Path, majority: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    df = pd.read_csv(raw / "creditcard" / "creditcard.csv").sort_values("Time", kind="stable")
    cut = int(len(df) * 0.8)
    train, test = df.iloc[:cut].drop(columns="Time"), df.iloc[cut:].drop(columns="Time")
    pos, neg = train[train["Class"] == 1], train[train["Class"] == 0]
    if majority and len(neg) > majority:
        neg = neg.sample(majority, random_state=seed)
    train = pd.concat([neg, pos]).sort_index().reset_index(drop=True)
    return train, test.reset_index(drop=True), "Class"


def load_adult(raw: Path, positive_share: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    kw = dict(skipinitialspace=True, na_values="?")
    train = pd.read_csv(raw / "adult" / "adult.csv", **kw)
    test = pd.read_csv(raw / "adult" / "adult_test.csv", **kw)
    for df in (train, test):
        df["income"] = df["income"].str.rstrip(".")
    pos, neg = train[train["income"] == ">50K"], train[train["income"] != ">50K"]
    n_pos = int(round(positive_share * len(neg) / (1 - positive_share)))
    train = pd.concat([neg, pos.sample(n_pos, random_state=seed)]).sort_index().reset_index(drop=True)
    return train, test.reset_index(drop=True), "income"


# -------------------------------------------------------------- features
class Features:
    """Numerics as they are (nulls -> training median), categoricals one-hot on the training categories."""

    def __init__(self, frame: pd.DataFrame, target: str):
        self.target = target
        cols = [c for c in frame.columns if c != target]
        self.categorical = [c for c in cols if not pd.api.types.is_numeric_dtype(frame[c])]
        self.numeric = [c for c in cols if c not in self.categorical]
        self.medians = frame[self.numeric].median()
        self.levels = {c: sorted(frame[c].dropna().astype(str).unique()) for c in self.categorical}

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        parts = [frame[self.numeric].astype(float).fillna(self.medians).to_numpy()]
        for c in self.categorical:
            v = frame[c].astype(str).to_numpy()
            parts.append((v[:, None] == np.array(self.levels[c])[None, :]).astype(float))
        return np.hstack(parts)


def labels(frame: pd.DataFrame, target: str, positive) -> np.ndarray:
    return (frame[target] == positive).to_numpy().astype(int)


# ------------------------------------------------------------------ arms
def smote_rows(train: pd.DataFrame, target: str, positive, feats: Features, seed: int) -> pd.DataFrame:
    """Training rows plus SMOTE (SMOTENC with categorical columns) rows, as a frame like `train`."""
    from imblearn.over_sampling import SMOTE, SMOTENC

    X = train.drop(columns=target).copy()
    for c in feats.numeric:
        X[c] = X[c].astype(float).fillna(feats.medians[c])
    for c in feats.categorical:
        X[c] = X[c].astype(str)
    y = labels(train, target, positive)
    if feats.categorical:
        sampler = SMOTENC(categorical_features=[X.columns.get_loc(c) for c in feats.categorical], random_state=seed)
    else:
        sampler = SMOTE(random_state=seed)
    Xr, yr = sampler.fit_resample(X, y)
    out = pd.DataFrame(Xr, columns=X.columns)
    negative = train.loc[train[target] != positive, target].iloc[0]
    out[target] = np.where(yr == 1, positive, negative)
    return out


def classifiers(seed: int, weighted: bool):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cw = "balanced" if weighted else None
    return {"HistGradientBoosting": HistGradientBoostingClassifier(early_stopping=False, class_weight=cw,
                                                                   random_state=seed),
            "LogisticRegression": make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000,
                                                                                     class_weight=cw))}


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    return {"AUPRC": float(average_precision_score(y, p)), "AUROC": float(roc_auc_score(y, p)),
            "recall@1%FPR": float(tpr[fpr <= 0.01].max())}


# ------------------------------------------------------------------- run
def run_dataset(name: str, train: pd.DataFrame, test: pd.DataFrame, target: str, positive, seeds: list[int],
                generator_params: dict) -> dict:
    feats = Features(train, target)
    X_test, y_test = feats.matrix(test), labels(test, target, positive)
    n_pos = int(labels(train, target, positive).sum())
    info = {"train_rows": len(train), "train_positives": n_pos, "test_rows": len(test),
            "test_positives": int(y_test.sum())}
    log.info("%s: %s", name, info)
    start = time.perf_counter()
    gen = fit_for_augmentation(train, target, "autoregressive", params=generator_params, seed=0)
    info["generator_fit_seconds"] = round(time.perf_counter() - start, 1)
    info["generator_epochs"] = gen.epochs_run_
    info["conditioning"] = gen.conditioning_method({target: positive})
    log.info("%s: generator fitted in %.0fs (%d epochs), conditioning %s", name, info["generator_fit_seconds"],
             gen.epochs_run_, info["conditioning"])
    rows, copies = [], []
    for seed in seeds:
        t0 = time.perf_counter()
        synthetic = synthesize_rare(gen, target, positive, 20 * n_pos, seed=seed, real=train)
        sample_seconds = time.perf_counter() - t0
        copies.append(int(copied_rows(synthetic, train).sum()))
        t0 = time.perf_counter()
        smoted = smote_rows(train, target, positive, feats, seed)
        smote_seconds = time.perf_counter() - t0
        frames = {"real only": train, "class weights": train, "SMOTE": smoted}
        for arm, k in MULTIPLES.items():
            frames[arm] = pd.concat([train, synthetic.iloc[: k * n_pos]], ignore_index=True)
        for arm in ARMS:
            X, y = feats.matrix(frames[arm]), labels(frames[arm], target, positive)
            for clf_name, clf in classifiers(seed, arm == "class weights").items():
                t0 = time.perf_counter()
                clf.fit(X, y)
                fit_seconds = time.perf_counter() - t0
                p = clf.predict_proba(X_test)[:, 1]
                row = {"dataset": name, "seed": seed, "arm": arm, "classifier": clf_name, "fit_seconds": fit_seconds,
                       "train_rows": len(X), **scores(y_test, p)}
                if arm == "SMOTE":
                    row["prep_seconds"] = smote_seconds
                elif arm in MULTIPLES:
                    row["prep_seconds"] = sample_seconds * MULTIPLES[arm] / 20
                rows.append(row)
                log.info("%s seed %d %-14s %-20s AUPRC %.4f AUROC %.4f R@1%% %.3f fit %.1fs", name, seed, arm,
                         clf_name, row["AUPRC"], row["AUROC"], row["recall@1%FPR"], fit_seconds)
    info["synthetic_rows_per_seed"] = 20 * n_pos
    info["exact_copies_of_real_rows"] = copies
    return {"info": info, "rows": rows}


def paired(diff: pd.Series) -> tuple[float, float, float]:
    """Mean of paired differences and its 95% t interval."""
    half = T_975.get(len(diff), 1.96) * diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.nan
    return diff.mean(), diff.mean() - half, diff.mean() + half


def summarise(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    out = []
    for (ds, clf, arm), g in df.groupby(["dataset", "classifier", "arm"], sort=False):
        smote = df[(df.dataset == ds) & (df.classifier == clf) & (df.arm == "SMOTE")].set_index("seed")
        rec = {"dataset": ds, "classifier": clf, "arm": arm}
        for m in ("AUPRC", "AUROC", "recall@1%FPR", "fit_seconds"):
            rec[m] = g[m].mean()
        real = df[(df.dataset == ds) & (df.classifier == clf) & (df.arm == "real only")].set_index("seed")
        for m in ("AUPRC", "AUROC", "recall@1%FPR"):
            rec[f"d{m}"] = paired(g.set_index("seed")[m] - smote[m])
        rec["dAUPRC_real"] = paired(g.set_index("seed")["AUPRC"] - real["AUPRC"])
        out.append(rec)
    return pd.DataFrame(out)


def markdown(summary: pd.DataFrame, infos: dict, args, seconds: float) -> str:
    lines = ["# Augmentation benchmark (issue 16)", "",
             f"`{' '.join(['bench/augment.py', *sys.argv[1:]])}` on {platform.machine()} / Python "
             f"{platform.python_version()}, {seconds / 60:.1f} minutes. Means over seeds {args.seeds}; "
             "Δ = arm − SMOTE, paired by seed, with a 95% t interval. See the module docstring for every choice.",
             "Both classifiers are deterministic given their training rows (no early stopping, lbfgs), so real-only "
             "and class-weight arms do not vary with the seed: the intervals carry the randomness of SMOTE and of "
             "the synthetic draws only (one subsample, one fitted generator per data set).", ""]
    for ds, info in infos.items():
        lines.append(f"- **{ds}**: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    lines.append("")
    for ds in summary.dataset.unique():
        for clf in summary.classifier.unique():
            part = summary[(summary.dataset == ds) & (summary.classifier == clf)]
            lines += [f"## {ds}, {clf}", "",
                      "| arm | AUPRC | ΔAUPRC vs SMOTE [95% CI] | ΔAUPRC vs real only [95% CI] | AUROC | "
                      "ΔAUROC vs SMOTE [95% CI] | recall@1%FPR | Δrecall vs SMOTE [95% CI] | fit s |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for _, r in part.iterrows():
                def ci(t, base="SMOTE"):
                    return "—" if r.arm == base else f"{t[0]:+.4f} [{t[1]:+.4f}, {t[2]:+.4f}]"
                lines.append(f"| {r.arm} | {r.AUPRC:.4f} | {ci(r.dAUPRC)} | {ci(r.dAUPRC_real, 'real only')} | "
                             f"{r.AUROC:.4f} | {ci(r.dAUROC)} | {r['recall@1%FPR']:.3f} | "
                             f"{ci(r['drecall@1%FPR'])} | {r.fit_seconds:.1f} |")
            lines.append("")
    return "\n".join(lines)


def write_results(results: dict, args, seconds: float, done: bool) -> None:
    rows = [r for res in results.values() for r in res["rows"]]
    text = markdown(summarise(rows), {k: v["info"] for k, v in results.items()}, args, seconds)
    if not done:
        text = text.replace("# Augmentation benchmark (issue 16)", "# Augmentation benchmark (issue 16) — PARTIAL", 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps({"results": results, "argv": sys.argv[1:]}, indent=1,
                                                        default=float))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, default=ROOT / "data" / "raw")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--ulb-majority", type=int, default=40_000, help="training non-frauds kept (0: all)")
    ap.add_argument("--adult-shares", type=float, nargs="+", default=[0.02, 0.05])
    ap.add_argument("--generator-epochs", type=int, default=60)
    ap.add_argument("--only", choices=["ulb", "adult"], default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "augment.md")
    ap.add_argument("--render", type=Path, default=None, help="only re-render the tables of a saved .json")
    args = ap.parse_args(argv)
    if args.render is not None:
        saved = json.loads(args.render.read_text())
        args.seeds = sorted({r["seed"] for v in saved["results"].values() for r in v["rows"]})
        rows = [r for v in saved["results"].values() for r in v["rows"]]
        text = markdown(summarise(rows), {k: v["info"] for k, v in saved["results"].items()}, args, 0.0)
        args.out.write_text(text.replace(", 0.0 minutes", f" (re-rendered from {args.render.name})"))
        print(args.out.read_text())
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    start = time.perf_counter()
    params = {"epochs": args.generator_epochs}
    runs = []
    if args.only in (None, "ulb"):
        runs.append(("ULB credit card (time split)", "ULB", lambda: load_ulb(args.raw, args.ulb_majority, seed=0), 1))
    if args.only in (None, "adult"):
        for share in args.adult_shares:
            runs.append((f"Adult, positives {share:.0%}", f"Adult {share:.0%}",
                         lambda share=share: load_adult(args.raw, share, seed=0), ">50K"))
    results = {}
    for title, short, load, positive in runs:
        train, test, target = load()
        results[title] = run_dataset(short, train, test, target, positive, args.seeds, params)
        # written after every data set, so an interrupted run keeps what it finished
        write_results(results, args, time.perf_counter() - start, done=len(results) == len(runs))
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

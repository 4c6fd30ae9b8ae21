"""Calibrate the quality gate on real data: how often does it quarantine an independent real sample?

Run by hand (heavy, about half an hour on one core):
    OMP_NUM_THREADS=1 flock /tmp/synthwatch-heavy.lock .venv/bin/python bench/gate_calibration.py
For every real table the project can read offline and every size n it allows (about 300, 1,000, 3,000, 10,000
and 30,000 rows, at most a third of the table), each repetition draws three disjoint random samples of n rows:
train, holdout and a third one that stands in for the synthetic table. The gate (`quality.evaluate`, default
thresholds, the pure library) should publish that third sample: it is real data, as faithful and as private as
a synthetic table can be. The false-quarantine rate per (table, size) is the share of repetitions it refuses
(target: at most 5%), with the checks that refused. The same repetitions also gate two leaks that must always be
quarantined, and by a privacy check: `copy` (the training rows, shuffled) and `perturbed` (the training rows with
30% of numeric cells multiplied by 1 +- 5%, integer columns rounded back to integers).

Tables (all read from disk; nothing is downloaded at run time):
- adult: UCI Adult, data/raw/adult/adult.csv + adult_test.csv (48,842 rows, 15 columns), target `income` as in
  flows/pipeline.yaml (so utility_drop is gated too);
- creditcard: ULB credit-card fraud, data/raw/creditcard/creditcard.csv (284,807 rows, 31 numeric columns,
  `Class` kept: a rare 0/1 flag, 0.17% ones, that a small training sample often lacks);
- breast_cancer, wine, diabetes, digits: the real tables bundled inside scikit-learn (569, 178, 442 and 1,797
  rows), with their `target` column as a plain column.
Results go to bench/results/gate_calibration.md (`--jsonl FILE` also keeps one JSON line per evaluation).
"""

from __future__ import annotations

import argparse
import collections
import zlib
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
# bench/quality.py would shadow the package: drop this script's folder from the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # appended: PYTHONPATH=<another checkout> measures that checkout's gate instead
os.environ.setdefault("XDG_DATA_HOME", str(ROOT / "data" / ".xdg"))

import quality  # noqa: E402
from quality import evaluate  # noqa: E402

SIZES = (300, 1_000, 3_000, 10_000, 30_000)
PRIVACY_CHECKS = {"exact_copy_rate", "dcr_share", "nndr_ratio", "mia_auroc"}
TARGETS = {"adult": "income"}


def load_table(name: str) -> pd.DataFrame:
    """One real table, read from disk (data/raw/ or scikit-learn's bundled data)."""
    raw = ROOT / "data" / "raw"
    if name == "adult":
        frames = [pd.read_csv(raw / "adult" / f) for f in ("adult.csv", "adult_test.csv")]
        return pd.concat(frames, ignore_index=True)
    if name == "creditcard":
        return pd.read_csv(raw / "creditcard" / "creditcard.csv")
    from sklearn import datasets

    return getattr(datasets, f"load_{name}")(as_frame=True).frame


def sizes_for(rows: int) -> list[int]:
    """The standard sizes a table can give three disjoint samples of; its third when it is smaller than all."""
    fitting = [n for n in SIZES if 3 * n <= rows]
    return fitting or [rows // 3]


def repetitions(n: int, scale: float) -> int:
    base = 20 if n <= 1_000 else 10 if n <= 3_000 else 5 if n <= 10_000 else 3
    return max(1, int(round(base * scale)))


def perturbed_copy(train: pd.DataFrame, rng: np.random.Generator, share: float = 0.3,
                   amount: float = 0.05) -> pd.DataFrame:
    """The training rows with `share` of numeric cells multiplied by 1 +- `amount` (integers rounded back)."""
    out = train.copy()
    for column in out.columns:
        values = out[column]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        hit = rng.random(len(out)) < share
        factor = np.where(hit, 1.0 + amount * rng.choice([-1.0, 1.0], len(out)), 1.0)
        changed = values.to_numpy(dtype=np.float64) * factor
        if pd.api.types.is_integer_dtype(values):
            changed = np.round(changed).astype(values.dtype)
        out[column] = changed
    return out


def one_repetition(table: pd.DataFrame, name: str, n: int, rep: int, with_leaks: bool) -> list[dict]:
    rng = np.random.default_rng([zlib.crc32(name.encode()), n, rep])
    order = rng.permutation(len(table))
    train, holdout, sample = (table.iloc[order[i * n:(i + 1) * n]].reset_index(drop=True) for i in range(3))
    cases = {"real": sample}
    if with_leaks:
        cases["copy"] = train.sample(frac=1.0, random_state=rep).reset_index(drop=True)
        cases["perturbed"] = perturbed_copy(train, rng).sample(frac=1.0, random_state=rep).reset_index(drop=True)
    rows = []
    for case, synthetic in cases.items():
        t = time.perf_counter()
        report = evaluate(train, synthetic, holdout, target=TARGETS.get(name), seed=rep)
        values = {c.name: (c.value, c.threshold) for c in report if c.name in PRIVACY_CHECKS | {
            "accuracy", "discriminator_auc", "utility_drop"}}
        rows.append({"table": name, "n": n, "rep": rep, "case": case, "passed": report.passed,
                     "failing": report.failing, "seconds": time.perf_counter() - t,
                     "values": {k: [None if v is None else float(v), None if b is None else float(b)]
                                for k, (v, b) in values.items()}})
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = collections.defaultdict(list)
    for row in rows:
        groups[(row["table"], row["n"], row["case"])].append(row)
    out = []
    for (table, n), _ in sorted({(t, n): 0 for t, n, _ in groups}.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        real = groups[(table, n, "real")]
        failing = collections.Counter(name for row in real for name in row["failing"])
        entry = {"table": table, "n": n, "reps": len(real),
                 "false_quarantine": sum(not r["passed"] for r in real) / len(real),
                 "failing": dict(failing.most_common()),
                 "seconds": float(np.mean([r["seconds"] for r in real]))}
        for case in ("copy", "perturbed"):
            leak = groups.get((table, n, case), [])
            entry[f"{case}_reps"] = len(leak)
            entry[f"{case}_quarantined"] = (sum(not r["passed"] for r in leak) / len(leak)) if leak else None
            entry[f"{case}_by_privacy"] = (sum(bool(PRIVACY_CHECKS & set(r["failing"])) for r in leak) / len(leak)
                                           if leak else None)
            dcr = [r["values"]["dcr_share"][0] for r in leak if "dcr_share" in r["values"]]
            entry[f"{case}_dcr_min"] = min(dcr) if dcr else None
        out.append(entry)
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def write_markdown(summary: list[dict], path: Path, args: argparse.Namespace, seconds: float) -> None:
    lines = [
        "# Gate calibration: false quarantines of independent real samples",
        "",
        f"`quality` from `{Path(quality.__file__).parent}`; default thresholds; {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} cores (shared), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; "
        f"repetition scale {args.scale}; total {seconds / 60:.1f} min.",
        "",
        "Each repetition: three disjoint random samples of n rows (train, holdout, and a real sample gated as if it "
        "were synthetic). False quarantine = share of repetitions whose real sample fails the gate (target <= 5%). "
        "`copy` = the training rows; `perturbed` = the training rows with 30% of numeric cells x (1 +- 5%); both "
        "must be quarantined every time, by a privacy check (the `by privacy` columns).",
        "",
        "| table | n per sample | reps | false quarantine | failing checks (count) | copy quarantined (by privacy) "
        "| perturbed quarantined (by privacy) | perturbed min DCR share | s per gate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in summary:
        failing = ", ".join(f"{k} ({v})" for k, v in e["failing"].items()) or "-"
        lines.append(
            f"| {e['table']} | {e['n']:,} | {e['reps']} | {_pct(e['false_quarantine'])} | {failing} | "
            f"{_pct(e['copy_quarantined'])} ({_pct(e['copy_by_privacy'])}) of {e['copy_reps']} | "
            f"{_pct(e['perturbed_quarantined'])} ({_pct(e['perturbed_by_privacy'])}) of {e['perturbed_reps']} | "
            f"{'-' if e['perturbed_dcr_min'] is None else format(e['perturbed_dcr_min'], '.3f')} | "
            f"{e['seconds']:.1f} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="adult,creditcard,breast_cancer,wine,diabetes,digits")
    parser.add_argument("--max-size", type=int, default=30_000)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the repetitions per size")
    parser.add_argument("--leak-reps", type=int, default=5, help="repetitions per size that also gate the leaks")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "gate_calibration.md"))
    parser.add_argument("--jsonl", default=None, help="also write one JSON line per evaluation here")
    args = parser.parse_args()
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    warnings.simplefilter("ignore")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    log = open(args.jsonl, "w", encoding="utf-8") if args.jsonl else None
    rows: list[dict] = []
    start = time.perf_counter()
    for name in args.tables.split(","):
        table = load_table(name)
        for n in [s for s in sizes_for(len(table)) if s <= args.max_size]:
            reps = repetitions(n, args.scale)
            t = time.perf_counter()
            for rep in range(reps):
                for row in one_repetition(table, name, n, rep, with_leaks=rep < args.leak_reps):
                    rows.append(row)
                    if log:
                        log.write(json.dumps(row) + "\n")
                        log.flush()
            done = [r for r in rows if r["table"] == name and r["n"] == n and r["case"] == "real"]
            print(f"{name} n={n}: {sum(not r['passed'] for r in done)}/{len(done)} real samples quarantined "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
            write_markdown(summarise(rows), out, args, time.perf_counter() - start)
    write_markdown(summarise(rows), out, args, time.perf_counter() - start)
    print(out.read_text())


if __name__ == "__main__":
    main()

"""Calibrate the sequence gate on real panels: how often does it quarantine an independent real sample?

Run by hand (a few minutes on one core):
    OMP_NUM_THREADS=1 flock /work/heavy.lock .venv/bin/python bench/sequence_gate_calibration.py [--reps 20]
For every panel of `bench/sequence_panels.py` each repetition splits the entities at random into three equal
parts: train, holdout and a third that stands in for the synthetic sequences. `quality.evaluate_sequences`
(default thresholds) should publish that third part: it is real data. The false-quarantine rate per panel is
the share of repetitions it refuses (target: at most 5%), with the checks that refused. The same repetitions
gate `copy` (the training sequences under fresh ids, shifted in time) and `near copy` (the same with 2% noise on
every float value), which must always be quarantined.
Results go to bench/results/sequence_gate.md.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.sequence_panels import PANELS, load_panel  # noqa: E402
from quality.sequence import evaluate_sequences  # noqa: E402


def split_entities(frame: pd.DataFrame, entity: str, rng: np.random.Generator) -> list[pd.DataFrame]:
    ids = pd.unique(frame[entity])
    ids = ids[rng.permutation(len(ids))]
    return [frame[frame[entity].isin(part)].reset_index(drop=True) for part in np.array_split(ids, 3)]


def as_copy(train: pd.DataFrame, time_col: str, entity: str) -> pd.DataFrame:
    out = train.copy()
    out[entity] = out[entity].astype(str) + "-copy"
    out[time_col] = out[time_col] + 1
    return out


def as_perturbed(train: pd.DataFrame, time_col: str, entity: str, rng: np.random.Generator) -> pd.DataFrame:
    """The training sequences under fresh ids with every float value moved by 2% noise (a near copy)."""
    out = as_copy(train, time_col, entity)
    for c in out.columns:
        if c not in (time_col, entity) and pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c] * (1 + 0.02 * rng.standard_normal(len(out)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--panels", nargs="*", default=PANELS)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "sequence_gate.md"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    lines = ["# Sequence gate calibration", "",
             f"{args.reps} random entity splits (train / holdout / independent real third) per panel; default "
             "thresholds. `false quarantine` = share of real thirds the gate refused (target <= 5%); `copy caught` "
             "= share of copies of the training sequences it refused (target 100%); `near copy caught`: the same for "
             "copies with 2% noise on every float value.", "",
             "| panel | entities per part | steps per entity | false quarantine | refused by | copy caught | "
             "copy refused by | near copy caught | near copy refused by | seconds per gate |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    details = []
    for name in args.panels:
        frame, time_col, entity = load_panel(name)
        lengths = frame.groupby(entity).size()
        refused, copy_refused, near_refused = collections.Counter(), collections.Counter(), collections.Counter()
        n_refused = n_copy = n_near = 0
        seconds = []
        values = collections.defaultdict(list)
        for rep in range(args.reps):
            rng = np.random.default_rng(rep)
            train, hold, other = split_entities(frame, entity, rng)
            start = time.perf_counter()
            report = evaluate_sequences(train, other, hold, time=time_col, entity=entity, seed=rep)
            seconds.append(time.perf_counter() - start)
            n_refused += not report.passed
            refused.update(report.failing)
            for c in report:
                if c.value is not None:
                    values[c.name].append((c.value, c.threshold))
            copy = evaluate_sequences(train, as_copy(train, time_col, entity), hold, time=time_col, entity=entity,
                                      seed=rep)
            n_copy += not copy.passed
            copy_refused.update(copy.failing)
            near = evaluate_sequences(train, as_perturbed(train, time_col, entity, rng), hold, time=time_col,
                                      entity=entity, seed=rep)
            n_near += not near.passed
            near_refused.update(near.failing)
        fmt = lambda counter: ", ".join(f"{k} {v}" for k, v in counter.most_common()) or "-"  # noqa: E731
        lines.append(f"| {name} | {len(lengths) // 3} | {lengths.min()}-{lengths.max()} | "
                     f"{n_refused / args.reps:.0%} ({n_refused}/{args.reps}) | {fmt(refused)} | "
                     f"{n_copy / args.reps:.0%} | {fmt(copy_refused)} | {n_near / args.reps:.0%} | "
                     f"{fmt(near_refused)} | {np.mean(seconds):.1f} |")
        details.append(f"\n### {name}: real third, median value / median bound over repetitions\n")
        details.append("| check | median value | median bound | worst value |")
        details.append("|---|---|---|---|")
        for check, pairs in values.items():
            v = np.array([p[0] for p in pairs], dtype=float)
            b = [p[1] for p in pairs if p[1] is not None]
            direction_max = check in ("discriminator_auc", "forecast_error_ratio", "copied_sequence_rate",
                                      "dcr_share", "mia_auroc")
            worst = v.max() if direction_max else v.min()
            details.append(f"| {check} | {np.median(v):.3f} | {np.median(b) if b else float('nan'):.3f} | "
                           f"{worst:.3f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines + details) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()

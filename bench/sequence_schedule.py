"""sequence_ar's training schedule on validation halves: learning curves, updates run, and the gate's figures.

Run by hand (heavy):
    OMP_NUM_THREADS=1 flock /work/heavy.lock .venv/bin/python bench/sequence_schedule.py \
        --panels fertility basic_motions japanese_vowels mitdb --variant '{}' --variant '{"patience": 20}'
Only the training part of each panel is read (split in two as `bench/sequences.py --validation` does: the model
learns one half and is gated against the other); no holdout or third. Per panel and variant: gradient updates run,
the update whose weights were kept, the loss history (with `--curves`), fit seconds and the gate's figures.
Results are appended to bench/results/sequence_schedule.jsonl.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.sequence_gate_calibration import split_entities  # noqa: E402
from bench.sequence_panels import load_panel  # noqa: E402
from bench.sequences import warm_imports  # noqa: E402
from generators.data import SequenceData  # noqa: E402
from generators.registry import make_generator  # noqa: E402
from quality.columns import decile_codes  # noqa: E402
from quality.sequence import evaluate_sequences  # noqa: E402

SHORT = {"step_marginal_accuracy": "marg", "change_accuracy": "chg", "sequence_stat_accuracy": "stats",
         "context_accuracy": "ctx", "discriminator_auc": "disc", "forecast_error_ratio": "fc", "dcr_share": "dcr"}


def validation_halves(panel: str) -> tuple[pd.DataFrame, pd.DataFrame, str, str]:
    """The panel's training part split in two exactly as `bench/sequences.py --validation` splits it."""
    frame, time_col, entity = load_panel(panel)
    train, _, _ = split_entities(frame, entity, np.random.default_rng(0))
    ids = pd.unique(train[entity])
    ids = ids[np.random.default_rng(1).permutation(len(ids))]
    half = len(ids) // 2
    a, b = (train[train[entity].isin(part)].reset_index(drop=True) for part in (ids[:half], ids[half:]))
    return a, b, time_col, entity


def _tvd(real: np.ndarray, other: np.ndarray) -> float:
    (r, o), k = decile_codes(real, [other])
    return float(0.5 * np.abs(np.bincount(r, minlength=k) / len(r) - np.bincount(o, minlength=k) / len(o)).sum())


def column_gaps(train: pd.DataFrame, synth: pd.DataFrame, hold: pd.DataFrame, time_col: str, entity: str) -> dict:
    """Decile TVD to the other half per numeric column (sample, and train as the reference) and per step range."""
    cols = [c for c in hold.columns if c not in (time_col, entity) and pd.api.types.is_float_dtype(hold[c])]
    out = {"columns": {c: [round(_tvd(hold[c].to_numpy(float), synth[c].to_numpy(float)), 3),
                           round(_tvd(hold[c].to_numpy(float), train[c].to_numpy(float)), 3)] for c in cols}}
    pos = {name: f.groupby(entity).cumcount().to_numpy() for name, f in (("h", hold), ("s", synth), ("t", train))}
    ranges = {}
    for lo, hi in ((0, 1), (1, 5), (5, 10), (10, 15), (15, 20), (20, 1000)):
        h, s_, t = (f[(pos[k] >= lo) & (pos[k] < hi)] for k, f in (("h", hold), ("s", synth), ("t", train)))
        if len(h) and len(s_) and len(t):
            ranges[f"{lo}-{hi}"] = [round(float(np.mean([_tvd(h[c].to_numpy(float), s_[c].to_numpy(float))
                                                           for c in cols])), 3),
                                    round(float(np.mean([_tvd(h[c].to_numpy(float), t[c].to_numpy(float))
                                                         for c in cols])), 3), len(s_), len(h)]
    out["steps"] = ranges
    return out


def validation_panels(args: argparse.Namespace):
    """(panel, validation halves) of each of `args.panels`, once imports are warmed and `args.out`'s folder exists."""
    warnings.simplefilter("ignore")
    warm_imports(["sequence_ar"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for panel in args.panels:
        yield panel, validation_halves(panel)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panels", nargs="*", default=["fertility", "basic_motions", "japanese_vowels", "mitdb"])
    parser.add_argument("--variant", action="append", default=[], metavar="JSON")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0], help="model seeds (sample seed stays 0)")
    parser.add_argument("--curves", action="store_true", help="print every history record")
    parser.add_argument("--columns", action="store_true",
                        help="per value column and per step range, decile TVD of the sample (and of train) to the "
                             "other half")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "sequence_schedule.jsonl"))
    args = parser.parse_args()
    for panel, (train, hold, time_col, entity) in validation_panels(args):
        for variant in args.variant or ["{}"]:
            for seed in args.seeds:
                params = {**json.loads(variant), "seed": seed}
                gen = make_generator("sequence_ar", **params)
                start = time.perf_counter()
                gen.fit(SequenceData(train, time=time_col, entity=entity))
                fit_s = time.perf_counter() - start
                synth = gen.sample(int(train[entity].nunique()), seed=0).frame
                report = evaluate_sequences(train, synth, hold, time=time_col, entity=entity)
                figs = {SHORT[m]: round(report[m].value, 3) for m in SHORT
                        if m in report and report[m].value is not None}
                hist = gen.history_
                best = min(hist, key=lambda h: h["val_loss"])
                rec = {"panel": panel, "variant": variant, "seed": seed, "fit_s": round(fit_s, 2),
                       "records": len(hist), "best": best, "last": hist[-1], **figs}
                print(json.dumps(rec), flush=True)
                if args.columns:
                    print("   ", json.dumps(column_gaps(train, synth, hold, time_col, entity)))
                if args.curves:
                    for h in hist:
                        print("   ", json.dumps(h))
                with open(args.out, "a") as f:
                    f.write(json.dumps({**rec, "history": hist}) + "\n")


if __name__ == "__main__":
    main()

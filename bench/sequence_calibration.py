"""sequence_ar's marginal calibration (`calibrate`) on validation halves: one fit per panel and seed, every
calibration variant applied to that same network (the calibration never changes the net or its tokens).

Run by hand (heavy):
    OMP_NUM_THREADS=1 flock /work/heavy.lock .venv/bin/python bench/sequence_calibration.py \
        --panels japanese_vowels --seeds 0 1 2 --variant '{"calibrate": "pooled"}' --variant '{"calibrate": "steps"}'
A variant is JSON: `calibrate` and `calibration_window` plus optional overrides of the class constants
`CALIBRATION_QUANTILES`, `CALIBRATION_BUCKETS`, `CALIBRATION_SEQUENCES` ("quantiles", "buckets", "sequences"); the
uncalibrated model (`{}`) is always the first row. Only the
training part of each panel is read, split in two as `bench/sequences.py --validation` splits it. Per panel, seed
and variant: the gate's figures, the calibration's seconds and (`--columns`) per value column the decile TVD of the
values and of the step changes to the other half. Results are appended to bench/results/sequence_calibration.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.sequence_schedule import SHORT, _tvd, validation_panels  # noqa: E402
from generators.data import SequenceData  # noqa: E402
from generators.registry import make_generator  # noqa: E402
from quality.sequence import evaluate_sequences  # noqa: E402

CONSTANTS = {"quantiles": "CALIBRATION_QUANTILES", "buckets": "CALIBRATION_BUCKETS",
             "sequences": "CALIBRATION_SEQUENCES"}


def _changes(frame: pd.DataFrame, col: str, time_col: str, entity: str) -> np.ndarray:
    f = frame.sort_values([entity, time_col])
    return f.groupby(entity)[col].diff().to_numpy(float)


def column_figures(synth: pd.DataFrame, hold: pd.DataFrame, time_col: str, entity: str) -> dict:
    cols = [c for c in hold.columns if c not in (time_col, entity) and pd.api.types.is_numeric_dtype(hold[c])
            and c in synth.columns]
    return {c: [round(_tvd(hold[c].to_numpy(float), synth[c].to_numpy(float)), 3),
                round(_tvd(_changes(hold, c, time_col, entity), _changes(synth, c, time_col, entity)), 3)]
            for c in cols}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panels", nargs="*", default=["fertility", "basic_motions", "japanese_vowels", "mitdb"])
    parser.add_argument("--variant", action="append", default=[], metavar="JSON")
    parser.add_argument("--params", default="{}", help="JSON hyperparameters of the fit (besides seed)")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0], help="model seeds (fit and sample)")
    parser.add_argument("--columns", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "sequence_calibration.jsonl"))
    args = parser.parse_args()
    for panel, (train, hold, time_col, entity) in validation_panels(args):
        data = SequenceData(train, time=time_col, entity=entity)
        for seed in args.seeds:
            gen = make_generator("sequence_ar", **{**json.loads(args.params), "seed": seed})
            start = time.perf_counter()
            gen.fit(data)
            fit_s = time.perf_counter() - start
            raw = gen.codec_.encode(data)
            for variant in ["{}", *args.variant]:
                v = json.loads(variant)
                gen.calibrate = v.get("calibrate", "off")
                gen.calibration_window = v.get("calibration_window", type(gen)().calibration_window)
                for key, attr in CONSTANTS.items():
                    setattr(gen, attr, v.get(key, getattr(type(gen), attr)))
                start = time.perf_counter()
                gen._fit_calibration(raw)
                cal_s = time.perf_counter() - start
                synth = gen.sample(int(train[entity].nunique()), seed=seed).frame
                report = evaluate_sequences(train, synth, hold, time=time_col, entity=entity)
                figs = {SHORT[m]: round(report[m].value, 3) for m in SHORT
                        if m in report and report[m].value is not None}
                rec = {"panel": panel, "variant": variant, "seed": seed, "fit_s": round(fit_s, 2),
                       "calibration_s": round(cal_s, 2), **figs}
                if args.columns:
                    rec["columns"] = column_figures(synth, hold, time_col, entity)
                print(json.dumps(rec), flush=True)
                with open(args.out, "a") as f:
                    f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()

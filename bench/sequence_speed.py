"""Fit and sample seconds of sequence_ar on the benchmark's training part (imports warmed), optionally profiled.

    OMP_NUM_THREADS=1 flock /work/heavy.lock .venv/bin/python bench/sequence_speed.py [--panels ...] [--runs 3]
        [--profile cprofile|torch] [--params JSON]
Splits as bench/sequences.py does (the test parts, holdout and third, are never touched: only the training part is
learned). Prints per panel the median fit and sample seconds over `--runs` runs, and a hash of the sample.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import pstats
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


def fit_sample(train: pd.DataFrame, time_col: str, entity: str, params: dict) -> tuple[float, float, str, int]:
    gen = make_generator("sequence_ar", **params)
    start = time.perf_counter()
    gen.fit(SequenceData(train, time=time_col, entity=entity))
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    sample = gen.sample(int(train[entity].nunique()), seed=0)
    sample_s = time.perf_counter() - start
    digest = hashlib.sha1(pd.util.hash_pandas_object(sample.frame, index=False).values.tobytes()).hexdigest()[:10]
    return fit_s, sample_s, digest, len(gen.history_)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panels", nargs="*", default=["fertility", "basic_motions", "mitdb", "japanese_vowels"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", choices=["cprofile", "torch"], default=None)
    parser.add_argument("--params", default="{}")
    args = parser.parse_args()
    params = json.loads(args.params)
    warnings.simplefilter("ignore")
    warm_imports(["sequence_ar"])
    for panel in args.panels:
        frame, time_col, entity = load_panel(panel)
        train = split_entities(frame, entity, np.random.default_rng(0))[0]
        if args.profile == "cprofile":
            prof = cProfile.Profile()
            prof.enable()
            fit_sample(train, time_col, entity, params)
            prof.disable()
            print(f"== {panel}")
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            continue
        if args.profile == "torch":
            import torch.profiler

            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                fit_sample(train, time_col, entity, params)
            print(f"== {panel}")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
            continue
        runs = [fit_sample(train, time_col, entity, params) for _ in range(args.runs)]
        fits, samples = [r[0] for r in runs], [r[1] for r in runs]
        print(f"{panel}: fit {np.median(fits):.2f} s ({' '.join(f'{f:.2f}' for f in fits)}), sample "
              f"{np.median(samples):.2f} s ({' '.join(f'{s:.2f}' for s in samples)}), epochs {runs[0][3]}, "
              f"sample hash {' '.join(sorted({r[2] for r in runs}))}", flush=True)


if __name__ == "__main__":
    main()

"""Sequence generators on real panels, gated: our models (and SDV PAR when registered) in the same run.

Run by hand (heavy):
    OMP_NUM_THREADS=1 flock /work/heavy.lock .venv/bin/python bench/sequences.py [--panels ...] [--models ...]
Per panel the entities are split at random into three equal parts: train, holdout and an independent real third
(the ceiling: what a perfect generator could reach). Each model learns train and samples as many sequences as
train has; `quality.evaluate_sequences` gates the sample against train and holdout. Results (every gate metric,
fit and sample seconds) go to bench/results/sequences.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.sequence_gate_calibration import split_entities  # noqa: E402
from bench.sequence_panels import PANELS, load_panel  # noqa: E402
from generators.data import SequenceData  # noqa: E402
from generators.registry import list_generators, make_generator  # noqa: E402
from quality.sequence import evaluate_sequences  # noqa: E402

METRICS = ["step_marginal_accuracy", "change_accuracy", "sequence_stat_accuracy", "context_accuracy",
           "discriminator_auc", "forecast_error_ratio", "copied_sequence_rate", "dcr_share", "mia_auroc"]


def run_model(name: str, train: pd.DataFrame, time_col: str, entity: str, params: dict, seed: int = 0
              ) -> tuple[pd.DataFrame, float, float]:
    gen = make_generator(name, **{**params, "seed": seed})
    start = time.perf_counter()
    gen.fit(SequenceData(train, time=time_col, entity=entity))
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    sample = gen.sample(int(train[entity].nunique()), seed=seed)
    return sample.frame, fit_s, time.perf_counter() - start


def warm_imports(models: list[str]) -> None:
    """Import what the models import before any timing: torch (and the torch._dynamo that building the first
    optimizer imports, about 1.6 s here) and SDV, so no model's fit seconds carry a one-off import cost that
    whichever model runs first in the process would otherwise pay alone."""
    import torch

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    if "par" in models:
        import deepecho.models.par  # noqa: F401
        import sdv.sequential  # noqa: F401


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panels", nargs="*", default=PANELS)
    parser.add_argument("--models", nargs="*", default=list_generators("timeseries"))
    parser.add_argument("--epochs", type=int, default=None, help="override every model's epochs")
    parser.add_argument("--params", default="{}", help="JSON hyperparameters for sequence_ar (trials)")
    parser.add_argument("--variant", action="append", default=[], metavar="JSON",
                        help="also run sequence_ar with these hyperparameters in the same run (repeatable)")
    parser.add_argument("--validation", action="store_true",
                        help="tune without the test parts: the train entities split in two, models learn one half "
                             "and are gated against the other (no holdout or third is read)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="model seeds (fit and sample); with several, every model runs once per seed on the same "
                             "split and a summary row per model gives the mean and the range")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "sequences.md"))
    args = parser.parse_args()
    trial = json.loads(args.params)
    warnings.simplefilter("ignore")
    warm_imports(args.models)
    header = "| panel | model | passed | " + " | ".join(METRICS) + " | fit s | sample s |"
    lines = ["# Sequence generators on real panels", "", header, "|" + "---|" * (len(METRICS) + 5)]
    for panel in args.panels:
        frame, time_col, entity = load_panel(panel)
        train, hold, other = split_entities(frame, entity, np.random.default_rng(0))
        rows = [("real third", other, float("nan"), float("nan"))]
        if args.validation:
            ids = pd.unique(train[entity])
            ids = ids[np.random.default_rng(1).permutation(len(ids))]
            half = len(ids) // 2
            train, hold = (train[train[entity].isin(part)].reset_index(drop=True) for part in (ids[:half], ids[half:]))
            rows = []
        runs = [(model, model) for model in args.models]
        runs += [(f"sequence_ar {v}", "sequence_ar") for v in args.variant]
        for label, model in runs:
            params = {} if args.epochs is None else {"epochs": args.epochs}
            if model == "sequence_ar":
                params.update(trial if label == model else json.loads(label.split(" ", 1)[1]))
            for seed in args.seeds:
                name = label if len(args.seeds) == 1 else f"{label} seed {seed}"
                try:
                    synth, fit_s, sample_s = run_model(model, train, time_col, entity, params, seed)
                except Exception as exc:  # noqa: BLE001 - a model failing on one panel is a result to report
                    lines.append(f"| {panel} | {name} | error: {type(exc).__name__}: {str(exc)[:80]} |")
                    print(lines[-1], flush=True)
                    continue
                rows.append((name, synth, fit_s, sample_s))
        per_label: dict[str, list[tuple[list[float], bool, float, float]]] = {}
        for model, synth, fit_s, sample_s in rows:
            report = evaluate_sequences(train, synth, hold, time=time_col, entity=entity)
            vals, values = [], []
            for m in METRICS:
                c = report[m] if m in report else None
                vals.append("-" if c is None or c.value is None else f"{c.value:.3f}{'' if c.passed else '!'}")
                values.append(float("nan") if c is None or c.value is None else float(c.value))
            lines.append(f"| {panel} | {model} | {'yes' if report.passed else 'no'} | " + " | ".join(vals)
                         + f" | {fit_s:.1f} | {sample_s:.1f} |")
            print(lines[-1], flush=True)
            per_label.setdefault(model.split(" seed ")[0], []).append((values, report.passed, fit_s, sample_s))
        if len(args.seeds) > 1:
            for label, runs_of in per_label.items():
                if len(runs_of) < 2:
                    continue
                table = np.array([v for v, *_ in runs_of])
                cells = [f"{np.mean(col):.3f} ({np.min(col):.3f}-{np.max(col):.3f})" for col in table.T]
                lines.append(f"| {panel} | **{label}, mean (range) of {len(runs_of)} seeds** | "
                             f"{sum(p for _, p, _, _ in runs_of)}/{len(runs_of)} | " + " | ".join(cells)
                             + f" | {np.mean([f for _, _, f, _ in runs_of]):.1f} | "
                             f"{np.mean([s_ for *_, s_ in runs_of]):.1f} |")
                print(lines[-1], flush=True)
    lines += ["", "`!` marks a check that failed its (size-aware) bound; `real third` is an independent real sample."]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

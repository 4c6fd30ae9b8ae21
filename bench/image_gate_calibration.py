"""Calibrate the image quality gate on real images: how often does it quarantine an independent real sample?

Run by hand (heavy: about a quarter of an hour on one core):
    OMP_NUM_THREADS=1 flock /work/heavy.lock .venv/bin/python bench/image_gate_calibration.py
For Fashion-MNIST (the IDX training split in data/raw/fashion-mnist) and scikit-learn's 8x8 digits, at a few
training sizes n, each repetition draws three disjoint samples stratified by label: train (n images), holdout and
a third one standing in for the synthetic images (n/4 each). `quality.evaluate_images` (default thresholds)
should publish the third: it is real, as faithful and as private as synthetic images can be. The false-quarantine
rate per (data, size) is the share of repetitions it refuses (target: at most 5%). The same repetitions gate two
leaks that must always be quarantined, by a privacy check: `copy` (training images with their labels) and
`noised` (those copies with every pixel moved by a uniform -8..8, clipped). Results go to
bench/results/image_gate.md (`--jsonl FILE` also keeps one JSON line per evaluation).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# bench/quality.py would shadow the package: drop this script's folder from the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))
os.environ.setdefault("XDG_DATA_HOME", str(ROOT / "data" / ".xdg"))

from bench.image_data import digits, fashion_mnist, stratified_split  # noqa: E402
from quality.image import evaluate_images  # noqa: E402

PRIVACY = {"memorisation_pixels", "memorisation_features", "exact_copy_rate"}
PLAN = {"fashion-mnist": [(300, 10), (1000, 6), (3000, 4), (10000, 2)], "digits": [(300, 10), (1000, 6)]}
SHOWN = ("frechet_ratio", "coverage", "discriminator_auc", "label_fidelity", "memorisation_pixels",
         "memorisation_features")


def run(data: str, n: int, reps: int, jsonl) -> dict:
    px, labels = fashion_mnist("train") if data == "fashion-mnist" else digits()
    m = max(n // 4, 20)
    out = collections.defaultdict(list)
    for rep in range(reps):
        train, holdout, other = stratified_split(labels, [n, m, m], seed=1000 * rep + n)
        rng = np.random.default_rng(rep)
        copy = rng.choice(train, m, replace=False)
        noised = np.clip(px[copy].astype(np.int16) + rng.integers(-8, 9, px[copy].shape), 0, 255).astype(np.uint8)
        cases = {"real": (px[other], labels[other]), "copy": (px[copy], labels[copy]),
                 "noised": (noised, labels[copy])}
        for case, (sx, sy) in cases.items():
            t = time.perf_counter()
            report = evaluate_images(px[train], labels[train], sx, sy, px[holdout], labels[holdout], seed=rep)
            seconds = time.perf_counter() - t
            row = {"data": data, "n_train": n, "n_other": m, "rep": rep, "case": case, "passed": report.passed,
                   "failing": report.failing, "seconds": seconds,
                   "values": {c.name: c.value for c in report if c.name in SHOWN},
                   "thresholds": {c.name: c.threshold for c in report if c.name in SHOWN}}
            out[case].append(row)
            if jsonl:
                jsonl.write(json.dumps(row) + "\n")
                jsonl.flush()
            print(f"{data} n={n} rep={rep} {case}: {'pass' if report.passed else 'FAIL ' + ','.join(report.failing)}"
                  f" ({seconds:.1f}s)", flush=True)
    return out


def summarise(results: list[tuple[str, int, dict]]) -> str:
    lines = ["# Image gate calibration", "",
             f"`python bench/image_gate_calibration.py` on {platform.machine()}, python {platform.python_version()},"
             f" {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Default thresholds; holdout and the third "
             "sample are n/4 images each, all three disjoint and stratified by label.", "",
             "| data | n train | n holdout = n other | reps | real sample quarantined | refused by | copies caught "
             "(by a privacy check) | noised copies caught | seconds per gate |",
             "|---|---|---|---|---|---|---|---|---|"]
    for data, n, out in results:
        real, copy, noised = out["real"], out["copy"], out["noised"]
        refused = collections.Counter(f for r in real for f in r["failing"])
        caught = lambda rows: sum((not r["passed"]) and bool(PRIVACY & set(r["failing"])) for r in rows)  # noqa: E731
        lines.append(f"| {data} | {n} | {real[0]['n_other']} | {len(real)} | "
                     f"{sum(not r['passed'] for r in real)}/{len(real)} | "
                     f"{', '.join(f'{k} {v}' for k, v in refused.most_common()) or '-'} | "
                     f"{caught(copy)}/{len(copy)} | {caught(noised)}/{len(noised)} | "
                     f"{np.mean([r['seconds'] for r in real + copy + noised]):.1f} |")
    lines += ["", "Median value (and median bound) of each check on the real third sample:", "",
              "| data | n train | " + " | ".join(SHOWN) + " |", "|---|---|" + "---|" * len(SHOWN)]
    for data, n, out in results:
        cells = []
        for name in SHOWN:
            vals = [r["values"].get(name) for r in out["real"] if r["values"].get(name) is not None]
            bnds = [r["thresholds"].get(name) for r in out["real"] if r["thresholds"].get(name) is not None]
            cells.append(f"{np.median(vals):.3f} ({np.median(bnds):.3f})" if vals and bnds else "-")
        lines.append(f"| {data} | {n} | " + " | ".join(cells) + " |")
    lines += ["", "Median value of each check on the noised copies:", "",
              "| data | n train | " + " | ".join(SHOWN) + " |", "|---|---|" + "---|" * len(SHOWN)]
    for data, n, out in results:
        cells = []
        for name in SHOWN:
            vals = [r["values"].get(name) for r in out["noised"] if r["values"].get(name) is not None]
            cells.append(f"{np.median(vals):.3f}" if vals else "-")
        lines.append(f"| {data} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=sorted(PLAN), action="append")
    parser.add_argument("--sizes", type=int, nargs="+", help="only these training sizes of the plan")
    parser.add_argument("--reps", type=float, default=1.0, help="scale every repetition count by this factor")
    parser.add_argument("--jsonl", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "image_gate.md")
    args = parser.parse_args()
    jsonl = open(args.jsonl, "w") if args.jsonl else None
    results = []
    for data in args.data or list(PLAN):
        for n, reps in PLAN[data]:
            if args.sizes and n not in args.sizes:
                continue
            results.append((data, n, run(data, n, max(1, round(reps * args.reps)), jsonl)))
    text = summarise(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

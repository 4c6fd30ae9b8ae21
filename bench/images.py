"""Benchmark the image generators on real images with the image gate: fidelity, labels, memorisation, seconds.

Run by hand, one data set per hold of the lock (heavy: the digits about 5 minutes, Fashion-MNIST about 10 without
`pixel_ar small`, which alone trains about 10 minutes):
    flock /work/heavy.lock .venv/bin/python bench/images.py --data digits
On a stratified subset of Fashion-MNIST (train / holdout / real third sample, disjoint) and on scikit-learn's 8x8
digits, each model is trained on the training images, samples as many images as the holdout holds, and the
sample is gated by `quality.evaluate_images` against the training images and the holdout. The real third sample
is the ceiling (a perfect generator), the GMM the floor. Results go to bench/results/images.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))
os.environ.setdefault("XDG_DATA_HOME", str(ROOT / "data" / ".xdg"))

from bench.image_data import digits, fashion_mnist, stratified_split  # noqa: E402
from generators.data import ImageData  # noqa: E402
from generators.registry import make_generator  # noqa: E402
from quality.image import evaluate_images  # noqa: E402
from quality.image_report import render_image_report  # noqa: E402

# per data set: (train, holdout = samples) sizes and each model's params (epochs sized to the time budget)
PLAN = {
    "fashion-mnist": {"sizes": (3000, 750), "models": {
        "image_gmm": {},
        # the default: two-stage, beta 0.2, critic 0.02, matched intensities; one thread (two ran 8x slower on the
        # shared machine: 0.87 s against 0.12 s a batch)
        "conv_vae": {"epochs": 40, "num_threads": 1},
        "conv_vae no critic": {"generator": "conv_vae", "epochs": 40, "adversarial_weight": 0.0,
                               "match_intensities": False, "num_threads": 1},  # the previous default
        "conv_vae matched, no critic": {"generator": "conv_vae", "epochs": 40, "adversarial_weight": 0.0,
                                        "num_threads": 1},
        "conv_vae one-stage": {"generator": "conv_vae", "epochs": 40, "beta": 1.0, "prior_components": 0,
                               "adversarial_weight": 0.0, "match_intensities": False, "num_threads": 2},
        "conv_vae beta 1": {"generator": "conv_vae", "epochs": 40, "beta": 1.0, "adversarial_weight": 0.0,
                            "match_intensities": False, "num_threads": 2},
        "conv_vae beta 0.5": {"generator": "conv_vae", "epochs": 40, "beta": 0.5, "adversarial_weight": 0.0,
                              "match_intensities": False, "num_threads": 2},
        # conditional GAN: lr 2e-4 kept over 4e-4 on the validation split (bench/image_tune.py); epochs sized to
        # about 7 minutes on one thread
        "image_gan": {"epochs": 60, "num_threads": 1},
        "pixel_ar": {"epochs": 4, "sample_batch": 375, "num_threads": 2},
        "pixel_ar small": {"generator": "pixel_ar", "width": 16, "hidden": 32, "levels": 16, "epochs": 30,
                           "sample_batch": 375, "num_threads": 2},
        # denoising diffusion: epochs sized to about 10 minutes on one thread (about 24 s an epoch of 3,000 images
        # with the other core busy), sampling about 2.5 minutes (25 DDIM steps, guided: two passes a step); guidance
        # 0.5 and eta 0 (the defaults) chosen on the validation split (bench/image_tune.py)
        "image_diffusion": {"epochs": 24, "num_threads": 1},
    }},
    "digits": {"sizes": (1200, 300), "models": {
        "image_gmm": {"n_basis": 24},
        "conv_vae": {"epochs": 60, "batch_size": 64, "num_threads": 1},
        "conv_vae no critic": {"generator": "conv_vae", "epochs": 60, "batch_size": 64, "adversarial_weight": 0.0,
                               "match_intensities": False, "num_threads": 1},
        # the mixture's draws widened: chosen on the digits' validation split (bench/image_tune.py); on Fashion-MNIST's
        # validation split any widening hurt, so the default stays at 1
        "conv_vae prior scale 2": {"generator": "conv_vae", "epochs": 60, "batch_size": 64, "prior_scale": 2.0,
                                   "num_threads": 1},
        "conv_vae one-stage": {"generator": "conv_vae", "epochs": 60, "batch_size": 64, "beta": 1.0,
                               "prior_components": 0, "adversarial_weight": 0.0, "match_intensities": False,
                               "num_threads": 2},
        "conv_vae beta 1": {"generator": "conv_vae", "epochs": 60, "batch_size": 64, "beta": 1.0,
                            "adversarial_weight": 0.0, "match_intensities": False, "num_threads": 2},
        "image_gan": {"epochs": 300, "num_threads": 1},
        "pixel_ar": {"epochs": 30, "levels": 17, "batch_size": 32, "num_threads": 2},
        "image_diffusion": {"epochs": 150, "num_threads": 1},  # about 2 s an epoch of 1,200 images
    }},
}
SHOWN = ("frechet_ratio", "coverage", "precision", "recall", "discriminator_auc", "label_fidelity",
         "memorisation_pixels", "memorisation_features", "exact_copy_rate")


def run(data: str, models: list[str] | None, scale: float, report_dir: Path | None) -> list[dict]:
    px, labels = fashion_mnist("train") if data == "fashion-mnist" else digits()
    n_train, n_hold = PLAN[data]["sizes"]
    n_train, n_hold = int(n_train * scale), int(n_hold * scale)
    train, holdout, other = stratified_split(labels, [n_train, n_hold, n_hold], seed=0)
    rows = []

    def gate(name: str, sx: np.ndarray, sy: np.ndarray, fit_s: float | None, sample_s: float | None) -> None:
        t = time.perf_counter()
        report = evaluate_images(px[train], labels[train], sx, sy, px[holdout], labels[holdout], seed=0)
        gate_s = time.perf_counter() - t
        row = {"data": data, "model": name, "n_train": n_train, "n_samples": len(sx), "passed": report.passed,
               "failing": report.failing, "fit_s": fit_s, "sample_s": sample_s,
               "images_per_s": None if not sample_s else len(sx) / sample_s, "gate_s": gate_s,
               "values": {c.name: c.value for c in report if c.name in SHOWN},
               "thresholds": {c.name: c.threshold for c in report if c.name in SHOWN}}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if report_dir is not None:
            report_dir.mkdir(parents=True, exist_ok=True)
            render_image_report(report, px[train], labels[train], sx, sy, title=f"{name} on {data}",
                                path=report_dir / f"{data}-{name}.html")

    gate("real sample (ceiling)", px[other], labels[other], None, None)
    for name, params in PLAN[data]["models"].items():
        if models and name not in models:
            continue
        t = time.perf_counter()
        params = dict(params)
        gen = make_generator(params.pop("generator", name), **params).fit(ImageData(px[train], labels[train]))
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        sample = gen.sample(n_hold, seed=1)
        sample_s = time.perf_counter() - t
        gate(name, sample.pixels, sample.labels, fit_s, sample_s)
    return rows


def summarise(rows: list[dict], args) -> str:
    lines = ["# Image generators benchmark", "",
             f"`python bench/images.py {' '.join(sys.argv[1:])}` on {platform.machine()}, python "
             f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; torch on two "
             "threads. Each model trains on the training images and samples as many images as the holdout holds; "
             "the gate (`quality.evaluate_images`, default thresholds) compares them with the training images "
             "and the holdout. Model params: " + json.dumps({d: p["models"] for d, p in PLAN.items()}), "",
             "| data | model | n train | n samples | gate | failing | fit s | sample s | images/s | "
             + " | ".join(SHOWN) + " |", "|---" * (9 + len(SHOWN)) + "|"]
    for r in rows:
        def f(v, spec=".3f"):
            return "-" if v is None else format(v, spec)
        lines.append(f"| {r['data']} | {r['model']} | {r['n_train']} | {r['n_samples']} | "
                     f"{'pass' if r['passed'] else 'FAIL'} | {', '.join(r['failing']) or '-'} | {f(r['fit_s'], '.1f')} | "
                     f"{f(r['sample_s'], '.1f')} | {f(r['images_per_s'], '.1f')} | "
                     + " | ".join(f(r["values"].get(k)) for k in SHOWN) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=sorted(PLAN), action="append")
    parser.add_argument("--model", action="append", help="only these models (default: all)")
    parser.add_argument("--scale", type=float, default=1.0, help="scale the data sizes by this factor")
    parser.add_argument("--reports", type=Path, help="write each gate's HTML report into this folder")
    parser.add_argument("--out", type=Path, help="results file (default: bench/results/images.md for a full run, "
                        "images_partial.md when --data, --model or --scale narrows it, so a partial run never "
                        "replaces the full table)")
    args = parser.parse_args()
    if args.out is None:
        partial = args.data or args.model or args.scale != 1.0
        args.out = ROOT / "bench" / "results" / ("images_partial.md" if partial else "images.md")
    rows = []
    for data in args.data or ["digits", "fashion-mnist"]:
        rows += run(data, args.model, args.scale, args.reports)
    text = summarise(rows, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

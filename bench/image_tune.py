"""Tune image generator params on a validation split of the image benchmark's training images (never its holdout).

Run by hand under the lock:
    flock /work/heavy.lock env PYTHONPATH=. .venv/bin/python bench/image_tune.py --data fashion-mnist \
        --config '{"name": "adv 0.05", "generator": "conv_vae", "epochs": 40, "adversarial_weight": 0.05}'
The training part of `bench/images.py`'s split (same seed) is split again, stratified, into 3/4 fit and 1/4
validation; each config trains on the fit part, samples as many images as the validation part holds, and is gated
with the validation part as the holdout. Results are printed as JSON lines and appended to --out.
"""

from __future__ import annotations

import argparse
import json
import os
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
from bench.images import PLAN, SHOWN  # noqa: E402
from generators.data import ImageData  # noqa: E402
from generators.registry import make_generator  # noqa: E402
from quality.image import evaluate_images  # noqa: E402


def validation_split(data: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pixels, labels, fit indices, validation indices): `bench/images.py`'s training part of `data` (same seed)
    split again, stratified, into 3/4 to fit and 1/4 to validate; its holdout and third sample are never touched."""
    px, labels = fashion_mnist("train") if data == "fashion-mnist" else digits()
    n_train, n_hold = PLAN[data]["sizes"]
    train, _, _ = stratified_split(labels, [n_train, n_hold, n_hold], seed=0)
    n_val = n_train // 4
    fit_part, val_part = (train[i] for i in stratified_split(labels[train], [n_train - n_val, n_val], seed=1))
    return px, labels, fit_part, val_part


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=sorted(PLAN), required=True)
    parser.add_argument("--config", action="append", required=True, help="JSON: name, generator and params")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="sampling seeds (one fit per config)")
    parser.add_argument("--prior-scales", type=float, nargs="+", default=[None],
                        help="sample each fitted conv_vae at these prior_scale values (a sampling-only param)")
    parser.add_argument("--sample-params", action="append", default=None,
                        help="JSON: sampling-only params set on each fitted model before it samples (one gate per "
                             "value), e.g. '{\"guidance\": 2, \"sample_steps\": 25}' for image_diffusion")
    parser.add_argument("--grid", type=Path, help="save a PNG per gate into this folder: 12 samples per label (rows) "
                                                  "beside 4 validation images")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "image_tune.jsonl")
    args = parser.parse_args()
    px, labels, fit_part, val_part = validation_split(args.data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for text in args.config:
        config = json.loads(text)
        name, params = config.pop("name"), dict(config)
        t = time.perf_counter()
        gen = make_generator(params.pop("generator"), **params).fit(ImageData(px[fit_part], labels[fit_part]))
        fit_s = time.perf_counter() - t
        variants = [json.loads(v) for v in args.sample_params] if args.sample_params else [{}]
        for seed, scale, extra in ((seed, scale, extra) for seed in args.seeds for scale in args.prior_scales
                                   for extra in variants):
            if scale is not None:
                gen.prior_scale = scale
            for key, value in extra.items():
                setattr(gen, key, value)
            t = time.perf_counter()
            sample = gen.sample(len(val_part), seed=seed)
            sample_s = time.perf_counter() - t
            report = evaluate_images(px[fit_part], labels[fit_part], sample.pixels, sample.labels, px[val_part],
                                     labels[val_part], seed=0)
            row = {"data": args.data, "name": name, "config": config, "seed": seed, "prior_scale": scale,
                   **({"sample_params": extra} if extra else {}), "fit_s": round(fit_s, 1),
                   "sample_s": round(sample_s, 1),
                   "passed": report.passed, "failing": report.failing,
                   "values": {c.name: round(c.value, 4) for c in report if c.name in SHOWN and c.value is not None}}
            print(json.dumps(row), flush=True)
            with args.out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            if args.grid is not None:
                tag = "".join(f"_{k}{v}" for k, v in extra.items())
                save_grid(sample.pixels, sample.labels, px[val_part], labels[val_part],
                          args.grid / f"{args.data}-{name}{tag}-seed{seed}.png".replace(" ", "_"))


def save_grid(pixels: np.ndarray, labels: np.ndarray, real: np.ndarray, real_labels: np.ndarray, path: Path) -> None:
    """One row per label: 12 samples, then 4 real images (grey: the first channel), enlarged twice."""
    from PIL import Image

    rows = []
    for label in sorted(set(real_labels)):
        own = [p[..., 0] for p in pixels[labels == label][:12]]
        own += [np.zeros(real.shape[1:3], dtype=np.uint8)] * (12 - len(own))
        rows.append(np.concatenate(own + [p[..., 0] for p in real[real_labels == label][:4]], axis=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = np.concatenate(rows, axis=0)
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(path)


if __name__ == "__main__":
    main()

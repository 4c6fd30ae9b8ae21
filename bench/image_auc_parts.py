"""Which part of the image gate's two-sample classifier input tells a generator's samples from real images?

Run by hand under the lock, on the validation split of `bench/image_tune.py` (the benchmark's training images split
again; its holdout and third sample are never read):
    flock /work/heavy.lock env PYTHONPATH=. .venv/bin/python bench/image_auc_parts.py \
        --config '{"name": "default", "generator": "conv_vae", "epochs": 40, "num_threads": 2}'
Prints the cross-validated AUROC of `quality.image.discriminator_auc` on all inputs, on the learnt features alone,
the thumbnail alone, the six sharpness/contrast statistics together and each statistic alone (with its mean on
either side).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from bench.image_tune import validation_split  # noqa: E402
from bench.images import PLAN  # noqa: E402
from generators.data import ImageData  # noqa: E402
from generators.registry import make_generator  # noqa: E402
from quality import image as qi  # noqa: E402

STATS = ("dx", "dy", "mean", "std", "exact black share", "saturated share")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=sorted(PLAN), default="fashion-mnist")
    parser.add_argument("--config", action="append", required=True, help="JSON: name, generator and params")
    parser.add_argument("--stretch", action="store_true",
                        help="also score each sample stretched so that its brightest pixel is 255 (every real "
                             "Fashion-MNIST image has one at 254-255: its preprocessing stretched each image)")
    args = parser.parse_args()
    px, labels, fit_part, val_part = validation_split(args.data)
    pooled_fit = qi._pooled(px[fit_part])
    classes = np.unique(labels[fit_part], return_inverse=True)[1].astype(np.int64)
    net = qi.train_feature_net(pooled_fit, classes, steps=300, seed=0)
    pooled_val = qi._pooled(px[val_part])
    x_real = qi._discriminator_inputs(pooled_val, qi._embed(net, pooled_val))
    for text in args.config:
        params = json.loads(text)
        name = params.pop("name")
        t = time.perf_counter()
        gen = make_generator(params.pop("generator"), **params).fit(ImageData(px[fit_part], labels[fit_part]))
        sample = gen.sample(len(val_part), seed=1)
        print(f"{name}: fit {time.perf_counter() - t:.1f} s", flush=True)
        variants = [("", sample.pixels)] + ([(" stretched", stretched(sample.pixels))] if args.stretch else [])
        for suffix, pixels in variants:
            print_parts(name + suffix, x_real, net, pixels, px.shape[3])


def stretched(pixels: np.ndarray) -> np.ndarray:
    """Each image's intensities scaled so that its brightest pixel is 255 (an all-black image stays black)."""
    flat = pixels.reshape(len(pixels), -1).astype(np.float64)
    top = np.maximum(flat.max(axis=1, keepdims=True), 1.0)
    return np.clip(np.round(flat * 255.0 / top), 0, 255).astype(np.uint8).reshape(pixels.shape)


def print_parts(name: str, x_real: np.ndarray, net, pixels: np.ndarray, c: int) -> None:
    """The classifier's AUROC on every part of its input, real rows `x_real` against `pixels`."""
    pooled_syn = qi._pooled(pixels)
    x_syn = qi._discriminator_inputs(pooled_syn, qi._embed(net, pooled_syn))
    first_stat = x_real.shape[1] - len(STATS) * c  # each statistic is one column per channel
    parts = {"all": slice(None), "learnt features": slice(0, qi.FEATURE_DIM),
             "thumbnail": slice(qi.FEATURE_DIM, first_stat), "statistics": slice(first_stat, None)}
    print(name, flush=True)
    for part, cols in parts.items():
        print(f"  {part:18s} AUROC {qi.discriminator_auc(x_real[:, cols], x_syn[:, cols]):.3f}", flush=True)
    for j, stat in enumerate(STATS):
        col = list(range(first_stat + j * c, first_stat + (j + 1) * c))
        print(f"  {stat:18s} AUROC {qi.discriminator_auc(x_real[:, col], x_syn[:, col]):.3f} "
              f"(real mean {x_real[:, col].mean():.4f}, synthetic {x_syn[:, col].mean():.4f})", flush=True)


if __name__ == "__main__":
    main()

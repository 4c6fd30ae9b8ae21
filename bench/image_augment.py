"""Do synthetic images help a classifier that has only 100 real images per class? (issue 13, augmentation study)

Run by hand (heavy: about 7 minutes for the digits and 10 for Fashion-MNIST on 2 cores; split runs can be merged):
    flock /work/heavy.lock env PYTHONPATH=. .venv/bin/python bench/image_augment.py
Results go to bench/results/image_augment.md (and .json).

All choices below were fixed before any test figure was seen.
- Data: Fashion-MNIST (train split for the small sets, the whole t10k split, 10,000 images, as the test set) and
  scikit-learn's 8x8 digits (the small set drawn from all 1,797 images, the remaining 797 are the test set).
- Seeds: for each seed s the 100 real images per class are a fresh random draw (rng s), the generator is fitted
  with seed s on exactly those images, the synthetic images are drawn with seed s and the classifier starts
  from seed s. So the paired differences include the variance of the subset, the generator and the classifier.
- Arms: real only (100 per class); real + synthetic 1x and 5x (100 and 500 synthetic images per class, each
  class drawn conditioned on its label) from each generator.
- Classifiers: (1) a small CNN (two 3x3 conv + max-pool blocks of 16 and 32 channels, a 64-unit hidden layer),
  Adam 1e-3, batch 64, a fixed `--steps` updates whatever the training set's size (so an arm differs only in its
  data), on 2 torch threads; (2) a multinomial logistic regression on the pixels scaled to [0, 1] (C = 1, lbfgs,
  300 iterations).
- Reported: mean test accuracy per arm, and the paired accuracy change against real only with a 95% t interval
  over the seeds.
"""

from __future__ import annotations

import argparse
import json
import logging
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

from bench.image_data import digits, fashion_mnist  # noqa: E402
from generators.data import ImageData  # noqa: E402
from generators.registry import make_generator  # noqa: E402

T_975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306, 10: 2.262}
PER_CLASS = 100
MULTIPLES = (1, 5)
# each generator's params for 1,000 training images (the image benchmark's, epochs scaled to the smaller set)
MODELS = {
    "fashion-mnist": {"image_gmm": {},
                      "conv_vae": {"epochs": 100, "adversarial_weight": 0.0, "match_intensities": False,
                                   "num_threads": 2},  # the previous default: two-stage, beta 0.2, no critic
                      "conv_vae one-stage": {"epochs": 100, "beta": 1.0, "prior_components": 0,
                                             "adversarial_weight": 0.0, "match_intensities": False,
                                             "num_threads": 2},
                      # the current default: two-stage, critic after a quarter of the epochs, matched intensities
                      "conv_vae default": {"epochs": 100, "num_threads": 1}},
    "digits": {"image_gmm": {"n_basis": 24}, "conv_vae": {"epochs": 100, "batch_size": 64, "adversarial_weight": 0.0,
                                                        "match_intensities": False, "num_threads": 2},
               "conv_vae one-stage": {"epochs": 100, "batch_size": 64, "beta": 1.0, "prior_components": 0,
                                      "adversarial_weight": 0.0, "match_intensities": False,
                                      "num_threads": 2},
               "conv_vae default": {"epochs": 100, "batch_size": 64, "num_threads": 1}},
}
log = logging.getLogger("bench.image_augment")


def load(data: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(small train pixels, labels, test pixels, labels): 100 random images per class, and the test set."""
    if data == "fashion-mnist":
        px, y = fashion_mnist("train")
        test_px, test_y = fashion_mnist("test")
    else:
        px, y = digits()
    rng = np.random.default_rng(seed)
    small = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), PER_CLASS, replace=False)
                                    for c in np.unique(y)]))
    if data != "fashion-mnist":
        rest = np.setdiff1d(np.arange(len(y)), small)
        test_px, test_y = px[rest], y[rest]
    return px[small], y[small], test_px, test_y


def synthetic(name: str, params: dict, px: np.ndarray, y: np.ndarray, seed: int, n_per_class: int
              ) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(pixels, labels, fit s, sample s): n_per_class images of every class, each drawn conditioned on its label."""
    model = "conv_vae" if name.startswith("conv_vae") else name
    t = time.perf_counter()
    gen = make_generator(model, **{**params, "seed": seed}).fit(ImageData(px, y))
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    parts = [gen.sample(n_per_class, seed=seed * 1000 + i, conditions={"label": c})
             for i, c in enumerate(np.unique(y))]
    sample_s = time.perf_counter() - t
    return (np.concatenate([p.pixels for p in parts]), np.concatenate([p.labels for p in parts]), fit_s, sample_s)


def cnn_accuracy(train_px, train_y, test_px, test_y, classes, seed: int, steps: int) -> float:
    import torch
    from torch import nn

    torch.set_num_threads(2)
    torch.manual_seed(seed)
    h, w = train_px.shape[1:3]
    net = nn.Sequential(nn.Conv2d(train_px.shape[3], 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(32 * (h // 4) * (w // 4), 64), nn.ReLU(), nn.Linear(64, len(classes)))
    index = {c: i for i, c in enumerate(classes)}
    x = torch.from_numpy(train_px.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    t = torch.from_numpy(np.array([index[v] for v in train_y], dtype=np.int64))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    order, pos = torch.randperm(len(x), generator=g), 0
    net.train()
    for _ in range(steps):
        if pos + 64 > len(x):
            order, pos = torch.randperm(len(x), generator=g), 0
        idx = order[pos:pos + 64]
        pos += 64
        loss = nn.functional.cross_entropy(net(x[idx]), t[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    xt = torch.from_numpy(test_px.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    with torch.no_grad():
        pred = torch.cat([net(xt[i:i + 2000]).argmax(1) for i in range(0, len(xt), 2000)]).numpy()
    return float(np.mean(np.asarray(classes, dtype=object)[pred] == test_y))


def logreg_accuracy(train_px, train_y, test_px, test_y) -> float:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=1.0, max_iter=300)
    clf.fit(train_px.reshape(len(train_px), -1) / 255.0, train_y.astype(str))
    return float(np.mean(clf.predict(test_px.reshape(len(test_px), -1) / 255.0) == test_y.astype(str)))


def run(data: str, models: list[str], seeds: list[int], steps: int) -> list[dict]:
    rows = []
    for seed in seeds:
        px, y, test_px, test_y = load(data, seed)
        classes = list(np.unique(y))
        arms = {"real only": (px, y, None)}
        for name in models:
            sx, sy, fit_s, sample_s = synthetic(name, MODELS[data][name], px, y, seed, PER_CLASS * max(MULTIPLES))
            for m in MULTIPLES:
                keep = np.concatenate([np.flatnonzero(sy == c)[:PER_CLASS * m] for c in classes])
                arms[f"{name} {m}x"] = (np.concatenate([px, sx[keep]]), np.concatenate([y, sy[keep]]),
                                        {"fit_s": fit_s, "sample_s": sample_s})
        for arm, (ax, ay, timing) in arms.items():
            t = time.perf_counter()
            row = {"data": data, "seed": seed, "arm": arm, "n_train": len(ax),
                   "cnn": cnn_accuracy(ax, ay, test_px, test_y, classes, seed, steps),
                   "logreg": logreg_accuracy(ax, ay, test_px, test_y),
                   "classifier_s": time.perf_counter() - t, **(timing or {})}
            rows.append(row)
            log.info(json.dumps(row))
    return rows


def summarise(rows: list[dict], steps: int) -> str:
    lines = ["# Image augmentation study", "",
             f"`python bench/image_augment.py {' '.join(sys.argv[1:])}` on {platform.machine()}, python "
             f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; CNN {steps} "
             f"steps. Generator params: {json.dumps(MODELS)}", "",
             "| data | arm | seeds | CNN accuracy | CNN change (95% CI) | logreg accuracy | logreg change (95% CI) |",
             "|---|---|---:|---:|---|---:|---|"]
    for data in dict.fromkeys(r["data"] for r in rows):
        sub = [r for r in rows if r["data"] == data]
        base = {r["seed"]: r for r in sub if r["arm"] == "real only"}
        for arm in dict.fromkeys(r["arm"] for r in sub):
            arm_rows = sorted((r for r in sub if r["arm"] == arm), key=lambda r: r["seed"])
            cells = []
            for clf in ("cnn", "logreg"):
                acc = np.array([r[clf] for r in arm_rows])
                diff = acc - np.array([base[r["seed"]][clf] for r in arm_rows])
                if arm == "real only":
                    change = "-"
                elif len(diff) > 1:
                    half = T_975.get(len(diff), 1.96) * diff.std(ddof=1) / np.sqrt(len(diff))
                    change = f"{diff.mean():+.4f} ({diff.mean() - half:+.4f}, {diff.mean() + half:+.4f})"
                else:
                    change = f"{diff.mean():+.4f}"
                cells += [f"{acc.mean():.4f}", change]
            lines.append(f"| {data} | {arm} | {len(arm_rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=sorted(MODELS), action="append")
    parser.add_argument("--model", action="append", help="only these generators (default: all in MODELS)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--merge", type=Path, action="append", default=[],
                        help="also summarise the rows of an earlier run's .json (to split a run under the lock)")
    parser.add_argument("--steps", type=int, default=600, help="CNN updates per classifier")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "image_augment.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = [r for path in args.merge for r in json.loads(path.read_text())]
    for data in args.data or ["digits", "fashion-mnist"]:
        rows += run(data, args.model or list(MODELS[data]), args.seeds, args.steps)
    text = summarise(rows, args.steps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(text)


if __name__ == "__main__":
    main()

"""The demo's image model at demo size: fit seconds and the gate's verdict, without running the pipeline.

    flock /work/heavy.lock env PYTHONPATH=. .venv/bin/python bench/image_demo_size.py --params '{"epochs": 12}'
Like `make demo`: Fashion-MNIST's 10,000 test images, a stratified 20% holdout, the default image generator
(seed 0) with the given params, 2,000 images sampled (seed 0) and gated against the training part and the holdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))
os.environ.setdefault("XDG_DATA_HOME", str(ROOT / "data" / ".xdg"))

from bench.image_data import fashion_mnist, stratified_split  # noqa: E402
from bench.images import SHOWN  # noqa: E402
from generators.data import ImageData  # noqa: E402
from generators.registry import default_generator, make_generator  # noqa: E402
from quality.image import evaluate_images  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", action="append", required=True, help="JSON params of the default generator")
    args = parser.parse_args()
    px, labels = fashion_mnist("test")
    train, holdout = stratified_split(labels, [8000, 2000], seed=0)
    for text in args.params:
        params = json.loads(text)
        t = time.perf_counter()
        gen = make_generator(default_generator("image"), seed=0, **params).fit(ImageData(px[train], labels[train]))
        fit_s = time.perf_counter() - t
        sample = gen.sample(2000, seed=0)
        report = evaluate_images(px[train], labels[train], sample.pixels, sample.labels, px[holdout],
                                 labels[holdout], seed=0)
        print(json.dumps({"params": params, "fit_s": round(fit_s, 1), "passed": report.passed,
                          "failing": report.failing,
                          "values": {c.name: round(c.value, 4) for c in report if c.name in SHOWN
                                     and c.value is not None}}), flush=True)


if __name__ == "__main__":
    main()

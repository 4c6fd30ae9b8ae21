"""Real sequence panels the project can read offline, as long frames (id, step, context..., values...).

- basic_motions, japanese_vowels, gunpoint, italy_power: the UEA/UCR files bundled in the sktime 1.2.0 wheel,
  read straight from the zip (sktime is never imported). Fetch the wheel once with
      .venv/bin/python -m pip download --no-deps sktime==1.2.0 -d data/.cache/sktime
  TRAIN and TEST files are pooled; the class label is the context column `label`.
- mitdb: MIT-BIH ECG record (data/raw/mitdb/mitdb.csv, 7,500 samples, one long series with a beat label), cut
  into consecutive segments (`segment`) by `quality.sequence.segment_series`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
WHEEL_DIR = ROOT / "data" / ".cache" / "sktime"
UEA = {"basic_motions": "BasicMotions", "japanese_vowels": "JapaneseVowels", "gunpoint": "GunPoint",
       "italy_power": "ItalyPowerDemand"}


def _wheel() -> Path:
    wheels = sorted(WHEEL_DIR.glob("sktime-1.2.0-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"no sktime 1.2.0 wheel in {WHEEL_DIR}; fetch it with: python -m pip download "
                                f"--no-deps sktime==1.2.0 -d {WHEEL_DIR}")
    return wheels[0]


def parse_ts(text: str, first_id: int = 0) -> pd.DataFrame:
    """A .ts file (dimensions separated by ':', the class label last) as a long frame."""
    rows = []
    lines = iter(text.splitlines())
    for line in lines:
        if line.strip().lower() == "@data":
            break
    for i, line in enumerate(l for l in lines if l.strip()):
        *dims, label = line.strip().split(":")
        series = [np.array([np.nan if v == "?" else float(v) for v in d.split(",")]) for d in dims]
        n = max(len(s) for s in series)
        block = {"id": first_id + i, "step": np.arange(n), "label": label}
        for j, s in enumerate(series):
            block[f"dim{j}" if len(series) > 1 else "value"] = np.r_[s, np.full(n - len(s), np.nan)]
        rows.append(pd.DataFrame(block))
    return pd.concat(rows, ignore_index=True)


def load_uea(name: str) -> pd.DataFrame:
    """TRAIN and TEST of a bundled UEA/UCR problem pooled, ids unique across both."""
    problem = UEA[name]
    with zipfile.ZipFile(_wheel()) as zf:
        train = parse_ts(zf.read(f"sktime/datasets/data/{problem}/{problem}_TRAIN.ts").decode("utf-8"))
        test = parse_ts(zf.read(f"sktime/datasets/data/{problem}/{problem}_TEST.ts").decode("utf-8"),
                        first_id=int(train["id"].max()) + 1)
    return pd.concat([train, test], ignore_index=True)


def load_mitdb(segment: int = 60) -> pd.DataFrame:
    """The ECG record cut into `segment`-step segments, `label` kept as a per-step categorical value."""
    from quality.sequence import segment_series

    frame = pd.read_csv(ROOT / "data" / "raw" / "mitdb" / "mitdb.csv")
    frame.insert(0, "step", np.arange(len(frame)))
    frame["label"] = frame["label"].astype(str)
    return segment_series(frame, segment, time="step", column="id")


def load_panel(name: str) -> tuple[pd.DataFrame, str, str]:
    """(frame, time column, entity column)."""
    if name == "mitdb":
        return load_mitdb(), "step", "id"
    return load_uea(name), "step", "id"


PANELS = ["basic_motions", "japanese_vowels", "gunpoint", "italy_power", "mitdb"]

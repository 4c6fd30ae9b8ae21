"""Fixtures for the generator tests: a hand-made frame with every column kind (real Adult: `adult_small`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("XDG_DATA_HOME", str(Path(__file__).resolve().parents[2] / "data" / ".xdg"))


def make_mixed_frame(n: int = 240, seed: int = 7) -> pd.DataFrame:
    """Every column kind: ids, integers (one nullable), floats with nulls, categoricals with a rare value,
    booleans, datetimes with nulls, a constant column and a 0/1 class label."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    segment = rng.choice(["retail", "business", "private"], n, p=[0.6, 0.3, 0.1]).astype(object)
    segment[:2] = "rare"  # a category seen twice only
    income = np.round(1000 + 40 * age + rng.normal(0, 300, n), 2)
    income[rng.random(n) < 0.1] = np.nan
    visits = pd.array(rng.poisson(3, n), dtype="Int64")
    visits[rng.random(n) < 0.1] = pd.NA
    opened = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")
    opened = pd.Series(opened)
    opened[rng.random(n) < 0.05] = pd.NaT
    return pd.DataFrame({
        "customer_id": np.arange(10_000, 10_000 + n),
        "account_key": [f"acct-{i:05d}" for i in rng.permutation(n)],
        "age": age,
        "segment": segment,
        "income": income,
        "visits": visits,
        "active": rng.random(n) < 0.7,
        "opened": opened,
        "country": "NL",
        "Class": (rng.random(n) < 0.25).astype(np.int64),
    })


@pytest.fixture
def mixed_frame() -> pd.DataFrame:
    return make_mixed_frame()


@pytest.fixture(scope="session")
def mixed_frame_factory():
    """The builder itself, for module-scoped fixtures (each call returns a fresh frame)."""
    return make_mixed_frame


def make_panel(n_entities: int = 24, seed: int = 3) -> "SequenceData":
    """A panel of short daily series of varying length: a context column (region, constant per entity), two
    value columns (one numeric with a few gaps, one categorical) and a trend that differs by region."""
    from generators.data import SequenceData

    rng = np.random.default_rng(seed)
    rows = []
    for e in range(n_entities):
        region = ["north", "south"][e % 2]
        length = int(rng.integers(8, 15))
        start = pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(rng.integers(0, 30)))
        level = (10.0 if region == "north" else 20.0) + rng.normal(0, 1)
        for t in range(length):
            level += rng.normal(0.5, 0.3)
            rows.append({"store": f"s{e:03d}", "day": start + pd.Timedelta(days=t), "region": region,
                         "sales": np.nan if rng.random() < 0.05 else round(level, 3),
                         "promo": "yes" if rng.random() < 0.3 else "no"})
    return SequenceData(pd.DataFrame(rows), time="day", entity="store")


def make_images(n: int = 60, seed: int = 5, channels: int = 1) -> "ImageData":
    """Tiny 8x8 images of three labelled shapes (a bar, a square, a cross) with noise, uint8."""
    from generators.data import ImageData

    rng = np.random.default_rng(seed)
    labels = np.array([["bar", "square", "cross"][i % 3] for i in range(n)], dtype=object)
    px = rng.integers(0, 40, (n, 8, 8, channels)).astype(np.int64)
    for i, lab in enumerate(labels):
        if lab == "bar":
            px[i, :, 3:5] += 200
        elif lab == "square":
            px[i, 2:6, 2:6] += 200
        else:
            px[i, 3:5, :] += 150
            px[i, :, 3:5] += 150
    return ImageData(np.clip(px, 0, 255).astype(np.uint8), labels)


KIND_DATA = {"tabular": make_mixed_frame, "timeseries": make_panel, "image": make_images}


@pytest.fixture(scope="session")
def kind_data():
    """{kind: builder of a small fresh fixture of that kind} for the contract test over every (generator, kind)."""
    return KIND_DATA

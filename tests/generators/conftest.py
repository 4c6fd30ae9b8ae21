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

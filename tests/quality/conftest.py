"""Hand-made tables whose quality answers are known: correlated mixed columns drawn from one generator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def draw_table(n: int, seed: int) -> pd.DataFrame:
    """Strongly dependent columns: y ~ 2x, band = sign(x) (5% flipped), a free colour, a Poisson count."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = 2.0 * x + rng.normal(scale=0.3, size=n)
    band = np.where((x > 0) ^ (rng.random(n) < 0.05), "high", "low").astype(object)
    colour = rng.choice(["red", "green", "blue"], size=n, p=[0.5, 0.3, 0.2]).astype(object)
    count = rng.poisson(3 + 2 * (x > 0), size=n).astype("int64")
    return pd.DataFrame({"x": x, "y": y, "band": band, "colour": colour, "count": count})


@pytest.fixture
def tables():
    """(train, holdout, independent sample) from the same distribution, equal sizes."""
    return draw_table(800, 1), draw_table(800, 2), draw_table(800, 3)

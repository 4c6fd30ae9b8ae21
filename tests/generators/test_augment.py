"""The augmentation helper: real rows untouched, synthetic rows of the rare value flagged, no copies of real rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from generators.augment import augment_frame, copied_rows, rare_value
from generators.errors import ConditionError, InvalidDataError


@pytest.fixture
def frame():
    """A label y (5% yes) that depends on a and x, a 2% tier, all before nothing: y is in the middle."""
    rng = np.random.default_rng(2)
    n = 3_000
    a = rng.choice(["a0", "a1", "a2"], n)
    x = rng.normal(0, 1, n)
    y = np.where(rng.random(n) < np.where(a == "a2", 0.1, 0.025) * (1 + (x > 1)), "yes", "no")
    tier = np.where(rng.random(n) < 0.02, "platinum", "basic")
    return pd.DataFrame({"a": a, "y": y, "x": x, "tier": tier})


def test_augment_adds_flagged_rare_rows_and_keeps_the_real_ones(frame):
    before = frame.copy(deep=True)
    out = augment_frame(frame, "y", n_rows=150, params={"epochs": 3}, seed=1)
    pd.testing.assert_frame_equal(frame, before)
    assert list(out.columns) == [*frame.columns, "synthetic"] and len(out) == len(frame) + 150
    real, synthetic = out[~out["synthetic"]], out[out["synthetic"]]
    pd.testing.assert_frame_equal(real.drop(columns="synthetic").reset_index(drop=True), frame)
    assert (synthetic["y"] == "yes").all()
    assert not copied_rows(synthetic.drop(columns="synthetic"), frame).any()


def test_augment_by_ratio_types_the_value_and_picks_the_rarest(frame):
    assert rare_value(frame, "y") == "yes"
    have = int((frame["tier"] == "platinum").sum())
    out = augment_frame(frame, "tier", ratio=2.0, params={"epochs": 3}, seed=0)
    assert int(out["synthetic"].sum()) == 2 * have and (out.loc[out["synthetic"], "tier"] == "platinum").all()


def test_augment_refuses_bad_requests(frame):
    with pytest.raises(InvalidDataError, match="not in the frame"):
        augment_frame(frame, "nope", n_rows=5, generator="cart")
    with pytest.raises(ConditionError, match="never saw"):
        augment_frame(frame, "y", "maybe", n_rows=5, generator="cart")
    with pytest.raises(InvalidDataError, match="exactly one"):
        augment_frame(frame, "y", n_rows=5, ratio=1.0, generator="cart")


def test_augment_refuses_a_model_that_keeps_copying_real_rows(frame):
    """cart draws real values from its leaves: with tiny leaves most rare rows are copies of real ones."""
    with pytest.raises(ConditionError, match="copying real rows"):
        augment_frame(frame, "tier", n_rows=200, generator="cart", params={"min_samples_leaf": 1})


def test_copied_rows_finds_exact_copies_only(frame):
    probe = pd.concat([frame.iloc[:3], frame.iloc[:2].assign(x=frame["x"].iloc[:2] + 1e-3)], ignore_index=True)
    assert copied_rows(probe, frame).tolist() == [True, True, True, False, False]

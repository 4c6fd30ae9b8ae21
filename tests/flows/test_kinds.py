"""flows.kinds: each kind's holdout split and its conversion between the stored layout and the containers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flows.kinds import KindError, images_of, split_holdout, to_container, to_frame
from flows.readers import images_to_frame


def _panel(n_entities=30, seed=0):
    rng = np.random.default_rng(seed)
    rows = [{"id": f"e{e}", "t": t, "v": float(rng.normal())} for e in range(n_entities)
            for t in range(int(rng.integers(3, 9)))]
    return pd.DataFrame(rows)


def test_series_holdout_keeps_whole_entities_apart():
    frame = _panel()
    detail = {"time_column": "t", "id_column": "id"}
    train, hold = split_holdout("timeseries", frame, 0.2, 7, detail)
    assert set(train["id"]).isdisjoint(set(hold["id"]))
    assert hold["id"].nunique() == 6 and train["id"].nunique() == 24
    for entity, group in hold.groupby("id"):  # every held-out series is complete
        assert len(group) == int((frame["id"] == entity).sum())
    assert len(train) + len(hold) == len(frame)
    again = split_holdout("timeseries", frame, 0.2, 7, detail)[1]
    pd.testing.assert_frame_equal(hold, again)


def test_single_long_series_holds_out_its_last_steps():
    frame = pd.DataFrame({"t": np.arange(100)[::-1], "v": np.arange(100.0)})
    train, hold = split_holdout("timeseries", frame, 0.25, 0, {"time_column": "t", "id_column": None})
    assert len(hold) == 25 and hold["t"].min() == 75 and train["t"].max() == 74


def test_series_with_too_few_entities_is_refused():
    frame = _panel(2)
    with pytest.raises(KindError, match="too few"):
        split_holdout("timeseries", frame, 0.2, 0, {"time_column": "t", "id_column": "id"})


def test_image_holdout_is_stratified_by_label():
    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 10 + [None] * 10
    images = np.random.default_rng(1).integers(0, 255, (100, 4, 4, 1)).astype(np.uint8)
    frame, _ = images_to_frame(images, labels, [f"x{i}" for i in range(100)])
    train, hold = split_holdout("image", frame, 0.2, 3)
    counts = hold["label"].value_counts(dropna=False).to_dict()
    assert counts["a"] == 10 and counts["b"] == 6 and counts["c"] == 2
    assert hold["label"].isna().sum() == 2
    assert set(train["id"]).isdisjoint(hold["id"]) and len(train) + len(hold) == 100


def test_images_round_trip_through_the_ingest_layout():
    images = np.random.default_rng(2).integers(0, 255, (6, 5, 4, 3)).astype(np.uint8)
    frame, _ = images_to_frame(images, ["x", "y", None, "x", "y", "x"], [f"f{i}" for i in range(6)])
    data = to_container("image", frame)
    assert data.pixels.shape == (6, 5, 4, 3) and data.pixels.dtype == np.uint8
    assert np.array_equal(data.pixels, images) and list(data.labels) == ["x", "y", None, "x", "y", "x"]
    back = to_frame("image", data)
    assert list(back.columns) == ["id", "label", "height", "width", "channels", "dtype", "origin", "pixels"]
    assert np.array_equal(images_of(back).pixels, images)


def test_float_or_mixed_size_images_are_refused_for_generators():
    frame, _ = images_to_frame(np.zeros((3, 2, 2, 1), np.float32), ["a", "b", "c"], ["1", "2", "3"])
    with pytest.raises(KindError, match="uint8"):
        images_of(frame)
    frame, _ = images_to_frame(np.zeros((3, 2, 2, 1), np.uint8), ["a", "b", "c"], ["1", "2", "3"])
    frame.loc[1, "height"] = 3
    with pytest.raises(KindError, match="differ in height"):
        images_of(frame)


def test_series_without_a_recorded_time_column_is_refused():
    with pytest.raises(KindError, match="time column"):
        to_container("timeseries", _panel(), {})

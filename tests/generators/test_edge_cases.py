"""Focused behaviour beyond the shared contract: persistence safety, rejection limits, model-specific knobs."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from generators.base import MODEL_FILE, Generator
from generators.errors import (ConditionUnreachableError, GeneratorError, InvalidDataError, ModelFormatError,
                               UnknownGeneratorError, UnsafeModelError, VersionMismatchWarning)
from generators.registry import get_generator_class, make_generator
from generators.safe_state import StateReader, StateWriter


def test_unknown_generator_names_the_choices():
    with pytest.raises(UnknownGeneratorError, match="cart"):
        get_generator_class("nope")
    with pytest.raises(GeneratorError, match="bad parameters"):
        make_generator("cart", not_a_param=1)


def test_fit_rejects_empty_and_all_null_tables():
    with pytest.raises(InvalidDataError):
        make_generator("cart").fit(pd.DataFrame({"a": pd.Series([], dtype=float)}))
    with pytest.raises(InvalidDataError, match="entirely null"):
        make_generator("cart").fit(pd.DataFrame({"a": [1.0, 2.0], "b": [np.nan, np.nan]}))


def test_only_ids_and_constants_still_sample():
    data = pd.DataFrame({"row_id": [1, 2, 3], "k": ["x", "x", "x"]})
    s = make_generator("cart").fit(data).sample(4, seed=0)
    assert s["row_id"].tolist() == [4, 5, 6, 7] and (s["k"] == "x").all()


def _saved(tmp_path, mixed_frame):
    gen = make_generator("cart").fit(mixed_frame)
    gen.save(tmp_path / "m")
    return gen, tmp_path / "m"


def test_load_warns_about_other_library_versions(tmp_path, mixed_frame):
    gen, path = _saved(tmp_path, mixed_frame)
    doc = json.loads((path / MODEL_FILE).read_text())
    doc["versions"]["numpy"] = "0.0.1"
    (path / MODEL_FILE).write_text(json.dumps(doc))
    with pytest.warns(VersionMismatchWarning, match="numpy 0.0.1"):
        loaded = Generator.load(path)
    pd.testing.assert_frame_equal(loaded.sample(5, seed=1), gen.sample(5, seed=1))


def test_load_refuses_other_formats_and_missing_dirs(tmp_path, mixed_frame):
    _, path = _saved(tmp_path, mixed_frame)
    doc = json.loads((path / MODEL_FILE).read_text())
    doc["format_version"] = 99
    (path / MODEL_FILE).write_text(json.dumps(doc))
    with pytest.raises(ModelFormatError, match="format"):
        Generator.load(path)
    with pytest.raises(ModelFormatError, match="no model.json"):
        Generator.load(tmp_path / "nowhere")
    doc["format_version"], doc["generator"] = 1, "nope"
    (path / MODEL_FILE).write_text(json.dumps(doc))
    with pytest.raises(ModelFormatError, match="unknown generator 'nope'"):
        Generator.load(path)


def test_safe_state_refuses_classes_outside_the_allow_list():
    with pytest.raises(UnsafeModelError):
        StateReader({}).decode({"__obj__": "os:system", "ref": 0, "state": {"__dict__": [], "ordered": False}})
    with pytest.raises(UnsafeModelError):
        StateReader({}).decode({"__class__": "subprocess:Popen"})
    with pytest.raises(UnsafeModelError):
        StateWriter().encode(warnings.catch_warnings())


def test_safe_state_round_trips_shared_references():
    import torch

    layer = torch.nn.Linear(3, 2)
    graph = {"a": layer, "b": layer, "rs": np.random.RandomState(3), "t": (1, None, float("nan"))}
    writer = StateWriter()
    doc = json.loads(json.dumps(writer.encode(graph)))
    back = StateReader(writer.arrays).decode(doc)
    assert back["a"] is back["b"]
    assert torch.equal(back["a"].weight, layer.weight)
    assert back["rs"].randint(1000) == np.random.RandomState(3).randint(1000)
    assert back["t"][0] == 1 and np.isnan(back["t"][2])


def test_unreachable_condition_raises_with_counts(mixed_frame):
    gen = make_generator("cart").fit(mixed_frame)
    gen.max_rejection_draws = 3000
    with pytest.raises(ConditionUnreachableError, match="after drawing"):
        gen.sample(2000, seed=0, conditions={"segment": "rare"})


def test_cart_leaf_size_is_the_privacy_knob(adult_small):
    """Bigger leaves mix more real rows per draw, so fewer synthetic rows copy a real row exactly."""
    def copy_rate(leaf):
        s = make_generator("cart", min_samples_leaf=leaf).fit(adult_small).sample(600, seed=0)
        real = set(map(tuple, adult_small.astype(str).to_numpy()))
        return np.mean([tuple(r) in real for r in s.astype(str).to_numpy()])

    assert copy_rate(1) > copy_rate(50) + 0.1


def test_autoregressive_stops_early_and_keeps_history(adult_small):
    gen = make_generator("autoregressive", epochs=60, patience=1, hidden=32, max_bins=8, learning_rate=0.02,
                         seed=1).fit(adult_small)
    assert 1 <= gen.epochs_run_ < 60
    assert [h["epoch"] for h in gen.history_] == list(range(1, gen.epochs_run_ + 1))


def test_autoregressive_numerics_are_fresh_values(adult_small):
    """Continuous columns are drawn inside quantile bins, not copied from the training rows."""
    gen = make_generator("autoregressive", epochs=3, seed=0).fit(adult_small)
    s = gen.sample(500, seed=0)
    assert s["fnlwgt"].isin(adult_small["fnlwgt"]).mean() < 0.2
    lo, hi = adult_small["fnlwgt"].min(), adult_small["fnlwgt"].max()
    assert s["fnlwgt"].between(lo, hi).all()


def test_autoregressive_calibration_matches_marginals(adult_small):
    """Bias calibration on the model's own samples brings every column's marginal to the data's."""
    def worst_tvd(calibrate):
        gen = make_generator("autoregressive", epochs=3, calibrate=calibrate, seed=0).fit(adult_small)
        s = gen.sample(4000, seed=0)
        cols = ["workclass", "education", "marital_status", "occupation", "relationship", "race", "sex", "income"]
        return max(0.5 * (s[c].value_counts(normalize=True)
                          .sub(adult_small[c].value_counts(normalize=True), fill_value=0).abs().sum())
                   for c in cols)

    calibrated, raw = worst_tvd(True), worst_tvd(False)
    assert calibrated < 0.04 and calibrated < raw

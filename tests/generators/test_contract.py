"""One contract every registered tabular generator must meet (no per-model branches)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from generators.base import MODEL_FILE, WEIGHTS_FILE, Generator
from generators.errors import ConditionError, InvalidSampleSizeError, NotFittedError
from generators.registry import REGISTRY, list_generators, make_generator

NAMES = list_generators("tabular")


def new(name: str) -> Generator:
    return make_generator(name, **REGISTRY[name].test_params)


@pytest.fixture(scope="module", params=NAMES)
def fitted(request, mixed_frame_factory):
    """(generator fitted on the mixed frame, the frame it was given, a copy taken before fitting)."""
    data = mixed_frame_factory()
    before = data.copy(deep=True)
    gen = new(request.param).fit(data)
    return gen, data, before


@pytest.mark.parametrize("name", NAMES)
def test_sample_and_save_before_fit_raise(name, tmp_path):
    gen = new(name)
    with pytest.raises(NotFittedError):
        gen.sample(5)
    with pytest.raises(NotFittedError):
        gen.save(tmp_path / "m")


def test_fit_does_not_mutate_input(fitted):
    _, data, before = fitted
    pd.testing.assert_frame_equal(data, before)


def test_sample_has_rows_columns_kinds_and_allowed_nulls(fitted):
    gen, data, _ = fitted
    s = gen.sample(150, seed=3)
    assert len(s) == 150
    assert list(s.columns) == list(data.columns)
    assert gen.schema_.check_frame(s) == []
    # ids are fresh, never copied from the training table
    assert not set(s["customer_id"]) & set(data["customer_id"])
    assert not set(s["account_key"]) & set(data["account_key"])
    # integers stay within the real range, categories within the real set, constants constant
    assert s["age"].between(data["age"].min(), data["age"].max()).all()
    assert set(s["segment"]) <= set(data["segment"])
    assert (s["country"] == "NL").all()
    assert s["opened"].dropna().between(data["opened"].min(), data["opened"].max()).all()


def test_same_seed_same_sample(fitted):
    gen, _, _ = fitted
    a, b, c = gen.sample(80, seed=11), gen.sample(80, seed=11), gen.sample(80, seed=12)
    pd.testing.assert_frame_equal(a, b)
    assert not a.drop(columns=["customer_id", "account_key", "country"]).equals(
        c.drop(columns=["customer_id", "account_key", "country"]))


def test_save_load_round_trips_exactly(fitted, tmp_path):
    gen, _, _ = fitted
    gen.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == sorted([MODEL_FILE, WEIGHTS_FILE])
    doc = json.loads((tmp_path / "model" / MODEL_FILE).read_text())
    assert doc["generator"] == gen.name and doc["versions"]["numpy"] == np.__version__
    loaded = Generator.load(tmp_path / "model")
    assert type(loaded) is type(gen) and loaded.get_params() == gen.get_params()
    pd.testing.assert_frame_equal(loaded.sample(60, seed=5), gen.sample(60, seed=5), check_exact=True)
    pd.testing.assert_frame_equal(loaded.sample(40, seed=6, conditions={"Class": 1}),
                                  gen.sample(40, seed=6, conditions={"Class": 1}), check_exact=True)


def _arrays_in(obj, seen=None):
    """Every numpy array and torch tensor reachable from obj's attributes, containers and torch modules."""
    import torch

    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, (str, bytes, int, float, type, pd.DataFrame, pd.Series, pd.Index)):
        return
    seen.add(id(obj))
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        yield obj
        return
    if isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = list(obj)
    else:
        children = list(getattr(obj, "__dict__", {}).values())
    for child in children:
        yield from _arrays_in(child, seen)


def test_fitted_state_is_canonical(fitted, tmp_path):
    """Fitted state is what load rebuilds: C-contiguous arrays in memory and on disk, re-saved byte for byte."""
    gen, _, _ = fitted
    state_arrays = gen._get_state()[1]
    assert state_arrays and all(a.flags.c_contiguous for a in state_arrays.values())
    for a in _arrays_in(gen):
        assert a.flags.c_contiguous if isinstance(a, np.ndarray) else a.is_contiguous(), (a.shape, a.dtype)
    gen.save(tmp_path / "a")
    loaded = Generator.load(tmp_path / "a")
    for a in _arrays_in(loaded):
        assert a.flags.c_contiguous if isinstance(a, np.ndarray) else a.is_contiguous(), (a.shape, a.dtype)
    loaded.save(tmp_path / "b")
    for name in (MODEL_FILE, WEIGHTS_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert loaded.sample(60, seed=5).equals(gen.sample(60, seed=5))


def test_conditional_sampling_honours_the_condition(fitted):
    gen, _, _ = fitted
    s = gen.sample(40, seed=1, conditions={"Class": 1})
    assert len(s) == 40 and (s["Class"] == 1).all()
    s = gen.sample(30, seed=1, conditions={"segment": "business", "active": True})
    assert len(s) == 30 and (s["segment"] == "business").all() and s["active"].all()
    # values typed on a command line arrive as text
    assert (gen.sample(10, seed=1, conditions={"Class": "1"})["Class"] == 1).all()


@pytest.mark.parametrize("conditions", [{"nope": 1}, {"segment": "wholesale"}, {"Class": 7},
                                        {"customer_id": 10_001}, {"income": 3000.0}, {"country": "BE"}])
def test_bad_conditions_raise(fitted, conditions):
    gen, _, _ = fitted
    with pytest.raises(ConditionError):
        gen.sample(5, conditions=conditions)


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_bad_sample_size_raises(fitted, n):
    gen, _, _ = fitted
    with pytest.raises(InvalidSampleSizeError):
        gen.sample(n)

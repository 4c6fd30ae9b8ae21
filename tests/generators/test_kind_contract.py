"""The contract every registered generator meets, whatever kind of data it learns (no per-model branches).

Each (generator, kind) pair fits its kind's fixture from the `kind_data` fixture; the tabular-only promises
(schemas, conditions, ids) are in `test_contract.py`, each kind's own in its tests.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from generators.base import MODEL_FILE, WEIGHTS_FILE, Generator
from generators.data import KINDS, ImageData, SequenceData, kind_of
from generators.errors import InvalidDataError, InvalidSampleSizeError, ModelFormatError, NotFittedError
from generators.registry import DEFAULT_GENERATORS, REGISTRY, default_generator, make_generator

PAIRS = [(name, entry.kind) for name, entry in REGISTRY.items()]


def _count(data) -> int:
    if isinstance(data, pd.DataFrame):
        return len(data)
    if isinstance(data, SequenceData):
        return int(data.frame[data.entity].nunique()) if data.entity else 1
    return len(data)


def _frame(data):
    """What two samples are compared by (ids of the kind's fresh entities included)."""
    if isinstance(data, SequenceData):
        return data.frame
    if isinstance(data, ImageData):
        return pd.DataFrame({"pixels": [p.tobytes() for p in data.pixels],
                             "label": list(data.labels) if data.labels is not None else None})
    return data


def _same_data(a, b) -> bool:
    before, after = _frame(a), _frame(b)
    if isinstance(a, ImageData) and not np.array_equal(a.pixels, b.pixels):
        return False
    return before.equals(after)


@pytest.fixture(scope="module", params=PAIRS, ids=[f"{n}-{k}" for n, k in PAIRS])
def fitted(request, kind_data):
    name, kind = request.param
    data = kind_data[kind]()
    before = copy.deepcopy(data)
    gen = make_generator(name, **REGISTRY[name].test_params).fit(data)
    return gen, data, before


def test_registry_kinds_are_declared_and_match_the_classes():
    for name, entry in REGISTRY.items():
        assert entry.kind in KINDS, name
        assert entry.load_class().kind == entry.kind, name
        assert entry.load_class().name == name, name
    for kind, name in DEFAULT_GENERATORS.items():
        assert kind in KINDS
        if name is not None:
            assert REGISTRY[name].kind == kind and default_generator(kind) == name


@pytest.mark.parametrize("name,kind", PAIRS)
def test_unfitted_model_refuses_to_sample_or_save(name, kind, tmp_path):
    gen = make_generator(name, **REGISTRY[name].test_params)
    with pytest.raises(NotFittedError):
        gen.sample(3)
    with pytest.raises(NotFittedError):
        gen.save(tmp_path / "m")


@pytest.mark.parametrize("name,kind", PAIRS)
def test_data_of_another_kind_is_refused(name, kind, kind_data):
    other = next(k for k in KINDS if k != kind)
    with pytest.raises(InvalidDataError, match=kind):
        make_generator(name, **REGISTRY[name].test_params).fit(kind_data[other]())


def test_fit_does_not_mutate_its_input(fitted):
    _, data, before = fitted
    assert _same_data(data, before)


def test_sample_is_the_kinds_container_of_n_items(fitted):
    gen, data, _ = fitted
    s = gen.sample(7, seed=1)
    assert kind_of(s) == gen.kind == kind_of(data)
    assert _count(s) == 7


def test_same_seed_same_sample_other_seed_other_sample(fitted):
    gen, _, _ = fitted
    a, b, c = gen.sample(12, seed=4), gen.sample(12, seed=4), gen.sample(12, seed=5)
    assert _same_data(a, b)
    assert not _same_data(a, c)


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_bad_sample_sizes_are_refused(fitted, n):
    gen, _, _ = fitted
    with pytest.raises(InvalidSampleSizeError):
        gen.sample(n)


def test_save_load_is_bit_identical_and_resaves_byte_for_byte(fitted, tmp_path):
    gen, _, _ = fitted
    gen.save(tmp_path / "a")
    doc = json.loads((tmp_path / "a" / MODEL_FILE).read_text())
    assert doc["generator"] == gen.name and doc["kind"] == gen.kind
    loaded = Generator.load(tmp_path / "a")
    assert type(loaded) is type(gen) and loaded.get_params() == gen.get_params()
    assert _same_data(loaded.sample(9, seed=3), gen.sample(9, seed=3))
    loaded.save(tmp_path / "b")
    for name in (MODEL_FILE, WEIGHTS_FILE):
        if (tmp_path / "a" / name).exists():
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_a_file_claiming_another_kind_is_refused(fitted, tmp_path):
    gen, _, _ = fitted
    gen.save(tmp_path / "m")
    doc = json.loads((tmp_path / "m" / MODEL_FILE).read_text())
    doc["kind"] = next(k for k in KINDS if k != gen.kind)
    (tmp_path / "m" / MODEL_FILE).write_text(json.dumps(doc))
    with pytest.raises(ModelFormatError, match="kind"):
        Generator.load(tmp_path / "m")


def test_fitted_state_is_canonical_for_every_kind(fitted):
    """What a fitted model computes with is what load rebuilds: every saved array one C-contiguous block of a fixed
    dtype, every torch tensor the model holds contiguous, so fitted and loaded models take the same kernels on any
    CPU."""
    import torch

    gen, _, _ = fitted
    _, arrays = gen._get_state()
    for key, a in arrays.items():
        assert a.flags.c_contiguous and a.dtype.kind in "biuf" and a.dtype.isnative, (key, a.dtype)
    modules = [v for v in vars(gen).values() if isinstance(v, torch.nn.Module)]
    for module in modules:
        for name, t in [*module.named_parameters(), *module.named_buffers()]:
            assert t.is_contiguous(), name

"""One contract every registered detector meets, on every data kind it declares (no per-model branches)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from detectors.base import Detector
from modelkit.files import is_canonical
from detectors.registry import REGISTRY, create_detector

CASES = [(name, kind) for name, spec in REGISTRY.items() for kind in spec.kinds]


def _fit(name, kind, data, **extra):
    spec = REGISTRY[name]
    train = data[0]
    return create_detector(name, kind=kind, seed=0, **spec.test_params, **extra).fit(train)


def _same(a, b):
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name,kind", CASES)
def test_scores_one_per_item_pure_repeatable(name, kind, make_data):
    data = make_data(kind)
    train, test, labels = data
    detector = _fit(name, kind, data)
    test_before = copy.deepcopy(test)
    threshold, train_scores = detector.threshold_, detector.train_scores_.copy()

    first = detector.score(test)
    second = detector.score(test)

    assert first.shape == (len(test),)
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)
    _same(test, test_before)
    assert detector.threshold_ == threshold
    np.testing.assert_array_equal(detector.train_scores_, train_scores)
    assert detector.train_scores_.shape == (len(train),)
    # Same seed + same data => same model.
    np.testing.assert_array_equal(_fit(name, kind, data).score(test), first)


def _fitted_arrays(value, where):
    """(where, array) for every numpy array and torch tensor a fitted attribute holds, modules and trees included."""
    import torch

    if isinstance(value, (np.ndarray, torch.Tensor)):
        yield where, value
    elif isinstance(value, torch.nn.Module):
        for name, tensor in [*value.named_parameters(), *value.named_buffers()]:
            yield f"{where}.{name}", tensor
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _fitted_arrays(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _fitted_arrays(item, f"{where}[{i}]")


def _assert_canonical_state(model):
    """Every fitted array is C-contiguous with standard strides (torch: 64-byte aligned), saved tensors too."""
    found = [(where, a) for name, value in vars(model).items() if name.endswith("_")
             for where, a in _fitted_arrays(value, name)]
    found += [(f"saved {k}", t) for k, t in model._get_state()[1].items()]
    assert found
    bad = [where for where, array in found if not is_canonical(array)]
    assert not bad, f"{len(bad)} arrays not in the canonical layout: {bad[:10]}"


def _assert_weights_file_contiguous(path):
    """Each tensor in a safetensors file is one dense block of shape x item size, the blocks tiling the data."""
    raw = path.read_bytes()
    header_length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_length])
    item = {"F64": 8, "F32": 4, "I64": 8}
    spans = sorted(tuple(entry["data_offsets"]) for key, entry in header.items() if key != "__metadata__")
    for key, entry in header.items():
        if key != "__metadata__":
            begin, end = entry["data_offsets"]
            assert end - begin == int(np.prod(entry["shape"])) * item[entry["dtype"]], key
    assert [b for b, _ in spans] == [0] + [e for _, e in spans[:-1]]
    assert spans[-1][1] == len(raw) - 8 - header_length


@pytest.mark.parametrize("name,kind", CASES)
def test_predict_binary_and_save_load_identical(name, kind, make_data, tmp_path):
    import torch

    data = make_data(kind)
    detector = _fit(name, kind, data)
    predicted = detector.predict(data[1])
    assert set(np.unique(predicted)) <= {0, 1}
    np.testing.assert_array_equal(predicted, (detector.score(data[1]) > detector.threshold_).astype(int))

    detector.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["model.json", "weights.safetensors"]
    _assert_weights_file_contiguous(tmp_path / "model" / "weights.safetensors")
    loaded = Detector.load(tmp_path / "model")
    assert type(loaded) is type(detector)
    _assert_canonical_state(detector)
    _assert_canonical_state(loaded)
    # Bit-identical, whatever the thread count: the fitted and the loaded model run the same kernels on the same
    # memory layout (the conftest runs on one thread; two exercise torch's and MKL's parallel paths).
    for threads in (1, 2):
        torch.set_num_threads(threads)
        np.testing.assert_array_equal(loaded.score(data[1]), detector.score(data[1]))
    torch.set_num_threads(1)
    assert loaded.threshold_ == detector.threshold_
    np.testing.assert_array_equal(loaded.train_scores_, detector.train_scores_)
    np.testing.assert_array_equal(loaded.predict(data[1]), detector.predict(data[1]))


@pytest.mark.parametrize("name,kind", CASES)
def test_planted_outliers_score_above_inliers(name, kind, make_data):
    data = make_data(kind)
    detector = _fit(name, kind, data)
    auroc = roc_auc_score(data[2], detector.score(data[1]))
    floor = REGISTRY[name].auroc_floor[kind]
    assert auroc >= floor, f"{name} on {kind}: AUROC {auroc:.3f} below its declared floor {floor}"

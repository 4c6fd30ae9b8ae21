"""One contract every registered detector meets, on every data kind it declares (no per-model branches)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from detectors.base import Detector
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


@pytest.mark.parametrize("name,kind", CASES)
def test_predict_binary_and_save_load_identical(name, kind, make_data, tmp_path):
    data = make_data(kind)
    detector = _fit(name, kind, data)
    predicted = detector.predict(data[1])
    assert set(np.unique(predicted)) <= {0, 1}
    np.testing.assert_array_equal(predicted, (detector.score(data[1]) > detector.threshold_).astype(int))

    detector.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["model.json", "weights.safetensors"]
    loaded = Detector.load(tmp_path / "model")
    assert type(loaded) is type(detector)
    np.testing.assert_array_equal(loaded.score(data[1]), detector.score(data[1]))
    assert loaded.threshold_ == detector.threshold_
    np.testing.assert_array_equal(loaded.predict(data[1]), detector.predict(data[1]))


@pytest.mark.parametrize("name,kind", CASES)
def test_planted_outliers_score_above_inliers(name, kind, make_data):
    data = make_data(kind)
    detector = _fit(name, kind, data)
    auroc = roc_auc_score(data[2], detector.score(data[1]))
    floor = REGISTRY[name].auroc_floor[kind]
    assert auroc >= floor, f"{name} on {kind}: AUROC {auroc:.3f} below its declared floor {floor}"

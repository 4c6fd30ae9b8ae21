"""Thresholds come from one shared method: contamination, a fixed value, or best F1 on labelled validation."""

import numpy as np
import pytest

from detectors.base import best_f1_threshold
from detectors.errors import LabelError
from detectors.iforest import IsolationForest


def test_contamination_threshold_is_training_quantile(make_data):
    train, test, labels = make_data("tabular")
    detector = IsolationForest(n_estimators=30, contamination=0.05).fit(train)
    assert detector.threshold_source_ == "contamination"
    assert detector.threshold_ == pytest.approx(np.quantile(detector.train_scores_, 0.95))
    assert np.mean(detector.train_scores_ > detector.threshold_) == pytest.approx(0.05, abs=0.01)


def test_fixed_threshold_wins(make_data):
    train, test, labels = make_data("tabular")
    detector = IsolationForest(n_estimators=30, threshold=0.55).fit(train, validation_data=test,
                                                                      validation_labels=labels)
    assert detector.threshold_ == 0.55 and detector.threshold_source_ == "fixed"


def test_best_f1_on_validation_labels(make_data):
    train, test, labels = make_data("tabular")
    detector = IsolationForest(n_estimators=30).fit(train, validation_data=test, validation_labels=labels)
    assert detector.threshold_source_ == "best_f1"
    scores = detector.score(test)
    predicted = scores > detector.threshold_
    tp = np.sum(predicted & (labels == 1))
    f1 = 2 * tp / (predicted.sum() + labels.sum())
    assert f1 == pytest.approx(detector.validation_f1_)
    # No other cut of the validation scores does better.
    for t in np.unique(scores):
        p = scores > t
        assert 2 * np.sum(p & (labels == 1)) / (p.sum() + labels.sum()) <= f1 + 1e-12


def test_best_f1_threshold_on_separable_scores():
    threshold, f1 = best_f1_threshold(np.array([0.1, 0.2, 0.3, 0.9, 0.95]), np.array([0, 0, 0, 1, 1]))
    assert f1 == 1.0 and 0.3 <= threshold < 0.9


def test_calibrate_threshold_sets_best_f1(make_data):
    train, test, labels = make_data("tabular")
    detector = IsolationForest(n_estimators=30).fit(train)
    before = detector.threshold_
    after = detector.calibrate_threshold(test, labels)
    assert detector.threshold_source_ == "best_f1" and after == detector.threshold_ != before


@pytest.mark.parametrize("labels,match", [
    (np.zeros(96, dtype=int), "one class"),
    (np.ones(10, dtype=int), "one 0/1 value per item"),
    (np.full(96, 2), "0 \\(normal\\) or 1"),
])
def test_bad_validation_labels(make_data, labels, match):
    train, test, _ = make_data("tabular")
    with pytest.raises(LabelError, match=match):
        IsolationForest(n_estimators=10).fit(train, validation_data=test, validation_labels=labels)

"""Known anomalies passed to fit(labels=...) stay out of training: rows, images, and series windows."""

import numpy as np
import pytest

from detectors.autoencoder import Autoencoder
from detectors.errors import LabelError
from detectors.iforest import IsolationForest
from detectors.windows import window_starts


def test_labelled_rows_are_not_trained_on(make_data):
    train, test, test_labels = make_data("tabular")
    mixed = __import__("pandas").concat([train, test], ignore_index=True)
    labels = np.r_[np.zeros(len(train), int), test_labels]
    detector = IsolationForest(n_estimators=30).fit(mixed, labels=labels)
    assert detector.n_train_ == int((labels == 0).sum())
    # Threshold statistics describe the normal items only.
    assert len(detector.train_scores_) == int((labels == 0).sum())
    clean = IsolationForest(n_estimators=30).fit(mixed[labels == 0].reset_index(drop=True))
    np.testing.assert_allclose(detector.score(test), clean.score(test))


def test_series_windows_covering_a_labelled_point_are_dropped(make_data):
    train, _, _ = make_data("timeseries")
    labels = np.zeros(len(train), int)
    labels[200:210] = 1
    detector = IsolationForest(n_estimators=30, window_length=16, window_stride=4).fit(train, labels=labels)
    starts = window_starts(len(train), 16, 4)
    clean = [s for s in starts if not labels[s:s + 16].any()]
    assert detector.n_train_ == len(clean) < len(starts)
    assert len(detector.train_scores_) == int((labels == 0).sum())
    unlabelled = IsolationForest(n_estimators=30, window_length=16, window_stride=4).fit(train)
    assert unlabelled.n_train_ == len(starts)


def test_training_on_a_planted_anomaly_hides_it_and_labels_undo_that(make_data):
    train, _, _ = make_data("timeseries")
    train = train.copy()
    labels = np.zeros(len(train), int)
    train[300:330] = 3.0
    labels[300:330] = 1
    params = dict(epochs=6, batch_size=32, width=8, latent_dim=4, learning_rate=3e-3, window_length=16,
                  window_stride=2)
    blind = Autoencoder(**params).fit(train)
    told = Autoencoder(**params).fit(train, labels=labels)
    # Relative to normal points, the anomaly stands out more when it was kept out of training.
    def contrast(model):
        scores = model.score(train)
        return scores[labels == 1].mean() / np.median(scores[labels == 0])
    assert contrast(told) > contrast(blind)


def test_all_windows_anomalous_is_a_clear_error(make_data):
    train, _, _ = make_data("timeseries")
    labels = np.zeros(len(train), int)
    labels[::10] = 1
    with pytest.raises(LabelError, match="free of labelled anomalies.*shorter window"):
        IsolationForest(window_length=16).fit(train, labels=labels)


def test_training_labels_must_match_the_items(make_data):
    train, _, _ = make_data("tabular")
    with pytest.raises(LabelError, match="training labels must be one 0/1 value per item"):
        IsolationForest().fit(train, labels=np.zeros(len(train) - 1))
    # All-normal training labels are fine (unlike validation labels, one class is expected here).
    assert IsolationForest(n_estimators=10).fit(train, labels=np.zeros(len(train))).n_train_ == len(train)

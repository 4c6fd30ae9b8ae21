"""Model-specific declared behaviour: GANomaly's score choice, iforest's array scorer, AnoGAN's latent search."""

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest as SkIsolationForest
from sklearn.metrics import roc_auc_score

from detectors.anogan import AnoGAN
from detectors.ganomaly import Ganomaly
from detectors.iforest import IsolationForest

TINY = dict(epochs=6, batch_size=32, width=8, latent_dim=4, learning_rate=2e-3)


def test_ganomaly_default_mode_without_labels_is_blend(make_data):
    train, test, labels = make_data("tabular")
    detector = Ganomaly(**TINY).fit(train)
    assert detector.score_mode_ == "blend" and detector.selection_ == {}


def test_ganomaly_auto_mode_picks_best_validation_average_precision(make_data):
    from sklearn.metrics import average_precision_score

    train, test, labels = make_data("tabular")
    detector = Ganomaly(**TINY).fit(train, validation_data=test, validation_labels=labels)
    assert set(detector.selection_) == {"latent", "blend", "reconstruction"}
    assert detector.score_mode_ == max(detector.selection_, key=detector.selection_.get)
    assert average_precision_score(labels, detector.score(test)) == pytest.approx(
        detector.selection_[detector.score_mode_])


def test_ganomaly_parts_are_standardised_on_training_data(make_data):
    train, test, _ = make_data("tabular")
    detector = Ganomaly(**TINY, score_mode="latent").fit(train)
    assert detector.train_scores_.mean() == pytest.approx(0.0, abs=1e-6)
    assert detector.train_scores_.std() == pytest.approx(1.0, rel=1e-4)
    # The statistics are fixed at fit: scoring a shifted batch does not re-centre it.
    assert detector.score(test).mean() > 0.5


def test_ganomaly_fixed_mode_ignores_labels(make_data):
    train, test, labels = make_data("tabular")
    detector = Ganomaly(**TINY, score_mode="latent").fit(train, validation_data=test, validation_labels=labels)
    assert detector.score_mode_ == "latent"


def test_iforest_array_scorer_matches_sklearn(make_data):
    train, test, _ = make_data("tabular")
    for max_features in (1.0, 0.5):
        detector = IsolationForest(n_estimators=40, max_features=max_features, seed=3).fit(train)
        reference = SkIsolationForest(n_estimators=40, max_features=max_features, random_state=3).fit(
            detector.encoder_.transform(train))
        np.testing.assert_allclose(detector.score(test), -reference.score_samples(detector.encoder_.transform(test)),
                                   rtol=1e-12)


def test_anogan_latent_search_is_pure_and_separates(make_data):
    train, test, labels = make_data("tabular")
    params = dict(TINY, epochs=6, encoder_epochs=6)
    fast = AnoGAN(**params).fit(train)
    slow = AnoGAN(**params, search_steps=10).fit(train)
    first = slow.score(test)
    np.testing.assert_array_equal(first, slow.score(test))
    assert slow.score_mode_ == "search" and fast.score_mode_ == "encoder"
    assert not np.allclose(first, fast.score(test))
    assert roc_auc_score(labels, first) > 0.8
    assert all(p.grad is None for p in slow.generator_.parameters())


def test_ganomaly_contextual_loss_options():
    import torch

    from detectors.ganomaly.loss import GeneratorLoss

    x, x_hat = torch.zeros(2, 3), torch.full((2, 3), 2.0)
    z = torch.zeros(2, 4)
    f = torch.zeros(2, 5)
    assert GeneratorLoss(0, 1, 0, "l1")(x, x_hat, z, z, f, f).item() == 2.0
    assert GeneratorLoss(0, 1, 0, "l2")(x, x_hat, z, z, f, f).item() == 4.0
    assert GeneratorLoss(1, 50, 1)(x, x_hat, z, z + 1, f, f + 1).item() == 1 + 100 + 1

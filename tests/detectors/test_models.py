"""Model-specific declared behaviour: GANomaly's score choice, iforest's array scorer, AnoGAN's latent search."""

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest as SkIsolationForest
from sklearn.metrics import roc_auc_score

from detectors.anogan import AnoGAN
from detectors.ganomaly import Ganomaly
from detectors.iforest import IsolationForest

TINY = dict(epochs=6, batch_size=32, width=8, latent_dim=4, learning_rate=2e-3)


def test_ganomaly_default_mode_without_labels_is_density_blend(make_data):
    train, test, labels = make_data("tabular")
    detector = Ganomaly(**TINY).fit(train)
    assert detector.score_mode_ == "density_blend" and detector.selection_ == {}
    parts = {name: detector._score_prepared(detector._prepare(test), name) for name in ("density", "reconstruction")}
    np.testing.assert_allclose(detector.score(test), 0.75 * parts["density"] + 0.25 * parts["reconstruction"])


def test_ganomaly_density_is_mahalanobis_distance_of_the_code(make_data):
    import torch

    train, test, _ = make_data("tabular")
    detector = Ganomaly(**TINY, score_mode="density").fit(train)
    with torch.no_grad():
        codes_train = detector.generator_(torch.from_numpy(detector._prepare(train)))[1].double().numpy()
        codes_test = detector.generator_(torch.from_numpy(detector._prepare(test)))[1].double().numpy()
    mean, cov = codes_train.mean(axis=0), np.cov(codes_train.T)
    cov += 1e-6 * np.mean(np.diag(cov)) * np.eye(len(cov))  # the declared ridge
    diff = codes_test - mean
    by_hand = np.einsum("ij,jk,ik->i", diff, np.linalg.inv(cov), diff)
    standardised = (by_hand - detector.part_stats_["density"][0]) / detector.part_stats_["density"][1]
    np.testing.assert_allclose(detector.score(test), standardised, rtol=1e-4, atol=1e-4)


def test_ganomaly_reconstruction_weighs_each_feature_by_its_training_error(make_data):
    import torch

    train, test, _ = make_data("tabular")
    detector = Ganomaly(**TINY, score_mode="reconstruction").fit(train)
    x = torch.from_numpy(detector._prepare(train))
    with torch.no_grad():
        per_feature = ((x - detector.generator_(x)[0]) ** 2).double().mean(dim=0)
    # Each feature's scale is its mean squared training error (plus a small floor), so no feature dominates.
    np.testing.assert_allclose(detector.error_scale_.numpy(), per_feature.numpy(), rtol=1e-2)
    parts = detector._parts(detector._prepare(train))
    assert parts["reconstruction"].mean() == pytest.approx(1.0, rel=1e-2)


def test_ganomaly_auto_mode_picks_best_validation_average_precision(make_data):
    from sklearn.metrics import average_precision_score

    train, test, labels = make_data("tabular")
    detector = Ganomaly(**TINY).fit(train, validation_data=test, validation_labels=labels)
    assert set(detector.selection_) == {"latent", "reconstruction", "blend", "density", "density_blend"}
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
        # scored a block of rows at a time: any block size gives the same scores, bit for bit
        whole = detector.score(test)
        detector._SCORE_BLOCK = 7
        np.testing.assert_array_equal(detector.score(test), whole)


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

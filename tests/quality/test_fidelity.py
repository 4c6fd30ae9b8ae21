"""Fidelity metrics on cases with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quality.columns import decile_codes, infer_columns
from quality.errors import TargetError
from quality.fidelity import (
    accuracy, column_metrics, discriminator_auc, encode_binned, pair_metrics, shuffled_columns, tvd, utility,
)


def _all(real, synth):
    spec = infer_columns(real)
    enc = encode_binned(real, synth, spec)
    return spec, column_metrics(real, synth, spec, enc), pair_metrics(real, synth, spec, enc)


def test_tvd_known_values():
    assert tvd(np.array([1, 1]), np.array([1, 1])) == 0.0
    assert tvd(np.array([1, 0]), np.array([0, 1])) == 1.0
    assert tvd(np.array([3, 1]), np.array([1, 1])) == pytest.approx(0.25)


def test_identical_tables_score_perfectly(tables):
    train, _, _ = tables
    _, cols, pairs = _all(train, train.copy())
    assert all(c["tvd"] == 0 and c["missing_diff"] == 0 for c in cols)
    assert all(c["ks"] == 0 for c in cols if c["kind"] == "numeric")
    assert all(p["tvd"] == 0 for p in pairs)
    assert accuracy(cols, pairs)["accuracy"] == 1.0


def test_column_metrics_known_answers():
    real = pd.DataFrame({"n": np.arange(100.0), "c": ["a"] * 50 + ["b"] * 50})
    synth = pd.DataFrame({"n": np.arange(100.0) + 50, "c": ["a"] * 80 + [None] * 20})
    _, cols, _ = _all(real, synth)
    by = {c["column"]: c for c in cols}
    assert by["n"]["ks"] == pytest.approx(0.5)
    # real: a .5 b .5; synthetic: a .8 missing .2 -> TVD = (0.3 + 0.5 + 0.2) / 2
    assert by["c"]["tvd"] == pytest.approx(0.5)
    assert by["c"]["missing_diff"] == pytest.approx(0.2)


def test_deciles_come_from_the_real_data_and_nan_gets_its_own_bin():
    real = np.arange(1.0, 101.0)
    (r, s), k = decile_codes(real, [np.array([-5.0, 1000.0, np.nan])])
    assert k == 11
    assert np.bincount(r).tolist() == [10] * 10
    assert s.tolist() == [0, 9, 10]


def test_shuffled_columns_keep_marginals_and_lose_pairs(tables):
    train, _, fresh = tables
    shuffled = shuffled_columns(train, seed=0)
    _, cols, pairs = _all(train, shuffled)
    assert max(c["tvd"] for c in cols) == 0.0
    xy = next(p for p in pairs if p["columns"] == ["x", "y"])
    assert xy["corr_real"] > 0.9 and abs(xy["corr_synthetic"]) < 0.15
    _, cols_f, pairs_f = _all(train, fresh)
    assert accuracy(cols, pairs)["bivariate"] < accuracy(cols_f, pairs_f)["bivariate"] - 0.1


def test_discriminator_separates_shuffled_but_not_independent_sample(tables):
    train, _, fresh = tables
    spec = infer_columns(train)
    assert discriminator_auc(train, shuffled_columns(train), spec) > 0.85
    assert discriminator_auc(train, fresh, spec) < 0.62


def test_utility_classification_and_regression(tables):
    train, holdout, fresh = tables
    spec = infer_columns(train)
    good = utility(train, fresh, holdout, spec, "band")
    assert good["task"] == "classification" and good["primary"] == "auroc"
    assert good["trtr"]["auroc"] > 0.9 and abs(good["drop"]) < 0.05
    bad = utility(train, shuffled_columns(train), holdout, spec, "band")
    assert bad["drop"] > 0.3
    reg = utility(train, fresh, holdout, spec, "y")
    assert reg["task"] == "regression" and reg["trtr"]["r2"] > 0.8 and abs(reg["drop"]) < 0.05


def test_utility_rejects_unknown_target(tables):
    train, holdout, fresh = tables
    with pytest.raises(TargetError, match="nope"):
        utility(train, fresh, holdout, infer_columns(train), "nope")

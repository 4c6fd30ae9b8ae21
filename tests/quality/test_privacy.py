"""Privacy metrics on cases with known answers: a training copy leaks, an independent sample does not."""

from __future__ import annotations

import pandas as pd
import pytest

from quality.columns import infer_columns
from quality.privacy import duplicate_rate, exact_copy_rate, privacy_metrics


def test_copy_of_training_data_leaks_on_every_metric(tables):
    train, holdout, _ = tables
    m = privacy_metrics(train, train.copy(), holdout, infer_columns(train))
    assert m["exact_copy_rate"] == 1.0
    assert m["holdout_exact_copy_rate"] == 0.0
    assert m["dcr_share"] > 0.95
    assert m["nndr_median"] == 0.0 < m["holdout_nndr_median"]
    assert m["mia_auroc"] > 0.95
    assert (m["arrays"]["dcr_synthetic_to_train"] == 0).all()


def test_independent_sample_looks_like_holdout(tables):
    train, holdout, fresh = tables
    m = privacy_metrics(train, fresh, holdout, infer_columns(train))
    assert m["exact_copy_rate"] == 0.0
    assert 0.43 < m["dcr_share"] < 0.57
    assert 0.8 < m["nndr_median"] / m["holdout_nndr_median"] < 1.25
    assert 0.4 < m["mia_auroc"] < 0.6


def test_half_copied_table_sits_between(tables):
    train, holdout, fresh = tables
    half = pd.concat([train.iloc[:400], fresh.iloc[:400]], ignore_index=True)
    m = privacy_metrics(train, half, holdout, infer_columns(train))
    assert m["exact_copy_rate"] == pytest.approx(0.5)
    assert 0.65 < m["dcr_share"] < 0.85


def test_exact_copy_ignores_int_float_dtype_differences(tables):
    train, _, _ = tables
    spec = infer_columns(train)
    as_float = train.astype({"count": "float64"})
    assert exact_copy_rate(as_float.iloc[:10], train, spec) == 1.0
    changed = as_float.iloc[:10].copy()
    changed["count"] += 0.5
    assert exact_copy_rate(changed, train, spec) == 0.0


def test_duplicate_rate_counts_repeats():
    frame = pd.DataFrame({"a": [1, 1, 2, 3], "b": ["x", "x", "y", "y"]})
    assert duplicate_rate(frame, infer_columns(frame, id_columns=[])) == 0.25


def test_unequal_train_and_holdout_are_subsampled_to_equal_size(tables):
    train, holdout, fresh = tables
    m = privacy_metrics(train, fresh, holdout.iloc[:300], infer_columns(train))
    assert m["n_train_sample"] == m["n_holdout_sample"] == 300

"""`evaluate`: the whole suite on cases with known verdicts, thresholds, and input handling."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from quality import evaluate
from quality.errors import InvalidInputError, SchemaMismatchError, UnknownThresholdError
from quality.fidelity import shuffled_columns


def test_copy_of_training_data_fails_privacy(tables):
    train, holdout, _ = tables
    report = evaluate(train, train.copy(), holdout)
    assert not report.passed
    assert {"exact_copy_rate", "dcr_share", "mia_auroc", "nndr_ratio"} <= set(report.failing)
    assert report["dcr_share"].value > 0.95
    assert report["exact_copy_rate"].value == 1.0
    # a perfect copy is perfectly faithful: only privacy fails
    assert all(c.passed for c in report if c.kind in ("fidelity", "expectation"))


def test_independent_sample_from_the_same_distribution_passes(tables):
    train, holdout, fresh = tables
    report = evaluate(train, fresh, holdout, target="band")
    assert report.passed, report.failing
    assert 0.43 < report["dcr_share"].value < 0.57
    assert report["discriminator_auc"].value < 0.65


def test_shuffled_columns_fail_fidelity_not_privacy(tables):
    train, holdout, _ = tables
    report = evaluate(train, shuffled_columns(train, seed=5), holdout, target="band")
    assert "discriminator_auc" in report.failing
    assert "utility_drop" in report.failing
    assert not any(c.kind == "expectation" for c in report if not c.passed)


def test_thresholds_override_and_none_makes_a_check_informational(tables):
    train, holdout, _ = tables
    report = evaluate(train, shuffled_columns(train, seed=5), holdout,
                      thresholds={"discriminator_auc": None, "accuracy": 0.999})
    assert report["discriminator_auc"].passed and report["discriminator_auc"].threshold is None
    assert "accuracy" in report.failing


def test_unknown_threshold_is_refused(tables):
    train, holdout, fresh = tables
    with pytest.raises(UnknownThresholdError, match="dcr_shar"):
        evaluate(train, fresh, holdout, thresholds={"dcr_shar": 0.6})


def test_without_holdout_copies_are_still_caught(tables):
    train, _, fresh = tables
    copied = evaluate(train, train.copy())
    assert copied.failing == ["exact_copy_rate"]
    assert "dcr_share" not in copied
    assert evaluate(train, fresh).passed


def test_report_is_json_serialisable_and_inputs_are_untouched(tables):
    train, holdout, fresh = tables
    before = [f.copy() for f in (train, holdout, fresh)]
    report = evaluate(train, fresh, holdout, target="y")
    for frame, copy in zip((train, holdout, fresh), before):
        pd.testing.assert_frame_equal(frame, copy)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["passed"] is True and data["failing"] == []
    names = [c["name"] for c in data["checks"]]
    assert {"accuracy", "discriminator_auc", "dcr_share", "exact_copy_rate", "utility_drop"} <= set(names)
    assert all(set(c) >= {"name", "value", "threshold", "passed", "explanation"} for c in data["checks"])
    assert data["metrics"]["utility"]["task"] == "regression"


def test_same_seed_same_report(tables):
    train, holdout, fresh = tables
    a = evaluate(train, fresh, holdout, seed=3).to_dict()
    b = evaluate(train, fresh, holdout, seed=3).to_dict()
    a.pop("timings"), b.pop("timings")
    assert a == b


def test_missing_column_and_bad_inputs_raise_typed_errors(tables):
    train, holdout, fresh = tables
    with pytest.raises(SchemaMismatchError, match="colour"):
        evaluate(train, fresh.drop(columns="colour"), holdout)
    with pytest.raises(InvalidInputError, match="synthetic table has no rows"):
        evaluate(train, fresh.iloc[:0], holdout)
    with pytest.raises(InvalidInputError, match="DataFrame"):
        evaluate(train, np.zeros((3, 3)), holdout)


def test_expectation_reference_sets_the_suite_and_id_columns_are_explicit(tables):
    train, holdout, fresh = tables
    # a conditional sample: compared with the matching real rows, its suite comes from the whole table
    high = train[train["band"] == "high"].reset_index(drop=True)
    sample = fresh[fresh["band"] == "high"].reset_index(drop=True)
    sample.loc[0, "colour"] = "red"
    narrow = high[high["colour"] != "red"].reset_index(drop=True)
    with_ref = evaluate(narrow, sample, None, expectation_reference=train)
    without = evaluate(narrow, sample, None)
    assert "expect_column_values_to_be_in_set[colour]" in without.failing
    assert "expect_column_values_to_be_in_set[colour]" not in with_ref.failing
    numbered = train.assign(row=range(len(train)))
    assert evaluate(numbered, fresh.assign(row=range(len(fresh))), None).metrics["columns"]["ids"] == ["row"]
    assert evaluate(numbered, fresh.assign(row=range(len(fresh))), None,
                    id_columns=[]).metrics["columns"]["ids"] == []


def test_a_holdout_too_small_to_judge_privacy_is_inconclusive_not_passed(tables):
    train, holdout, fresh = tables
    rng = np.random.default_rng(0)
    near_copy = train.copy()
    numeric = near_copy.select_dtypes("number").columns
    near_copy[numeric] = near_copy[numeric] + rng.normal(0, 1e-6, (len(train), len(numeric)))
    report = evaluate(train, near_copy, holdout.iloc[:4])
    inconclusive = {c.name for c in report if c.details.get("inconclusive")}
    assert "dcr_share" in inconclusive and inconclusive <= set(report.failing)
    assert all("enlarge the holdout" in report[name].explanation for name in inconclusive)
    fine = evaluate(train, fresh, holdout)
    assert not any(c.details.get("inconclusive") for c in fine)

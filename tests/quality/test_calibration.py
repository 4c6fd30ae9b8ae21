"""The gate publishes independent real samples at small sizes, and still quarantines copies (issue 10, item 4)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from quality import evaluate
from quality.bounds import (
    alpha_from_z, cluster_share_se, mann_whitney_se, max_count_beyond_range, max_count_same_rate, tail_limits,
)
from quality.columns import infer_columns
from quality.expectations import validate_expectations
from quality.gate import _copy_bound


def _thirds(frame: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    order = np.random.default_rng(seed).permutation(len(frame))
    return tuple(frame.iloc[order[i * n:(i + 1) * n]].reset_index(drop=True) for i in range(3))


def _perturbed(train: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The training rows with 30% of numeric cells multiplied by 1 +- 5% (integers rounded back)."""
    rng = np.random.default_rng(seed)
    out = train.copy()
    for column in out.columns:
        if pd.api.types.is_numeric_dtype(out[column]):
            hit = rng.random(len(out)) < 0.3
            values = out[column].to_numpy(dtype=np.float64) * np.where(hit, 1 + 0.05 * rng.choice([-1, 1], len(out)), 1)
            out[column] = np.round(values).astype(out[column].dtype) if out[column].dtype.kind == "i" else values
    return out


@pytest.fixture
def breast_cancer():
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame  # real, bundled with scikit-learn: 569 rows, 31 numeric columns


def test_exact_copy_bound_allows_coincidental_copies_when_the_holdout_has_none():
    # the case: one coincidental copy among 1,500 rows, none among the holdout's 1,500
    bound = _copy_bound(0, 1500, 1500, 3.0)
    assert bound == pytest.approx(9 / 1500)  # 0.5 ** 9 >= 1 - Phi(3) > 0.5 ** 10
    assert 1 / 1500 <= bound < 0.01
    assert _copy_bound(0, 1500, 1500, 2.0) == pytest.approx(5 / 1500)
    # a memorising generator is far outside: 2% copies against a holdout with 0.1%
    assert 0.02 > _copy_bound(2, 1600, 1600, 3.0)


def test_small_sample_bounds_have_their_textbook_values():
    alpha = alpha_from_z(3.0)
    assert max_count_same_rate(0, 500, 500, alpha) == math.floor(math.log2(1 / alpha))
    assert max_count_same_rate(0, 100, 10_000, alpha) > 100  # a small reference says little about a rare event
    assert max_count_same_rate(50, 1000, 1000, alpha) > 50
    assert max_count_beyond_range(1000, 1000, alpha) == 13  # (c + 1) / 2 ** c, about: 14 / 8192 >= alpha
    assert mann_whitney_se(100, 100) == pytest.approx(math.sqrt(201 / (12 * 100 * 100)))
    ties = np.r_[np.zeros(150), np.arange(50.0)]
    assert mann_whitney_se(100, 100, ties) < mann_whitney_se(100, 100)
    assert cluster_share_se(np.arange(400)) == pytest.approx(0.5 / math.sqrt(400))
    assert cluster_share_se(np.repeat(np.arange(100), 4)) == pytest.approx(0.5 / math.sqrt(100))
    rng = np.random.default_rng(0)
    low, high = tail_limits(rng.uniform(18, 90, 500), 500, alpha)
    assert -54 < low < 18 and 90 < high < 162  # a light tail: inside the fixed 100% widening, which then rules
    assert tail_limits(rng.pareto(1.0, 500), 500, alpha)[1] > 1e3  # a heavy one widely
    assert math.isnan(tail_limits(np.r_[np.zeros(300), 1.0, 2.0], 300, alpha)[1])  # a flag: unknowable


def test_real_thirds_of_adult_are_published(adult_frame):
    train, holdout, sample = _thirds(adult_frame, 2000, seed=1)
    report = evaluate(train, sample, holdout, target="income", seed=1)
    assert report.passed, {c.name: c.explanation for c in report if not c.passed}


def test_copy_and_perturbed_copy_of_adult_are_still_quarantined_by_privacy(adult_frame):
    train, holdout, _ = _thirds(adult_frame, 2000, seed=1)
    for leak in (train.sample(frac=1.0, random_state=0).reset_index(drop=True), _perturbed(train, seed=0)):
        failing = set(evaluate(train, leak, holdout, seed=1).failing)
        assert {"exact_copy_rate", "dcr_share", "mia_auroc"} <= failing


def test_small_numeric_real_table_passes_and_its_perturbed_copy_fails(breast_cancer):
    train, holdout, sample = _thirds(breast_cancer, 189, seed=0)
    report = evaluate(train, sample, holdout, seed=0)
    assert report.passed, {c.name: c.explanation for c in report if not c.passed}
    # 30 numeric columns: a perturbed copy has no exact copies left, only distances can see it
    leak = evaluate(train, _perturbed(train, seed=0), holdout, seed=0)
    assert leak["exact_copy_rate"].value == 0.0
    assert {"dcr_share", "mia_auroc", "nndr_ratio"} <= set(leak.failing)


def test_a_few_nulls_where_the_training_sample_has_none_pass(tables):
    train, holdout, fresh = tables
    name = "expect_column_values_to_not_be_null[colour]"
    synthetic = fresh.copy()
    synthetic.loc[:3, "colour"] = None  # 4 of 800: a rare null the training sample happened to miss
    assert evaluate(train, synthetic, holdout)[name].passed
    synthetic.loc[:80, "colour"] = None  # 10%: not sampling noise
    assert not evaluate(train, synthetic, holdout)[name].passed


def test_rare_unseen_categories_pass_in_proportion_to_real_singletons():
    rng = np.random.default_rng(0)
    # a long tail: 40 common categories and a few hundred rare ones (as native_country, occupation codes)
    population = np.r_[np.repeat([f"c{i}" for i in range(40)], 200), [f"r{i}" for i in range(600)]]
    real = pd.DataFrame({"code": rng.choice(population, 1000), "v": rng.normal(size=1000)})
    sample = pd.DataFrame({"code": rng.choice(population, 1000), "v": rng.normal(size=1000)})
    name = "expect_column_values_to_be_in_set[code]"
    assert (~sample["code"].isin(set(real["code"]))).sum() > 3  # a real sample does show categories new to the other
    assert evaluate(real, sample)[name].passed
    invented = sample.copy()
    invented.loc[:199, "code"] = "invented"  # 20% of rows in one new category: a generator bug
    assert not evaluate(real, invented)[name].passed
    # the suite stays usable without sampling bounds: then any unseen category fails, as before
    checks = {c.name: c for c in validate_expectations(real, sample, infer_columns(real))}
    assert not checks[name].passed


def test_one_absurd_value_still_fails_with_sampling_bounds(adult_frame):
    train, holdout, sample = _thirds(adult_frame, 2000, seed=1)
    sample.loc[0, "age"] = 500
    assert "expect_column_max_to_be_between[age]" in evaluate(train, sample, holdout, seed=1).failing


def test_wide_integer_measurements_are_not_taken_for_ids():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"fnlwgt": rng.choice(1_500_000, 300, replace=False), "row": np.arange(300)})
    assert infer_columns(frame).ids == ("row",)


def test_a_null_in_an_integer_column_is_not_a_type_change():
    real = pd.DataFrame({"age": np.arange(20, 80), "plan": ["a", "b"] * 30})
    sample = real.astype({"age": "float64"})
    sample.loc[3, "age"] = np.nan  # how pandas holds an integer column with a missing value
    name = "expect_column_values_to_be_in_type_list[age]"
    assert evaluate(real, sample)[name].passed
    assert not evaluate(real, real.astype({"age": "float64"}))[name].passed  # whole floats, no nulls: a type change


def test_sampling_z_none_restores_the_fixed_bounds(tables):
    train, holdout, fresh = tables
    report = evaluate(train, fresh, holdout, thresholds={"sampling_z": None, "dcr_share": 0.55})
    assert report["dcr_share"].threshold == 0.55
    assert report["mia_auroc"].threshold == 0.6

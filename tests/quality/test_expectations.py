"""The expectation suite derived from the real table catches what it should and passes clean data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quality.columns import infer_columns
from quality.expectations import derive_expectations, validate_expectations


def _real() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    return pd.DataFrame({
        "user_id": np.arange(1000, 1000 + n),
        "age": rng.integers(18, 90, n),
        "score": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        "plan": rng.choice(["free", "pro"], n).astype(object),
    })


def _failing(real, synthetic, **kw) -> dict[str, str]:
    checks = validate_expectations(real, synthetic, infer_columns(real), **kw)
    return {c.name: c.explanation for c in checks if not c.passed}


@pytest.fixture
def real():
    return _real()


def test_suite_covers_columns_types_ranges_sets_nulls_and_ids(real):
    specs = derive_expectations(real, infer_columns(real))
    kinds = {(s["type"], s["column"]) for s in specs}
    assert ("expect_table_columns_to_match_set", None) in kinds
    assert ("expect_column_values_to_be_unique", "user_id") in kinds
    assert ("expect_column_values_to_be_between", "age") in kinds
    assert ("expect_column_values_to_be_in_set", "plan") in kinds
    assert {c for t, c in kinds if t == "expect_column_values_to_be_in_type_list"} == set(real.columns)
    score_nulls = next(s for s in specs if s["type"] == "expect_column_values_to_not_be_null" and s["column"] == "score")
    f = real["score"].isna().mean()
    noise = 3 * np.sqrt(f * (1 - f) * 2 / len(real))  # two null fractions over 200 rows each
    assert score_nulls["kwargs"]["mostly"] == pytest.approx(1 - f - max(0.02, noise), abs=1e-6)


def test_a_clean_sample_passes(real):
    synthetic = real.sample(frac=1.0, random_state=1).reset_index(drop=True)
    assert _failing(real, synthetic) == {}


def test_catches_one_absurd_out_of_range_value(real):
    synthetic = real.copy()
    synthetic.loc[3, "age"] = 500
    failing = _failing(real, synthetic)
    assert list(failing) == ["expect_column_max_to_be_between[age]"]
    assert "500" in failing["expect_column_max_to_be_between[age]"]


def test_catches_many_values_slightly_out_of_range(real):
    synthetic = real.copy()
    synthetic.loc[:9, "age"] = int(real["age"].max()) + 10  # 5% of rows, past the 5% margin
    failing = _failing(real, synthetic)
    assert list(failing) == ["expect_column_values_to_be_between[age]"]
    assert _failing(real, synthetic, range_margin=0.2) == {}


def test_a_few_tail_values_are_tolerated(real):
    synthetic = real.copy()
    synthetic.loc[0, "age"] = int(real["age"].max()) + 10  # 0.5% of rows: within the 1% tolerance
    assert _failing(real, synthetic) == {}
    assert "expect_column_values_to_be_between[age]" in _failing(real, synthetic, range_tolerance=0.0)


def test_catches_unknown_category(real):
    synthetic = real.copy()
    synthetic.loc[0, "plan"] = "enterprise"
    failing = _failing(real, synthetic)
    assert list(failing) == ["expect_column_values_to_be_in_set[plan]"]
    assert "enterprise" in failing["expect_column_values_to_be_in_set[plan]"]


def test_catches_nulls_where_none_allowed_but_tolerates_them_where_real_has_some(real):
    synthetic = real.copy()
    synthetic.loc[:1, "plan"] = None
    synthetic.loc[:1, "score"] = np.nan  # score has ~10% nulls in the real table: +1% stays within tolerance
    assert list(_failing(real, synthetic)) == ["expect_column_values_to_not_be_null[plan]"]


def test_catches_duplicate_ids_wrong_types_and_extra_columns(real):
    synthetic = real.copy()
    synthetic.loc[1, "user_id"] = synthetic.loc[0, "user_id"]
    synthetic["age"] = synthetic["age"].astype(str)
    synthetic["leak"] = 1
    failing = _failing(real, synthetic)
    assert "expect_column_values_to_be_unique[user_id]" in failing
    assert "expect_column_values_to_be_in_type_list[age]" in failing
    assert "expect_table_columns_to_match_set" in failing


def test_float_synthetic_for_integer_real_column_fails_the_type_check(real):
    synthetic = real.astype({"age": "float64"})
    assert "expect_column_values_to_be_in_type_list[age]" in _failing(real, synthetic)

"""Tabular encoder: training statistics only, unseen categories ignored, clear column errors."""

import json

import numpy as np
import pandas as pd
import pytest

from detectors.errors import ColumnMismatchError, MissingValuesError
from detectors.features import TabularEncoder


def _frame():
    return pd.DataFrame({"amount": [1.0, 2.0, 3.0, 4.0], "shop": ["a", "b", "a", "c"],
                         "when": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"])})


def test_numerics_use_training_statistics():
    encoder = TabularEncoder().fit(_frame())
    other = _frame().assign(amount=[100.0, 100.0, 100.0, 100.0])
    x = encoder.transform(other)
    mean, std = np.mean([1, 2, 3, 4]), np.std([1, 2, 3, 4])
    np.testing.assert_allclose(x[:, 0], (100 - mean) / std, rtol=1e-6)
    assert x.shape == (4, 1 + 3 + 1)


def test_unseen_category_encodes_as_zeros():
    encoder = TabularEncoder().fit(_frame())
    x = encoder.transform(_frame().assign(shop=["zzz", "a", "b", "never"]))
    shop = x[:, 1:4]
    np.testing.assert_array_equal(shop[0], [0, 0, 0])
    np.testing.assert_array_equal(shop[3], [0, 0, 0])
    assert shop[1].sum() == 1


def test_column_order_does_not_matter_and_state_round_trips():
    encoder = TabularEncoder().fit(_frame())
    restored = TabularEncoder.from_json(json.loads(json.dumps(encoder.to_json())))
    np.testing.assert_array_equal(restored.transform(_frame()[["when", "shop", "amount"]]),
                                  encoder.transform(_frame()))


def test_column_mismatch_names_the_columns():
    encoder = TabularEncoder().fit(_frame())
    with pytest.raises(ColumnMismatchError, match=r"missing \['shop'\].*unexpected \['store'\]") as info:
        encoder.transform(_frame().rename(columns={"shop": "store"}))
    assert info.value.missing == ["shop"] and info.value.extra == ["store"]


def test_nans_are_refused_with_the_column_name():
    encoder = TabularEncoder().fit(_frame())
    with pytest.raises(MissingValuesError, match="amount"):
        encoder.transform(_frame().assign(amount=[1.0, np.nan, 2.0, 3.0]))

"""Schema inference, overrides, JSON round-trip and the errors for data no generator can learn."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from generators.errors import InvalidDataError, SchemaError
from generators.schema import TableSchema


def test_infers_every_kind_and_nullability(mixed_frame):
    schema = TableSchema.infer(mixed_frame)
    kinds = {c.name: (c.kind, c.nullable) for c in schema.columns}
    assert kinds == {
        "customer_id": ("id", False), "account_key": ("id", False), "age": ("integer", False),
        "segment": ("categorical", False), "income": ("numeric", True), "visits": ("integer", True),
        "active": ("boolean", False), "opened": ("datetime", True), "country": ("categorical", False),
        "Class": ("integer", False),
    }


def test_integer_column_with_nulls_read_as_floats_stays_integer():
    s = pd.DataFrame({"n": [1.0, 2.0, np.nan, 4.0]})
    assert TableSchema.infer(s)["n"].kind == "integer"


def test_overrides_and_json_round_trip(mixed_frame):
    schema = TableSchema.infer(mixed_frame, {"Class": "categorical", "age": {"kind": "numeric", "nullable": True}})
    assert schema["Class"].kind == "categorical"
    assert (schema["age"].kind, schema["age"].nullable) == ("numeric", True)
    again = TableSchema.from_dict(json.loads(json.dumps(schema.to_dict())))
    assert again == schema


@pytest.mark.parametrize("overrides", [{"missing": "numeric"}, {"age": "text"}, {"age": {"kind": "id", "x": 1}}])
def test_bad_overrides_raise(mixed_frame, overrides):
    with pytest.raises(SchemaError):
        TableSchema.infer(mixed_frame, overrides)


def test_unlearnable_frames_raise():
    with pytest.raises(InvalidDataError, match="no rows"):
        TableSchema.infer(pd.DataFrame({"a": pd.Series([], dtype=float)}))
    with pytest.raises(InvalidDataError, match="entirely null"):
        TableSchema.infer(pd.DataFrame({"a": [1, 2], "b": [None, None]}))
    with pytest.raises(InvalidDataError, match="DataFrame"):
        TableSchema.infer([[1, 2]])


def test_training_frame_must_match_the_schema(mixed_frame):
    schema = TableSchema.infer(mixed_frame)
    with pytest.raises(SchemaError, match="lacks"):
        schema.validate_training_frame(mixed_frame.drop(columns=["age"]))
    strict = schema.with_overrides({"income": {"nullable": False}})
    with pytest.raises(SchemaError, match="nullable"):
        strict.validate_training_frame(mixed_frame)
    with pytest.raises(SchemaError, match="fractional"):
        schema.with_overrides({"income": "integer"}).validate_training_frame(mixed_frame)
    with pytest.raises(SchemaError, match="declared numeric"):
        schema.with_overrides({"segment": "numeric"}).validate_training_frame(mixed_frame)


def test_check_frame_reports_departures(mixed_frame):
    schema = TableSchema.infer(mixed_frame)
    assert schema.check_frame(mixed_frame) == []
    bad = mixed_frame.copy()
    bad["age"] = bad["age"].astype(float)
    bad.loc[0, "segment"] = None
    problems = schema.check_frame(bad)
    assert any(p.startswith("age:") for p in problems) and any(p.startswith("segment:") for p in problems)
    assert schema.check_frame(mixed_frame[mixed_frame.columns[::-1]]) != []

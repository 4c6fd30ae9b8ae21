"""Tabular feature encoder: numerics scaled with training statistics, categoricals one-hot."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from detectors.errors import ColumnMismatchError, InvalidDataError, MissingValuesError
from detectors.persistence import BadState, mean_std, positive_int, require

MAX_CATEGORIES = 50


def _is_numeric(series: pd.Series) -> bool:
    return (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)) or \
        pd.api.types.is_datetime64_any_dtype(series)


def _as_float(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(series):
        # Seconds since the epoch: datetimes are scaled like any other number.
        return series.astype("datetime64[ns]").astype("int64").to_numpy(dtype=np.float64) / 1e9
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


class TabularEncoder:
    """Encode a DataFrame to a float32 matrix with statistics learnt from the training frame.

    Numeric columns are standardised with the training mean and standard deviation; other columns are one-hot
    encoded over (at most `max_categories`) training categories, and a category unseen at fit time encodes as
    all zeros rather than failing.
    """

    def __init__(self, max_categories: int = MAX_CATEGORIES):
        self.max_categories = max_categories

    def fit(self, frame: pd.DataFrame) -> "TabularEncoder":
        """Learn column order, numeric statistics and category lists from `frame`."""
        frame = _as_frame(frame)
        if frame.shape[1] == 0:
            raise InvalidDataError("the table has no columns; pass at least one feature column")
        self.columns_ = [str(c) for c in frame.columns]
        self.numeric_ = {}
        self.categories_ = {}
        _check_missing(frame, self.columns_)
        for column in self.columns_:
            series = frame[column]
            if _is_numeric(series):
                values = _as_float(series)
                std = float(values.std())
                self.numeric_[column] = [float(values.mean()), std if std > 1e-12 else 1.0]
            else:
                counts = series.astype(str).value_counts(sort=True)
                self.categories_[column] = [str(v) for v in counts.index[: self.max_categories]]
        return self

    @property
    def n_features_(self) -> int:
        return len(self.numeric_) + sum(len(v) for v in self.categories_.values())

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Encode `frame`, whose columns must be the training columns (any order)."""
        if not hasattr(self, "columns_"):
            raise InvalidDataError("the encoder is not fitted; call fit on the training table first")
        frame = _as_frame(frame)
        got = [str(c) for c in frame.columns]
        missing = [c for c in self.columns_ if c not in got]
        extra = [c for c in got if c not in self.columns_]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {missing}")
            if extra:
                parts.append(f"unexpected {extra}")
            raise ColumnMismatchError(
                "columns differ from the training table: " + ", ".join(parts)
                + "; score a table with the same columns the detector was trained on",
                missing=missing, extra=extra,
            )
        frame = frame.set_axis(got, axis=1)
        _check_missing(frame, self.columns_)
        blocks = []
        for column in self.columns_:
            series = frame[column]
            if column in self.numeric_:
                if not _is_numeric(series):
                    raise InvalidDataError(
                        f"column {column!r} was numeric in the training table but is {series.dtype} here; "
                        "cast it back to a number"
                    )
                mean, std = self.numeric_[column]
                blocks.append(((_as_float(series) - mean) / std)[:, None])
            else:
                categories = self.categories_[column]
                values = series.astype(str).to_numpy()
                blocks.append((values[:, None] == np.array(categories, dtype=object)[None, :]).astype(np.float64))
        return np.hstack(blocks).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {"max_categories": self.max_categories, "columns": self.columns_, "numeric": self.numeric_,
                "categories": self.categories_}

    @classmethod
    def from_json(cls, state: dict[str, Any]) -> "TabularEncoder":
        """Rebuild a fitted encoder from `to_json` output, checking it (saved files are untrusted input)."""
        where = "the tabular encoder"
        encoder = cls(max_categories=positive_int(require(state, "max_categories", where), "max_categories"))
        columns, numeric, categories = (require(state, key, where) for key in ("columns", "numeric", "categories"))
        if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns) \
                or len(set(columns)) != len(columns):
            raise BadState("the encoder's columns are not a list of distinct column names")
        if not isinstance(numeric, dict) or not isinstance(categories, dict) or set(numeric) & set(categories) \
                or set(numeric) | set(categories) != set(columns):
            raise BadState("the encoder's numeric and categorical columns do not split its columns")
        encoder.columns_ = list(columns)
        encoder.numeric_ = {k: mean_std(v, f"the encoder's statistics of column {k!r}") for k, v in numeric.items()}
        for column, values in categories.items():
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise BadState(f"the encoder's categories of column {column!r} are not a list of strings")
        encoder.categories_ = {k: list(v) for k, v in categories.items()}
        if encoder.n_features_ == 0:
            raise BadState("the encoder produces no features")
        return encoder


def _as_frame(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    array = np.asarray(data)
    if array.ndim != 2:
        raise InvalidDataError(f"table data must be 2-D (rows x columns), got shape {array.shape}")
    return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])


def _check_missing(frame: pd.DataFrame, columns: list[str]) -> None:
    bad = []
    for column in columns:
        series = frame[column]
        if series.isna().any():
            bad.append(column)
        elif _is_numeric(series) and not pd.api.types.is_datetime64_any_dtype(series) \
                and not np.isfinite(_as_float(series)).all():
            bad.append(column)
    if bad:
        raise MissingValuesError(
            f"columns {bad} hold NaN or infinite values; drop or impute those rows before fitting or scoring"
        )

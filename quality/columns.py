"""Column roles (numeric, categorical, id) inferred from the real table, and shared encodings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from quality.errors import InvalidInputError, SchemaMismatchError

MISSING = "<missing>"


@dataclass(frozen=True)
class ColumnSpec:
    """Which columns of a table are numeric, categorical or ids (ids are left out of distances and fidelity)."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    ids: tuple[str, ...]
    order: tuple[str, ...]

    @property
    def features(self) -> list[str]:
        """Numeric and categorical columns in the table's own order."""
        keep = set(self.numeric) | set(self.categorical)
        return [c for c in self.order if c in keep]

    def kind(self, column: str) -> str:
        if column in self.numeric:
            return "numeric"
        if column in self.categorical:
            return "categorical"
        return "id"


def _looks_like_id(name: str, series: pd.Series) -> bool:
    lowered = name.lower()
    if lowered == "id" or lowered.endswith("_id"):
        return True
    if pd.api.types.is_float_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    values = series.dropna()
    if len(values) < 20 or not values.is_unique or len(values) != len(series):
        return False
    if pd.api.types.is_integer_dtype(series):
        # all-distinct integers are as often a wide measurement (a weight, an amount in cents) seen in a small
        # sample as they are keys; only a run of consecutive numbers (a row number) is taken for an id
        return int(values.max()) - int(values.min()) + 1 == len(values)
    return True


def is_numeric_column(series: pd.Series) -> bool:
    return (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)) or \
        pd.api.types.is_datetime64_any_dtype(series)


def infer_columns(real: pd.DataFrame, id_columns: list[str] | None = None) -> ColumnSpec:
    """Roles from the real table: numeric dtypes (and datetimes) are numeric, the rest categorical.

    A column is an id when listed in `id_columns`, or (when `id_columns` is None) named `id`/`*_id`, or a
    non-numeric column whose values are all present and unique, or an integer column numbering its rows
    (consecutive, each once).
    """
    require_frame(real, "real")
    if id_columns is None:
        ids = [c for c in real.columns if _looks_like_id(str(c), real[c])]
    else:
        missing = [c for c in id_columns if c not in real.columns]
        if missing:
            raise SchemaMismatchError(f"id columns {missing} are not in the real table; columns are {list(real.columns)}")
        ids = list(id_columns)
    numeric = [c for c in real.columns if c not in ids and is_numeric_column(real[c])]
    categorical = [c for c in real.columns if c not in ids and c not in numeric]
    if not numeric and not categorical:
        raise InvalidInputError(f"the real table has no columns to compare besides ids {ids}; "
                                "pass id_columns=[] if those columns are data")
    return ColumnSpec(tuple(numeric), tuple(categorical), tuple(ids), tuple(real.columns))


def require_frame(frame: object, name: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) == 0:
        raise InvalidInputError(f"the {name} table has no rows; pass a table with at least one row")
    if frame.columns.duplicated().any():
        dupes = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise InvalidInputError(f"the {name} table has duplicated column names {dupes}; rename them")
    return frame


def require_same_columns(real: pd.DataFrame, other: pd.DataFrame, name: str) -> None:
    """Raise when `other` lacks a real column (extra columns are reported by the expectation suite)."""
    missing = [c for c in real.columns if c not in other.columns]
    if missing:
        raise SchemaMismatchError(
            f"the {name} table lacks columns {missing} of the real table; "
            f"it has {list(other.columns)}: generate or select the same columns")


def numeric_values(series: pd.Series) -> np.ndarray:
    """Float64 values of a numeric or datetime column (non-numbers become NaN)."""
    if pd.api.types.is_datetime64_any_dtype(series):
        values = series.astype("datetime64[ns]").to_numpy()
        out = values.astype("int64").astype("float64")
        out[pd.isna(values)] = np.nan
        return out
    if pd.api.types.is_bool_dtype(series):
        return series.astype("float64").to_numpy()
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def category_strings(series: pd.Series) -> np.ndarray:
    """Object array of category labels as strings, missing values as the MISSING label."""
    values = series.astype(object).to_numpy()
    out = np.empty(len(values), dtype=object)
    isna = pd.isna(values)
    out[isna] = MISSING
    out[~isna] = [str(v) for v in values[~isna]]
    return out


def category_codes(frames: list[pd.Series]) -> tuple[list[np.ndarray], list[str]]:
    """Shared integer codes for the same categorical column of several tables (categories from all of them)."""
    labels = [category_strings(s) for s in frames]
    categories = pd.unique(np.concatenate(labels))
    index = pd.Index(categories)
    return [index.get_indexer(v).astype(np.int64) for v in labels], [str(c) for c in categories]


def decile_codes(real: np.ndarray, others: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Bin numerics into deciles of the real data; NaN gets its own last bin. Returns codes and bin count."""
    finite = real[~np.isnan(real)]
    edges = np.unique(np.quantile(finite, np.linspace(0.1, 0.9, 9))) if len(finite) else np.array([])
    n_bins = len(edges) + 2
    out = []
    for values in [real, *others]:
        codes = np.searchsorted(edges, values, side="right").astype(np.int64)
        codes[np.isnan(values)] = n_bins - 1
        out.append(codes)
    return out, n_bins

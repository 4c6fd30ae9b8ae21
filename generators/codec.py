"""Table codec: turns a real table into a model frame every generator can learn, and back.

The model frame has only two column types and never a null:
- numeric: float64 (numeric and integer columns, datetimes as seconds since the epoch);
- categorical: int64 codes 0..k-1 (categoricals, booleans; a null becomes its own last code).
A nullable numeric column becomes two model columns: `<name>__null` (categorical, 2 codes) then the value,
whose nulls are filled with random observed values. Id columns and constant columns are left out of the model
frame: ids are generated fresh at sampling time (never copied), constants are filled back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from generators.conditions import Range
from generators.errors import ConditionError, ModelFormatError
from generators.schema import TableSchema

NULL_SUFFIX = "__null"


@dataclass(frozen=True)
class ModelColumn:
    """One column of the model frame."""

    name: str
    type: str  # "numeric" | "categorical"
    n_categories: int = 0


def _native(v: Any) -> Any:
    """A JSON-able Python scalar for a category value."""
    if isinstance(v, np.generic):
        return v.item()
    return v


class TableCodec:
    """Fitted mapping between a real table (under a schema) and the model frame."""

    def __init__(self, schema: TableSchema, columns: dict[str, dict]):
        self.schema = schema
        self.columns = columns  # per original column: JSON-able fitted state

    # ---------------------------------------------------------------- fit
    @classmethod
    def fit(cls, data: pd.DataFrame, schema: TableSchema) -> "TableCodec":
        states: dict[str, dict] = {}
        for c in schema.columns:
            s = data[c.name]
            v = s.dropna()
            st: dict[str, Any] = {"kind": c.kind, "nullable": c.nullable}
            if c.kind == "id":
                if pd.api.types.is_integer_dtype(s) or (pd.api.types.is_float_dtype(s) and
                                                        np.all(v == np.round(v))):
                    st.update(dtype="int", start=int(v.max()) + 1 if len(v) else 1)
                else:
                    st.update(dtype="str")
            elif v.nunique() == 1 and len(v) == len(s):
                st.update(constant=True, value=_encode_scalar(c.kind, v.iloc[0]))
            elif c.kind in ("numeric", "integer", "datetime"):
                x = _to_float(s, c.kind)
                fin = x[~np.isnan(x)]
                st.update(min=float(fin.min()), max=float(fin.max()), has_null=bool(np.isnan(x).any()))
                if c.kind == "datetime":
                    ns = pd.to_datetime(v).astype("datetime64[ns]").astype("int64").to_numpy()
                    st["resolution"] = ("D" if np.all(ns % 86_400_000_000_000 == 0) else
                                        "s" if np.all(ns % 1_000_000_000 == 0) else "ns")
            else:  # categorical, boolean
                cats = sorted({_native(x) for x in v.tolist()}, key=lambda x: (type(x).__name__, str(x)))
                st.update(categories=cats, has_null=bool(s.isna().any()))
            states[c.name] = st
        return cls(schema, states)

    # ----------------------------------------------------------- structure
    @property
    def model_columns(self) -> list[ModelColumn]:
        out = []
        for name, st in self.columns.items():
            if st["kind"] == "id" or st.get("constant"):
                continue
            if "categories" in st:
                out.append(ModelColumn(name, "categorical", len(st["categories"]) + int(st["has_null"])))
            else:
                if st["has_null"]:
                    out.append(ModelColumn(name + NULL_SUFFIX, "categorical", 2))
                out.append(ModelColumn(name, "numeric"))
        return out

    # ------------------------------------------------------------- encode
    def encode(self, data: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        """Real table -> model frame (a new frame; `data` is not touched)."""
        cols: dict[str, np.ndarray] = {}
        for name, st in self.columns.items():
            if st["kind"] == "id" or st.get("constant"):
                continue
            s = data[name]
            if "categories" in st:
                lookup = {_key(c): i for i, c in enumerate(st["categories"])}
                null_code = len(st["categories"])
                codes = np.array([null_code if _isna(x) else lookup[_key(_native(x))] for x in s.tolist()],
                                 dtype=np.int64)
                cols[name] = codes
            else:
                x = _to_float(s, st["kind"])
                miss = np.isnan(x)
                if st["has_null"]:
                    cols[name + NULL_SUFFIX] = miss.astype(np.int64)
                    if miss.any():
                        x = x.copy()
                        x[miss] = rng.choice(x[~miss], size=int(miss.sum()))
                cols[name] = x
        return pd.DataFrame(cols, index=pd.RangeIndex(len(data)))

    # ------------------------------------------------------------- decode
    def decode(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Model frame -> table in the schema's kinds and dtypes, without id columns (see `add_ids`)."""
        n = len(frame)
        out: dict[str, Any] = {}
        for name, st in self.columns.items():
            kind = st["kind"]
            if kind == "id":
                continue
            if st.get("constant"):
                out[name] = _constant_series(kind, st["value"], n)
                continue
            if "categories" in st:
                codes = np.clip(np.asarray(frame[name], dtype=np.int64), 0, len(st["categories"]) - 1 + st["has_null"])
                cats = list(st["categories"]) + ([None] if st["has_null"] else [])
                vals = [cats[i] for i in codes]
                if kind == "boolean":
                    out[name] = (pd.array(vals, dtype="boolean") if st["has_null"]
                                 else np.asarray(vals, dtype=bool))
                else:
                    out[name] = pd.Series(vals, dtype=object).to_numpy()
                continue
            x = np.clip(np.asarray(frame[name], dtype=float), st["min"], st["max"])
            miss = (np.asarray(frame[name + NULL_SUFFIX]) == 1) if st["has_null"] else np.zeros(n, bool)
            if kind == "integer":
                xi = np.round(x).astype(np.int64)
                if st["nullable"]:
                    arr = pd.array(xi, dtype="Int64")
                    arr[miss] = pd.NA
                    out[name] = arr
                else:
                    out[name] = xi
            elif kind == "datetime":
                ns = np.round(x * 1e9).astype("int64")
                unit = {"D": 86_400_000_000_000, "s": 1_000_000_000, "ns": 1}[st["resolution"]]
                ns = (np.round(ns / unit) * unit).astype("int64") if unit > 1 else ns
                dt = ns.view("datetime64[ns]").copy()
                dt[miss] = np.datetime64("NaT")
                out[name] = dt
            else:
                x = x.copy()
                x[miss] = np.nan
                out[name] = x
        return pd.DataFrame(out, index=pd.RangeIndex(n))

    def add_ids(self, table: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        """Insert fresh id columns (never values of the training table) and restore the schema's column order."""
        n = len(table)
        table = table.copy()
        for name, st in self.columns.items():
            if st["kind"] != "id":
                continue
            if st["dtype"] == "int":
                table[name] = np.arange(st["start"], st["start"] + n, dtype=np.int64)
            else:
                # a prefix no real value has, then random hex: fresh, unique, reproducible under a seed
                hexes = rng.integers(0, 2**63, size=n, dtype=np.int64)
                table[name] = [f"syn-{i:07d}-{h:016x}" for i, h in enumerate(hexes)]
        return table[self.schema.names].reset_index(drop=True)

    # --------------------------------------------------------- conditions
    def check_conditions(self, conditions: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validate conditions against the fitted columns; return them coerced to the output's types.

        A value means equality (categorical, boolean, integer columns, or null); a `generators.conditions.Range`
        bounds a numeric, integer or datetime column. ConditionError (one line, naming the way out) for an unknown
        column, an id column, a value the model never saw, a range on a categorical, or a range that is empty or
        outside the training range.
        """
        if not conditions:
            return {}
        if not isinstance(conditions, Mapping):
            raise ConditionError(f"conditions must be a mapping of column to value, got {type(conditions).__name__}")
        out = {}
        for col, value in conditions.items():
            if col not in self.columns:
                raise ConditionError(f"condition names unknown column {col!r}; columns are {self.schema.names}")
            st = self.columns[col]
            kind = st["kind"]
            if kind == "id":
                raise ConditionError(f"cannot condition on id column {col!r}: ids are generated fresh")
            if isinstance(value, Range):
                out[col] = self._check_range(col, value)
                continue
            if _isna(value):
                if not st["nullable"] or not (st.get("has_null") or False):
                    raise ConditionError(f"condition {col}=null is impossible: the model never produces nulls there")
                out[col] = None
                continue
            if st.get("constant"):
                want = _coerce(kind, value, col)
                have = _decode_scalar(kind, st["value"])
                if want != have:
                    raise ConditionError(f"condition {col}={value!r} is impossible: the column is always {have!r}")
                out[col] = want
            elif "categories" in st:
                out[col] = _match_category(st["categories"], value, col, kind)
            elif kind == "integer":
                v = _coerce(kind, value, col)
                if not st["min"] <= v <= st["max"]:
                    raise ConditionError(f"condition {col}={v} is impossible: the data ranges from "
                                         f"{int(st['min'])} to {int(st['max'])}; pick a value in that range")
                out[col] = v
            else:
                raise ConditionError(f"cannot condition on continuous column {col!r} ({kind}) by equality; "
                                     f"give a range instead ({col}>=a,{col}<=b)")
        return out

    def _check_range(self, col: str, r: Range) -> Range:
        """A range on one column with typed bounds; ConditionError when it cannot hold for any sampled value."""
        st = self.columns[col]
        kind = st["kind"]
        if kind not in ("numeric", "integer", "datetime"):
            raise ConditionError(f"cannot put a range on {kind} column {col!r}; condition on one of its values "
                                 f"({col}=value)")
        low = None if r.low is None else _coerce(kind, r.low, col, whole=False)
        high = None if r.high is None else _coerce(kind, r.high, col, whole=False)
        if kind == "datetime":  # naive UTC, as decoded tables hold them
            low, high = (None if b is None else _from_model_float(kind, _as_model_float(kind, b)) for b in (low, high))
        typed = Range(low, high, r.low_inclusive, r.high_inclusive)
        shown = typed.to_text(col)
        if typed.is_empty():
            raise ConditionError(f"condition {shown} is impossible: the range is empty; widen it")
        if st.get("constant"):
            have = _decode_scalar(kind, st["value"])
            if not typed.contains(have):
                raise ConditionError(f"condition {shown} is impossible: the column is always {have!r}")
            return typed
        lo, hi = st["min"], st["max"]
        flo = None if low is None else _as_model_float(kind, low)
        fhi = None if high is None else _as_model_float(kind, high)
        seen = Range(flo, fhi, r.low_inclusive, r.high_inclusive).intersect(Range(lo, hi))
        if kind == "integer" and not seen.is_empty():
            a = math.ceil(seen.low) + (1 if not seen.low_inclusive and seen.low == math.ceil(seen.low) else 0)
            b = math.floor(seen.high) - (1 if not seen.high_inclusive and seen.high == math.floor(seen.high) else 0)
            empty = a > b
        else:
            empty = seen.is_empty()
        if empty:
            span = (f"{_decode_scalar(kind, _from_model_float(kind, lo))} to "
                    f"{_decode_scalar(kind, _from_model_float(kind, hi))}")
            raise ConditionError(f"condition {shown} is impossible: the training data of {col!r} ranges from {span}; "
                                 "give a range that overlaps it")
        return typed

    def model_constraints(self, conditions: Mapping[str, Any]) -> dict[str, Any]:
        """Checked conditions as constraints on model columns: {model column: code (int) or Range of floats}.

        Equality on a categorical is its code; a range (or integer equality) on a numeric column is a Range in
        model units (datetimes in seconds) plus code 0 of its `__null` column; null is code 1 of `__null` (or a
        categorical's null code). Constant columns need no constraint.
        """
        out: dict[str, Any] = {}
        for col, v in conditions.items():
            st = self.columns[col]
            kind = st["kind"]
            if st.get("constant"):
                continue
            if "categories" in st:
                if v is None:
                    out[col] = len(st["categories"])
                else:
                    out[col] = next(i for i, c in enumerate(st["categories"]) if _key(c) == _key(_native(v)))
                continue
            if v is None:
                out[col + NULL_SUFFIX] = 1
                continue
            if st["has_null"]:
                out[col + NULL_SUFFIX] = 0
            r = v if isinstance(v, Range) else Range(v, v)
            out[col] = Range(None if r.low is None else _as_model_float(kind, r.low),
                             None if r.high is None else _as_model_float(kind, r.high),
                             r.low_inclusive, r.high_inclusive)
        return out

    def to_dict(self) -> dict:
        return {"columns": self.columns}

    @classmethod
    def from_dict(cls, schema: TableSchema, d: Mapping[str, Any]) -> "TableCodec":
        """Rebuild a saved codec, refusing (ModelFormatError) state that does not fit the schema."""
        cols = d.get("columns") if isinstance(d, Mapping) else None
        if not isinstance(cols, Mapping) or list(cols) != schema.names:
            raise ModelFormatError(f"saved codec must describe the schema's columns {schema.names[:10]} in order")
        return cls(schema, {c.name: _checked_column_state(c.name, c.kind, c.nullable, cols[c.name])
                            for c in schema.columns})


def matches(table: pd.DataFrame, conditions: Mapping[str, Any]) -> np.ndarray:
    """Boolean mask of rows of a decoded table meeting every (checked) condition: a value, None or a Range."""
    mask = np.ones(len(table), dtype=bool)
    for col, v in conditions.items():
        s = table[col]
        if v is None:
            hit = s.isna()
        elif isinstance(v, Range):
            hit = pd.Series(v.contains(s), index=s.index)
            hit = hit.astype("boolean").fillna(False) & s.notna()
        else:
            hit = (s == v).fillna(False)
        mask &= np.asarray(hit, dtype=bool)
    return mask


# ------------------------------------------------------------------ helpers
_SCALARS = (str, int, float, bool, type(None))


def _checked_column_state(name: str, kind: str, nullable: bool, st: Any) -> dict:
    """One column's saved codec state, checked against its schema column; ModelFormatError names what is wrong."""
    def bad(what: str) -> ModelFormatError:
        return ModelFormatError(f"saved codec state of column {name!r}: {what}")

    if not isinstance(st, Mapping):
        raise bad("not a mapping")
    st = dict(st)
    if st.get("kind") != kind or st.get("nullable") is not nullable:
        raise bad(f"kind/nullable {st.get('kind')!r}/{st.get('nullable')!r} differ from the schema's {kind}/{nullable}")
    if kind == "id":
        if st.get("dtype") == "int":
            start = st.get("start")
            if isinstance(start, bool) or not isinstance(start, int) or abs(start) >= 2**63:
                raise bad("id start is not an integer")
        elif st.get("dtype") != "str":
            raise bad(f"unknown id dtype {str(st.get('dtype'))[:20]!r}")
        return st
    if st.get("constant") is not None:
        value = st.get("value")
        if st["constant"] is not True or not isinstance(value, _SCALARS) or (
                isinstance(value, float) and not np.isfinite(value)):
            raise bad("constant value is not a finite JSON scalar")
        try:
            _constant_series(kind, value, 1)
        except (TypeError, ValueError, OverflowError) as exc:
            raise bad(f"constant value {str(value)[:30]!r} does not fit kind {kind}") from exc
        return st
    if not isinstance(st.get("has_null"), bool) or (st["has_null"] and not nullable):
        raise bad("has_null must be true or false, and true only for a nullable column")
    if kind in ("categorical", "boolean"):
        cats = st.get("categories")
        if not isinstance(cats, list) or not cats or not all(isinstance(c, _SCALARS) and c is not None for c in cats):
            raise bad("categories must be a non-empty list of JSON scalars")
        if len({_key(c) for c in cats}) != len(cats):
            raise bad("categories repeat a value")
        return st
    lo, hi = st.get("min"), st.get("max")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in (lo, hi)) \
            or lo > hi:
        raise bad("min and max must be finite numbers with min <= max")
    limit = {"integer": 2.0**63, "datetime": 2.0**63 / 1e9}.get(kind)  # int64 values / ns since the epoch
    if limit is not None and max(abs(lo), abs(hi)) > limit:
        raise bad(f"min/max beyond what a {kind} column can hold")
    if kind == "datetime" and st.get("resolution") not in ("D", "s", "ns"):
        raise bad(f"unknown datetime resolution {str(st.get('resolution'))[:20]!r}")
    if "categories" in st:
        raise bad(f"a {kind} column has categories")
    return st


def _isna(x: Any) -> bool:
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def _key(v: Any) -> tuple:
    return (type(v).__name__ if not isinstance(v, bool) else "bool", v)


def _to_float(s: pd.Series, kind: str) -> np.ndarray:
    if kind == "datetime":
        dt = pd.to_datetime(s)
        if getattr(dt.dt, "tz", None) is not None:
            dt = dt.dt.tz_convert("UTC").dt.tz_localize(None)
        ns = dt.astype("datetime64[ns]").to_numpy().astype("int64").astype(float)
        ns[dt.isna().to_numpy()] = np.nan
        return ns / 1e9
    return pd.to_numeric(s).astype("float64").to_numpy(copy=True)


def _encode_scalar(kind: str, v: Any) -> Any:
    if kind == "datetime":
        return pd.Timestamp(v).isoformat()
    return _native(v)


def _decode_scalar(kind: str, v: Any) -> Any:
    if kind == "datetime":
        return pd.Timestamp(v)
    if kind == "boolean":
        return bool(v)
    if kind == "integer":
        return int(v)
    return v


def _constant_series(kind: str, v: Any, n: int) -> Any:
    if kind == "datetime":
        return np.full(n, np.datetime64(pd.Timestamp(v).to_datetime64(), "ns"))
    if kind == "integer":
        return np.full(n, int(v), dtype=np.int64)
    if kind == "numeric":
        return np.full(n, float(v))
    if kind == "boolean":
        return np.full(n, bool(v))
    return pd.Series([v] * n, dtype=object).to_numpy()


def _as_model_float(kind: str, v: Any) -> float:
    """A typed scalar in model units (datetimes: seconds since the epoch, naive UTC)."""
    if kind == "datetime":
        ts = pd.Timestamp(v)
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        return ts.as_unit("ns").value / 1e9
    return float(v)


def _from_model_float(kind: str, x: float) -> Any:
    if kind == "datetime":
        return pd.Timestamp(int(round(x * 1e9)))
    return x


def _coerce(kind: str, value: Any, col: str, whole: bool = True) -> Any:
    try:
        if kind == "integer" and not whole:  # a range bound on an integer column may fall between integers
            f = float(value)
            if not np.isfinite(f):
                raise ValueError("not a finite number")
            return int(f) if f == int(f) else f
        if kind == "integer":
            f = float(value)
            if not np.isfinite(f):
                raise ValueError("not a finite number")
            if f != round(f):
                raise ValueError("not a whole number")
            return int(round(f))
        if kind == "numeric":
            f = float(value)
            if not np.isfinite(f):
                raise ValueError("not a finite number")
            return f
        if kind == "boolean":
            return _to_bool(value)
        if kind == "datetime":
            return pd.Timestamp(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConditionError(f"condition value {value!r} for {kind} column {col!r} is invalid ({exc})") from exc
    return value


def _to_bool(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    s = str(value).strip().lower()
    if s in ("true", "1", "yes", "t"):
        return True
    if s in ("false", "0", "no", "f"):
        return False
    raise ValueError("not a boolean")


def _match_category(categories: list, value: Any, col: str, kind: str) -> Any:
    if kind == "boolean":
        v = _coerce(kind, value, col)
        if v in categories:
            return v
    else:
        for c in categories:
            if type(c) is type(value) and c == value:
                return c
        # values typed on a command line arrive as strings: match on the text
        for c in categories:
            if str(c) == str(value) or (isinstance(c, (int, float)) and _num_eq(c, value)):
                return c
    shown = categories[:20]
    raise ConditionError(f"condition {col}={value!r} is impossible: the model never saw that value; "
                         f"known values include {shown}")


def _num_eq(c: Any, value: Any) -> bool:
    try:
        return float(c) == float(value)
    except (TypeError, ValueError, OverflowError):
        return False

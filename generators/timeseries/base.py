"""The timeseries kind: many sequences (or one long series) in, new sequences out, through the SequenceCodec.

`SequenceCodec` learns the roles and types of a `SequenceData` frame and turns it into `EncodedSequences`, the
one representation every sequence model learns: per step numeric values (NaN gaps kept), categorical codes and
a step-pattern token (the time elapsed since the previous step), per sequence its length and context codes.
What is not a model's business is the codec's: the start-time distribution (binned, drawn inside a bin and
snapped to the learned time grid, never a copied start), the joint distribution of context codes, fresh entity
ids and the training frame's dtypes.

A single long series (`entity=None`, e.g. an ECG) is cut into overlapping windows that the models learn as
sequences; its samples are new segments, `window` steps long unless `length` says otherwise, in a frame with
the training columns plus a leading integer `segment` column (the entity of the returned SequenceData), so
the output is a SequenceData of n sequences like a panel's.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np
import pandas as pd

from generators.base import Generator, check_count
from generators.data import SequenceData, kind_of
from generators.errors import ConditionError, GeneratorError, InvalidDataError, ModelFormatError
from generators.tabular.autoregressive.tokens import fit_numeric_tokens, numeric_to_tokens, tokens_to_numeric

CONTEXT_MAX_CATEGORIES = 32   # a numeric context column with more distinct values is binned
CONTEXT_BINS = 16
DELTA_MAX_TOKENS = 32         # distinct time steps kept exactly; beyond, quantile bins
START_BINS = 20
DEFAULT_WINDOW = 128
SEGMENT_COLUMN = "segment"
_DAY_NS = 86_400_000_000_000
_UNIT_NS = {"D": _DAY_NS, "s": 1_000_000_000, "ns": 1}
_NUMERIC_DTYPES = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32",
                   "float64", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float32",
                   "Float64"}
_CATEGORY_DTYPES = {"object", "bool", "boolean", "category", "string"}
_DATETIME_DTYPE = re.compile(r"^datetime64\[(s|ms|us|ns)(, [A-Za-z0-9_/+\-:]{1,64})?\]$")


@dataclass
class EncodedSequences:
    """Sequences as a model sees them; steps of sequence i are rows offsets[i]:offsets[i+1] of the step arrays."""

    lengths: np.ndarray      # (n,) int64, >= 1
    numeric: np.ndarray      # (steps, p) float64, NaN where the data has gaps
    categorical: np.ndarray  # (steps, q) int64 codes (a null is its column's last code where it has nulls)
    deltas: np.ndarray       # (steps,) int64 step-pattern tokens; 0 at every first step (its time is the start)
    context: np.ndarray      # (n, k) int64 context codes

    @property
    def offsets(self) -> np.ndarray:
        return np.r_[0, np.cumsum(self.lengths)].astype(np.int64)

    def check(self, codec: "SequenceCodec") -> "EncodedSequences":
        """AssertionError unless the arrays fit `codec` (a model's `_sample` must return such arrays)."""
        steps = int(self.lengths.sum())
        assert self.lengths.ndim == 1 and (self.lengths >= 1).all(), "every sequence needs at least one step"
        assert self.numeric.shape == (steps, len(codec.numeric_columns)), self.numeric.shape
        assert self.categorical.shape == (steps, len(codec.categorical_columns)), self.categorical.shape
        assert self.deltas.shape == (steps,) and self.context.shape == (len(self.lengths), len(codec.context)), \
            (self.deltas.shape, self.context.shape)
        for j, size in enumerate(codec.categorical_sizes):
            assert ((self.categorical[:, j] >= 0) & (self.categorical[:, j] < size)).all(), j
        assert ((self.deltas >= 0) & (self.deltas < codec.n_delta_tokens)).all()
        return self


# ---------------------------------------------------------------------- small helpers
def _native(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _key(v: Any) -> tuple[str, str]:
    """A hashable key under which 1 and 1.0 and True stay apart from each other and from "1"."""
    return (type(v).__name__, str(v))


def _isna(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v))


def _dtype_name(series: pd.Series) -> str:
    return str(series.dtype)


def _bad(where: str, what: str) -> ModelFormatError:
    return ModelFormatError(f"codec {where}: {what}")


def _get(d: Any, key: str, types: type | tuple, where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise _bad(where, f"missing {key!r}")
    v = d[key]
    if isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise _bad(where, f"{key!r} must be {types}, not a boolean")
    if not isinstance(v, types):
        raise _bad(where, f"{key!r} must be {getattr(types, '__name__', types)}, not {type(v).__name__}")
    return v


def _get_int(d: Any, key: str, where: str, lo: int | None = None, hi: int | None = None) -> int:
    v = _get(d, key, int, where)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise _bad(where, f"{key!r} = {v} is outside {lo}..{hi}")
    return v


def _get_floats(d: Any, key: str, where: str, increasing: bool = True) -> np.ndarray:
    v = _get(d, key, list, where)
    if len(v) > 100_000 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                                   for x in v):
        raise _bad(where, f"{key!r} must be a list of finite numbers")
    a = np.asarray(v, dtype=np.float64)
    if increasing and len(a) > 1 and (np.diff(a) <= 0).any():
        raise _bad(where, f"{key!r} must be increasing")
    return a


def _check_categories(cats: Any, where: str) -> list:
    if not isinstance(cats, list) or len(cats) > 1_000_000:
        raise _bad(where, "categories must be a list")
    for c in cats:
        if not (c is None or isinstance(c, (str, int, float, bool))) or (isinstance(c, float) and not math.isfinite(c)):
            raise _bad(where, f"category {str(c)[:30]!r} is not a text, number or boolean")
    if len({_key(c) for c in cats}) != len(cats) or any(c is None for c in cats):
        raise _bad(where, "categories must be distinct and not null (a null is its own code)")
    return cats


def _check_tokens(d: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    atoms, edges = _get_floats(d, "atoms", where), _get_floats(d, "edges", where)
    if len(edges) == 1 or len(atoms) + len(edges) == 0:
        raise _bad(where, "a numeric token set needs atoms or at least two bin edges")
    return atoms, edges


def _n_tokens(atoms: np.ndarray, edges: np.ndarray) -> int:
    return len(atoms) + max(len(edges) - 1, 0)


def _time_units(series: pd.Series) -> tuple[str, str, np.ndarray, str | None]:
    """(type, unit, int64 values in units, tz) of a time column; InvalidDataError when it is not a time."""
    if pd.api.types.is_datetime64_any_dtype(series):
        tz = str(series.dt.tz) if getattr(series.dt, "tz", None) is not None else None
        s = series.dt.tz_convert("UTC").dt.tz_localize(None) if tz else series
        ns = s.astype("datetime64[ns]").to_numpy().astype(np.int64)
        unit = "D" if (ns % _DAY_NS == 0).all() else "s" if (ns % 1_000_000_000 == 0).all() else "ns"
        return "datetime", unit, ns // _UNIT_NS[unit], tz
    if series.dtype == object and len(series) and all(isinstance(v, _dt.date) and not isinstance(v, _dt.datetime)
                                                      for v in series.tolist()):
        ns = pd.to_datetime(series).astype("datetime64[ns]").to_numpy().astype(np.int64)
        return "date", "D", ns // _DAY_NS, None
    if pd.api.types.is_integer_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return "int", "1", series.to_numpy(dtype=np.int64), None
    if pd.api.types.is_float_dtype(series):
        x = series.to_numpy(dtype=np.float64)
        if np.isfinite(x).all() and (x == np.round(x)).all() and np.abs(x).max() < 2**53:
            return "int", "1", x.astype(np.int64), None
    raise InvalidDataError(f"time column {series.name!r} holds {series.dtype} values; it must hold integer steps, "
                           "datetimes or dates: convert it, or give a step number column as the time")


def _gcd(values: np.ndarray) -> int:
    values = np.abs(values[values != 0]).astype(np.int64)
    return int(np.gcd.reduce(values)) if len(values) else 1


# ---------------------------------------------------------------------- the codec
class SequenceCodec:
    """Fitted mapping between a SequenceData frame and EncodedSequences; JSON-able (`to_dict` / `from_dict`)."""

    def __init__(self, doc: dict[str, Any]):
        self.doc = doc
        self.columns: list[str] = doc["columns"]
        self.time: dict = doc["time"]
        self.entity: dict | None = doc["entity"]
        self.window: int | None = doc["window"]
        self.context: list[dict] = doc["context"]
        self.values: list[dict] = doc["values"]
        self.numeric_columns = [v["name"] for v in self.values if v["kind"] == "numeric"]
        self.categorical_columns = [v["name"] for v in self.values if v["kind"] == "categorical"]
        self.categorical_sizes = [len(v["categories"]) + int(v["has_null"]) for v in self.values
                                  if v["kind"] == "categorical"]
        self.context_sizes = [len(c["categories"]) + int(c["has_null"]) if c["kind"] == "categorical"
                              else len(c["edges"]) - 1 for c in self.context]
        d = doc["deltas"]
        self._delta_atoms = np.asarray(d["atoms"], dtype=np.float64)
        self._delta_edges = np.asarray(d["edges"], dtype=np.float64)
        self.n_delta_tokens = _n_tokens(self._delta_atoms, self._delta_edges)
        s = doc["starts"]
        self._start_atoms = np.asarray(s["atoms"], dtype=np.float64)
        self._start_edges = np.asarray(s["edges"], dtype=np.float64)
        self._start_p = np.asarray(s["probs"], dtype=np.float64)
        n_rows = len(doc["context_table"]["counts"])
        self.context_table = np.asarray(doc["context_table"]["codes"], dtype=np.int64).reshape(
            n_rows, len(self.context))
        self.context_counts = np.asarray(doc["context_table"]["counts"], dtype=np.int64)
        self.lengths = np.asarray(doc["lengths"]["values"], dtype=np.int64)
        self.length_counts = np.asarray(doc["lengths"]["counts"], dtype=np.int64)

    @property
    def single_series(self) -> bool:
        return self.entity is None

    @property
    def entity_name(self) -> str:
        return self.entity["name"] if self.entity is not None else self.doc["segment_column"]

    @property
    def context_names(self) -> list[str]:
        return [c["name"] for c in self.context]

    @property
    def max_length(self) -> int:
        return int(self.lengths.max())

    # ---------------------------------------------------------------- fit
    @classmethod
    def fit(cls, data: SequenceData, window: int | None = None) -> "SequenceCodec":
        """Learn roles, types, step pattern, start times, lengths and context of `data` (checked first)."""
        data.check()
        frame = data.frame
        ttype, unit, tvals, tz = _time_units(frame[data.time])
        if data.entity is not None:
            ent = frame[data.entity]
            if pd.Series(list(zip(ent.tolist(), tvals.tolist()))).duplicated().any():
                raise InvalidDataError(f"some ({data.entity}, {data.time}) pairs repeat: each entity may have one "
                                       "row per time; aggregate or drop the duplicates")
        elif pd.Series(tvals).duplicated().any():
            raise InvalidDataError(f"time column {data.time!r} repeats values in a single series; give an entity "
                                   "column or drop the duplicates")
        for c in frame.columns:
            if c not in (data.time, data.entity) and frame[c].isna().all():
                raise InvalidDataError(f"column {c!r} holds no values at all (all NaN); drop it")
        order, lengths, entities = cls._order(frame, data.entity, tvals)
        if lengths.max() < 2:
            raise InvalidDataError("every sequence has a single step: there is no step-to-step pattern to learn; "
                                   "a sequence generator needs sequences of two or more steps")
        context = cls._context_columns(data, order, lengths)
        value_names = [c for c in frame.columns if c not in {data.time, data.entity, *context}]
        if not value_names:
            raise InvalidDataError("no column varies within an entity: name the context columns explicitly, or "
                                   "use a tabular generator")
        values = [cls._fit_value(frame[c]) for c in value_names]

        if data.entity is None:
            n = len(frame)
            w = int(window) if window is not None else min(DEFAULT_WINDOW, max(n // 4, 2))
            w = max(2, min(w, n))
            stride = max(1, w // 2)
            starts_idx = np.arange(0, n - w + 1, stride)
            seq_starts = tvals[order][starts_idx]
            seq_lengths = np.full(len(starts_idx), w, dtype=np.int64)
            deltas_all = np.diff(tvals[order])
            entity_doc = None
            seg = SEGMENT_COLUMN
            while seg in frame.columns:
                seg += "_"
        else:
            w, seg = None, None
            offsets = np.r_[0, np.cumsum(lengths)]
            sorted_t = tvals[order]
            seq_starts = sorted_t[offsets[:-1]]
            seq_lengths = lengths
            d = np.diff(sorted_t)
            keep = np.ones(len(d), bool)
            keep[offsets[1:-1] - 1] = False  # the jump from one entity's last step to the next one's first
            deltas_all = d[keep]
            entity_doc = cls._fit_entity(frame[data.entity], entities)
        if len(deltas_all) == 0 or (deltas_all <= 0).any():
            raise InvalidDataError(f"time column {data.time!r} must increase within each sequence")
        d_atoms, d_edges = cls._fit_deltas(deltas_all)
        origin = int(seq_starts.min())
        rel = (seq_starts - origin).astype(np.float64)
        grid = math.gcd(_gcd(seq_starts - origin), _gcd(deltas_all))
        s_atoms, s_edges = fit_numeric_tokens(rel, START_BINS)
        s_tok = numeric_to_tokens(rel, s_atoms, s_edges)
        s_counts = np.bincount(s_tok, minlength=_n_tokens(s_atoms, s_edges)).astype(np.float64)
        length_vals, length_counts = np.unique(seq_lengths, return_counts=True)

        ctx_docs = [cls._fit_context(frame[c]) for c in context]
        doc = {
            "columns": [str(c) for c in frame.columns],
            "time": {"name": data.time, "type": ttype, "unit": unit, "tz": tz, "dtype": _dtype_name(frame[data.time])},
            "entity": entity_doc, "window": w, "segment_column": seg,
            "context": ctx_docs, "values": values,
            "deltas": {"atoms": d_atoms.tolist(), "edges": d_edges.tolist()},
            "starts": {"origin": origin, "grid": grid, "atoms": s_atoms.tolist(), "edges": s_edges.tolist(),
                       "probs": (s_counts / s_counts.sum()).tolist()},
            "lengths": {"values": length_vals.tolist(), "counts": length_counts.tolist()},
            "context_table": {"codes": [], "counts": []},
        }
        codec = cls(doc)
        if context:
            first_rows = frame.iloc[order[np.r_[0, np.cumsum(lengths)[:-1]]]]
            codes = codec._encode_context(first_rows)
            table, counts = np.unique(codes, axis=0, return_counts=True)
            doc["context_table"] = {"codes": table.ravel().tolist(), "counts": counts.tolist()}
        else:
            doc["context_table"] = {"codes": [], "counts": [int(len(seq_lengths))]}
        return cls(doc)

    @staticmethod
    def _order(frame: pd.DataFrame, entity: str | None, tvals: np.ndarray):
        """Row order (entities in order of first appearance, each by time), lengths and entity values."""
        if entity is None:
            return np.argsort(tvals, kind="stable"), np.array([len(frame)], dtype=np.int64), np.array([None])
        codes, uniques = pd.factorize(frame[entity], sort=False)
        order = np.lexsort((tvals, codes))
        return order, np.bincount(codes).astype(np.int64), np.asarray(uniques, dtype=object)

    @staticmethod
    def _context_columns(data: SequenceData, order: np.ndarray, lengths: np.ndarray) -> list[str]:
        frame = data.frame
        if data.entity is None:
            return list(data.context or [])
        group = np.repeat(np.arange(len(lengths)), lengths)
        candidates = list(data.context) if data.context is not None else \
            [c for c in frame.columns if c not in (data.time, data.entity)]
        out = []
        for c in candidates:
            s = frame[c].iloc[order].reset_index(drop=True)
            constant = s.astype(object).where(s.notna(), None).groupby(group).nunique(dropna=False).max() <= 1
            if constant and lengths.max() >= 2:
                out.append(c)
            elif data.context is not None:
                raise InvalidDataError(f"context column {c!r} changes within an entity; a context column must be "
                                       "constant per entity: leave it out of `context`")
        return out

    @staticmethod
    def _fit_entity(series: pd.Series, entities: np.ndarray) -> dict:
        if pd.api.types.is_integer_dtype(series) and not pd.api.types.is_bool_dtype(series):
            return {"name": str(series.name), "type": "int", "dtype": _dtype_name(series),
                    "start": int(series.max()) + 1}
        texts = [str(v) for v in entities]
        prefix = "synth-"
        while any(t.startswith(prefix) for t in texts):
            prefix = "x" + prefix
        dtype = "string" if _dtype_name(series) == "string" else "object"
        return {"name": str(series.name), "type": "str", "dtype": dtype, "prefix": prefix}

    @staticmethod
    def _fit_value(series: pd.Series) -> dict:
        name = str(series.name)
        if series.isna().all():
            raise InvalidDataError(f"value column {name!r} holds no values at all (all NaN); drop it")
        if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(series):
            raise InvalidDataError(f"value column {name!r} holds datetimes; a sequence generator learns numeric "
                                   "and categorical values: convert it to a number")
        dtype = _dtype_name(series)
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            x = series.to_numpy(dtype=np.float64, na_value=np.nan)
            fin = x[np.isfinite(x)]
            if len(fin) < (~np.isnan(x)).sum():
                raise InvalidDataError(f"value column {name!r} holds infinite values; replace them")
            return {"name": name, "kind": "numeric", "dtype": dtype if dtype in _NUMERIC_DTYPES else "float64",
                    "integral": bool((fin == np.round(fin)).all()), "min": float(fin.min()),
                    "max": float(fin.max()), "has_null": bool(np.isnan(x).any())}
        cats = sorted({_key(_native(v)): _native(v) for v in series.tolist() if not _isna(v)}.values(),
                      key=_key)
        return {"name": name, "kind": "categorical", "dtype": dtype if dtype in _CATEGORY_DTYPES else "object",
                "categories": cats, "has_null": bool(series.isna().any())}

    @staticmethod
    def _fit_context(series: pd.Series) -> dict:
        name, dtype = str(series.name), _dtype_name(series)
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        values = series.dropna()
        if numeric and values.nunique() > CONTEXT_MAX_CATEGORIES:
            x = values.to_numpy(dtype=np.float64)
            edges = np.unique(np.quantile(x, np.linspace(0, 1, CONTEXT_BINS + 1)))
            return {"name": name, "kind": "binned", "dtype": dtype if dtype in _NUMERIC_DTYPES else "float64",
                    "edges": edges.tolist(), "integral": bool((x == np.round(x)).all()),
                    "has_null": False}
        if numeric and series.isna().any():
            pass  # nulls become the null code below
        cats = sorted({_key(_native(v)): _native(v) for v in values.tolist()}.values(), key=_key)
        ok = _NUMERIC_DTYPES | _CATEGORY_DTYPES
        return {"name": name, "kind": "categorical", "dtype": dtype if dtype in ok else "object",
                "categories": cats, "has_null": bool(series.isna().any())}

    @staticmethod
    def _fit_deltas(deltas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = deltas.astype(np.float64)
        vals = np.unique(x)
        if len(vals) <= DELTA_MAX_TOKENS:
            return vals, np.zeros(0)
        return fit_numeric_tokens(x, DELTA_MAX_TOKENS)

    # ------------------------------------------------------------- encode
    def _encode_categorical(self, series: pd.Series, cats: list, has_null: bool, name: str) -> np.ndarray:
        lookup = {_key(c): i for i, c in enumerate(cats)}
        out = np.empty(len(series), dtype=np.int64)
        for i, v in enumerate(series.tolist()):
            if _isna(v):
                if not has_null:
                    raise InvalidDataError(f"column {name!r} has a missing value the model never saw")
                out[i] = len(cats)
            else:
                k = _key(_native(v))
                if k not in lookup:
                    raise InvalidDataError(f"column {name!r} holds {v!r}, a value the model never saw")
                out[i] = lookup[k]
        return out

    def _encode_context(self, rows: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(rows), len(self.context)), dtype=np.int64)
        for j, c in enumerate(self.context):
            s = rows[c["name"]]
            if c["kind"] == "categorical":
                out[:, j] = self._encode_categorical(s, c["categories"], c["has_null"], c["name"])
            else:
                edges = np.asarray(c["edges"])
                x = s.to_numpy(dtype=np.float64, na_value=np.nan)
                out[:, j] = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
        return out

    def encode(self, data: SequenceData) -> EncodedSequences:
        """The training sequences (windows of a single series) as arrays; `data` is not modified."""
        frame = data.frame
        _, _, tvals, _ = _time_units(frame[data.time])
        order, lengths, _ = self._order(frame, data.entity, tvals)
        rows = frame.iloc[order].reset_index(drop=True)
        t = tvals[order]
        numeric = np.stack([rows[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in self.numeric_columns],
                           axis=1) if self.numeric_columns else np.zeros((len(rows), 0))
        cat_docs = [v for v in self.values if v["kind"] == "categorical"]
        categorical = np.stack([self._encode_categorical(rows[v["name"]], v["categories"], v["has_null"], v["name"])
                                for v in cat_docs], axis=1) if cat_docs else np.zeros((len(rows), 0), np.int64)
        d = np.r_[0, np.diff(t)].astype(np.float64)
        offsets = np.r_[0, np.cumsum(lengths)]
        if self.single_series:
            w = self.window
            starts = np.arange(0, len(rows) - w + 1, max(1, w // 2))
            idx = (starts[:, None] + np.arange(w)[None, :]).ravel()
            numeric, categorical, d = numeric[idx], categorical[idx], d[idx]
            lengths = np.full(len(starts), w, dtype=np.int64)
            context = np.repeat(self._encode_context(rows.iloc[:1]), len(starts), axis=0)
            first = np.arange(len(starts)) * w
        else:
            context = self._encode_context(rows.iloc[offsets[:-1]])
            first = offsets[:-1]
        if len(self._delta_edges) == 0:  # every step value is a token of its own
            dtok = np.clip(np.searchsorted(self._delta_atoms, d), 0, self.n_delta_tokens - 1)
        else:
            dtok = numeric_to_tokens(d, self._delta_atoms, self._delta_edges)
        dtok[first] = 0
        return EncodedSequences(lengths=lengths.astype(np.int64), numeric=np.ascontiguousarray(numeric),
                                categorical=np.ascontiguousarray(categorical, dtype=np.int64),
                                deltas=dtok.astype(np.int64), context=context)

    # ---------------------------------------------------------- sampling
    def check_conditions(self, conditions: Mapping[str, Any] | None) -> dict[int, tuple[int, Any]]:
        """{context index: (code, value)} for `conditions`; ConditionError for a non-context column or an unseen
        value."""
        out: dict[int, tuple[int, Any]] = {}
        if not conditions:
            return out
        if not isinstance(conditions, Mapping):
            raise ConditionError(f"conditions must be a mapping of context column to value, got "
                                 f"{type(conditions).__name__}")
        names = self.context_names
        for col, value in conditions.items():
            if col not in names:
                raise ConditionError(f"cannot condition on {col!r}: only context columns (constant within a "
                                     f"sequence) can be conditioned on; they are {names or 'none'}")
            j = names.index(col)
            c = self.context[j]
            if c["kind"] == "categorical":
                if _isna(value):
                    if not c["has_null"]:
                        raise ConditionError(f"context column {col!r} was never missing in the training data")
                    out[j] = (len(c["categories"]), None)
                    continue
                lookup = {_key(v): i for i, v in enumerate(c["categories"])}
                k = _key(_native(value))
                if k not in lookup:  # 3 for 3.0 and the like
                    matches = [i for i, v in enumerate(c["categories"]) if str(v) == str(value)
                               or (isinstance(v, (int, float)) and isinstance(value, (int, float)) and v == value)]
                    if not matches:
                        shown = ", ".join(repr(v) for v in c["categories"][:10])
                        raise ConditionError(f"context column {col!r} never held {value!r} in the training data; "
                                             f"seen values include {shown}")
                    out[j] = (matches[0], c["categories"][matches[0]])
                else:
                    out[j] = (lookup[k], c["categories"][lookup[k]])
            else:
                edges = np.asarray(c["edges"])
                if isinstance(value, str):  # a number typed on a command line
                    try:
                        value = float(value)
                    except ValueError:
                        pass
                if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                        or not edges[0] <= float(value) <= edges[-1]:
                    raise ConditionError(f"context column {col!r} is numeric between {edges[0]:g} and "
                                         f"{edges[-1]:g} in the training data; {value!r} is not")
                code = int(np.clip(np.searchsorted(edges, float(value), side="right") - 1, 0, len(edges) - 2))
                out[j] = (code, value)
        return out

    def sample_context(self, n: int, rng: np.random.Generator, conds: Mapping[int, tuple[int, Any]]) -> np.ndarray:
        """n rows of context codes from the learned joint distribution, restricted to the conditions."""
        if not self.context:
            return np.zeros((n, 0), dtype=np.int64)
        keep = np.ones(len(self.context_table), bool)
        for j, (code, _) in conds.items():
            keep &= self.context_table[:, j] == code
        if not keep.any():
            raise ConditionError("no training sequence has this combination of context values; condition on "
                                 "fewer columns or on values seen together")
        p = self.context_counts[keep].astype(np.float64)
        rows = rng.choice(np.flatnonzero(keep), size=n, p=p / p.sum())
        return self.context_table[rows].copy()

    def sample_lengths(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n lengths from the training length distribution (for models without a stop token)."""
        p = self.length_counts / self.length_counts.sum()
        return rng.choice(self.lengths, size=n, p=p).astype(np.int64)

    def _sample_starts(self, n: int, rng: np.random.Generator) -> np.ndarray:
        s = self.doc["starts"]
        tok = rng.choice(len(self._start_p), size=n, p=self._start_p)
        rel = tokens_to_numeric(tok, self._start_atoms, self._start_edges, rng, integral=True)
        grid = s["grid"]
        return s["origin"] + (np.round(rel / grid).astype(np.int64) * grid)

    def decode_deltas(self, tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = tokens_to_numeric(tokens.astype(np.int64), self._delta_atoms, self._delta_edges, rng, integral=True)
        return np.maximum(np.round(x), 1).astype(np.int64)

    def decode(self, enc: EncodedSequences, rng: np.random.Generator,
               conds: Mapping[int, tuple[int, Any]] | None = None) -> SequenceData:
        """EncodedSequences -> a SequenceData in the training frame's columns and dtypes, with fresh entity ids."""
        n, steps = len(enc.lengths), int(enc.lengths.sum())
        offsets = enc.offsets
        seq = np.repeat(np.arange(n), enc.lengths)
        first = np.zeros(steps, bool)
        first[offsets[:-1]] = True
        starts = self._sample_starts(n, rng)
        d = self.decode_deltas(enc.deltas, rng)
        d[first] = 0
        cum = np.cumsum(d)
        t = starts[seq] + cum - cum[offsets[:-1]][seq]
        out: dict[str, Any] = {}
        if self.single_series:
            seg = self.doc["segment_column"]
            out[seg] = seq.astype(np.int64)
        else:
            out[self.entity["name"]] = self._fresh_ids(n)[seq]
        out[self.time["name"]] = self._decode_time(t)
        ctx_cols = self._decode_context(enc.context, rng, conds or {})
        for j, c in enumerate(self.context):
            out[c["name"]] = _take(ctx_cols[j], seq)
        num = {name: enc.numeric[:, j] for j, name in enumerate(self.numeric_columns)}
        cat = {name: enc.categorical[:, j] for j, name in enumerate(self.categorical_columns)}
        for v in self.values:
            if v["kind"] == "numeric":
                out[v["name"]] = _decode_numeric(num[v["name"]], v)
            else:
                out[v["name"]] = _decode_categorical(cat[v["name"]], v)
        cols = ([self.doc["segment_column"]] if self.single_series else []) + self.columns
        frame = pd.DataFrame({c: out[c] for c in cols})
        entity = self.entity_name
        return SequenceData(frame, time=self.time["name"], entity=entity, context=self.context_names)

    def _fresh_ids(self, n: int) -> np.ndarray:
        e = self.entity
        if e["type"] == "int":
            ids = np.arange(e["start"], e["start"] + n, dtype=np.int64)
            return ids.astype(e["dtype"]) if e["dtype"] in _NUMERIC_DTYPES and e["dtype"][0] != "I" else ids
        width = max(6, len(str(n - 1)))
        return np.array([f"{e['prefix']}{i:0{width}d}" for i in range(n)], dtype=object)

    def _decode_time(self, t: np.ndarray) -> Any:
        tm = self.time
        if tm["type"] == "int":
            dtype = tm["dtype"]
            return t.astype(dtype) if dtype in _NUMERIC_DTYPES and dtype[0] not in "IUF" else t
        ns = t.astype(np.int64) * _UNIT_NS[tm["unit"]]
        stamps = pd.Series(pd.to_datetime(ns, unit="ns"))
        if tm["type"] == "date":
            return stamps.dt.date.to_numpy(dtype=object)
        if tm["tz"]:
            stamps = stamps.dt.tz_localize("UTC").dt.tz_convert(tm["tz"])
        try:
            return stamps.astype(tm["dtype"]).to_numpy() if not tm["tz"] else stamps.astype(tm["dtype"]).array
        except (TypeError, ValueError):
            return stamps.array

    def _decode_context(self, codes: np.ndarray, rng: np.random.Generator,
                        conds: Mapping[int, tuple[int, Any]]) -> list[Any]:
        out = []
        for j, c in enumerate(self.context):
            if c["kind"] == "categorical":
                col = _decode_categorical(codes[:, j], c)
            else:
                edges = np.asarray(c["edges"])
                x = tokens_to_numeric(codes[:, j], np.zeros(0), edges, rng, integral=c["integral"])
                if j in conds:
                    x[:] = float(conds[j][1])
                col = _cast_numeric(x, c["dtype"])
            out.append(col)
        return out

    # ---------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        return self.doc

    @classmethod
    def from_dict(cls, doc: Any) -> "SequenceCodec":
        """Rebuild a saved codec, treating `doc` as hostile: ModelFormatError for anything malformed."""
        where = "codec"
        if not isinstance(doc, dict):
            raise _bad(where, "not a mapping")
        expected = {"columns", "time", "entity", "window", "segment_column", "context", "values", "deltas", "starts",
                    "lengths", "context_table"}
        if set(doc) != expected:
            raise _bad(where, f"keys must be {sorted(expected)}")
        columns = _get(doc, "columns", list, where)
        if not columns or not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
            raise _bad(where, "columns must be distinct texts")
        tm = _get(doc, "time", dict, where)
        if set(tm) != {"name", "type", "unit", "tz", "dtype"} or tm["type"] not in ("int", "datetime", "date") \
                or tm["name"] not in columns or tm["unit"] not in ("1", "D", "s", "ns") \
                or (tm["type"] == "int") != (tm["unit"] == "1") or not isinstance(tm["dtype"], str):
            raise _bad("time", "malformed time description")
        if tm["type"] == "int" and tm["dtype"] not in _NUMERIC_DTYPES:
            raise _bad("time", f"dtype {tm['dtype'][:30]!r} is not an integer dtype")
        if tm["type"] == "datetime" and not _DATETIME_DTYPE.match(tm["dtype"]):
            raise _bad("time", f"dtype {tm['dtype'][:30]!r} is not a datetime dtype")
        if tm["tz"] is not None:
            if not isinstance(tm["tz"], str) or tm["type"] != "datetime":
                raise _bad("time", "tz must be a time zone name of a datetime column")
            try:
                pd.Timestamp(0, tz=tm["tz"])
            except Exception:  # noqa: BLE001 - any failure means an unknown zone
                raise _bad("time", f"unknown time zone {tm['tz'][:40]!r}") from None
        ent, seg, window = doc["entity"], doc["segment_column"], doc["window"]
        if ent is None:
            if not isinstance(seg, str) or seg in columns or isinstance(window, bool) or not isinstance(window, int) \
                    or window < 2:
                raise _bad("entity", "a single series needs a fresh segment column name and a window >= 2")
        else:
            if seg is not None or window is not None or not isinstance(ent, dict):
                raise _bad("entity", "a panel has an entity and neither a segment column nor a window")
            if ent.get("name") not in columns or ent.get("name") == tm["name"]:
                raise _bad("entity", "entity name must be a column other than the time")
            if ent.get("type") == "int":
                if set(ent) != {"name", "type", "dtype", "start"} or ent["dtype"] not in _NUMERIC_DTYPES:
                    raise _bad("entity", "malformed integer entity")
                _get_int(ent, "start", "entity", -2**62, 2**62)
            elif ent.get("type") == "str":
                if set(ent) != {"name", "type", "dtype", "prefix"} or ent["dtype"] not in ("object", "string") \
                        or not isinstance(ent["prefix"], str) or not 1 <= len(ent["prefix"]) <= 1000:
                    raise _bad("entity", "malformed text entity")
            else:
                raise _bad("entity", "type must be 'int' or 'str'")
        roles = {tm["name"]} | ({ent["name"]} if ent else set())
        ctx = _get(doc, "context", list, where)
        for c in ctx:
            cls._check_column_doc(c, "context", columns, roles)
            roles.add(c["name"])
        values = _get(doc, "values", list, where)
        if not values:
            raise _bad("values", "no value columns")
        for v in values:
            cls._check_column_doc(v, "values", columns, roles)
            roles.add(v["name"])
        if roles != set(columns):
            raise _bad(where, "time, entity, context and value columns must be exactly the columns")
        deltas = _get(doc, "deltas", dict, where)
        if set(deltas) != {"atoms", "edges"}:
            raise _bad("deltas", "keys must be atoms and edges")
        atoms, edges = _check_tokens(deltas, "deltas")
        if (atoms < 1).any() or (len(edges) and edges[0] < 1):
            raise _bad("deltas", "time steps must be at least 1")
        st = _get(doc, "starts", dict, where)
        if set(st) != {"origin", "grid", "atoms", "edges", "probs"}:
            raise _bad("starts", "malformed start distribution")
        _get_int(st, "origin", "starts", -2**62, 2**62)
        _get_int(st, "grid", "starts", 1, 2**62)
        s_atoms, s_edges = _check_tokens(st, "starts")
        probs = _get_floats(st, "probs", "starts", increasing=False)
        if len(probs) != _n_tokens(s_atoms, s_edges) or (probs < 0).any() or abs(probs.sum() - 1) > 1e-6 \
                or (s_atoms < 0).any() or (len(s_edges) and s_edges[0] < 0):
            raise _bad("starts", "probs must be one non-negative probability per token, summing to 1")
        lengths = _get(doc, "lengths", dict, where)
        lv = _get(lengths, "values", list, "lengths")
        lc = _get(lengths, "counts", list, "lengths")
        if set(lengths) != {"values", "counts"} or not lv or len(lv) != len(lc) \
                or not all(isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 10_000_000 for x in lv + lc) \
                or lv != sorted(set(lv)) or (ent is None and lv != [window]):
            raise _bad("lengths", "values must be increasing lengths >= 1 with a positive count each")
        table = _get(doc, "context_table", dict, where)
        codes, counts = _get(table, "codes", list, "context_table"), _get(table, "counts", list, "context_table")
        if set(table) != {"codes", "counts"} or not counts \
                or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in codes + counts) \
                or any(x < 1 for x in counts) or len(codes) != len(counts) * len(ctx):
            raise _bad("context_table", "codes must be one row of context codes per count")
        codec = cls(doc)
        if len(ctx):
            if (codec.context_table >= np.asarray(codec.context_sizes)[None, :]).any():
                raise _bad("context_table", "a context code is beyond its column's categories")
        elif len(counts) != 1:
            raise _bad("context_table", "without context columns the table is one count")
        return codec

    @staticmethod
    def _check_column_doc(c: Any, where: str, columns: list, taken: set) -> None:
        if not isinstance(c, dict) or c.get("name") not in columns or c.get("name") in taken:
            raise _bad(where, "each entry must name a distinct column of the frame")
        kind = c.get("kind")
        if kind == "categorical":
            if set(c) != {"name", "kind", "dtype", "categories", "has_null"} or not isinstance(c["has_null"], bool) \
                    or c["dtype"] not in (_NUMERIC_DTYPES | _CATEGORY_DTYPES):
                raise _bad(where, f"malformed categorical column {c['name'][:40]!r}")
            cats = _check_categories(c["categories"], where)
            if len(cats) + int(c["has_null"]) == 0:
                raise _bad(where, f"column {c['name'][:40]!r} has no categories")
        elif kind == "numeric" and where == "values":
            if set(c) != {"name", "kind", "dtype", "integral", "min", "max", "has_null"} \
                    or c["dtype"] not in _NUMERIC_DTYPES or not isinstance(c["integral"], bool) \
                    or not isinstance(c["has_null"], bool):
                raise _bad(where, f"malformed numeric column {c['name'][:40]!r}")
            lo, hi = _get_floats({"v": [c["min"], c["max"]]}, "v", where, increasing=False)
            if lo > hi:
                raise _bad(where, f"column {c['name'][:40]!r} has min > max")
        elif kind == "binned" and where == "context":
            if set(c) != {"name", "kind", "dtype", "edges", "integral", "has_null"} or c["has_null"] is not False \
                    or c["dtype"] not in _NUMERIC_DTYPES or not isinstance(c["integral"], bool):
                raise _bad(where, f"malformed binned column {c['name'][:40]!r}")
            if len(_get_floats(c, "edges", where)) < 2:
                raise _bad(where, "a binned column needs at least two edges")
        else:
            raise _bad(where, f"unknown column kind {str(kind)[:20]!r}")


def _take(col: Any, idx: np.ndarray) -> Any:
    if isinstance(col, np.ndarray):
        return col[idx]
    return col.take(idx)


def _cast_numeric(x: np.ndarray, dtype: str) -> Any:
    if dtype[0] in "IU" or dtype == "Float32" or dtype == "Float64":
        arr = pd.array(np.where(np.isnan(x), 0, x), dtype=dtype) if dtype[0] in "IU" else pd.array(x, dtype=dtype)
        if dtype[0] in "IU":
            arr[np.isnan(x)] = pd.NA
        return arr
    if dtype.startswith(("int", "uint")):
        if np.isnan(x).any():
            return x  # a gap an integer dtype cannot hold: floats, as pandas itself would give
        return x.astype(dtype)
    return x.astype(dtype)


def _decode_numeric(x: np.ndarray, v: dict) -> Any:
    x = np.clip(x, v["min"], v["max"])
    if v["integral"]:
        x = np.round(x)
    return _cast_numeric(x, v["dtype"])


def _decode_categorical(codes: np.ndarray, v: dict) -> Any:
    cats = list(v["categories"]) + [None]
    vals = [cats[i] for i in np.clip(codes, 0, len(cats) - 1)]
    dtype = v["dtype"]
    if dtype == "bool" and not v["has_null"]:
        return np.asarray(vals, dtype=bool)
    if dtype in ("boolean", "string", "category") or dtype in _NUMERIC_DTYPES:
        try:
            if dtype in _NUMERIC_DTYPES:
                return _cast_numeric(np.array([np.nan if x is None else x for x in vals], dtype=np.float64), dtype)
            return pd.array(vals, dtype=dtype) if dtype != "category" else pd.Categorical(vals)
        except (TypeError, ValueError):
            pass
    return np.asarray(vals, dtype=object)


# ---------------------------------------------------------------------- the kind's base class
class SequenceGenerator(Generator):
    """Learns sequences and samples new ones.

    Subclasses implement `_fit(encoded)` (learn `EncodedSequences`, see the codec) and
    `_sample(n, rng, context, length)`: n new sequences as EncodedSequences whose `context` is the given codes,
    every one `length` steps long when `length` is given (else as long as the model decides, at most
    `codec_.max_length`), plus the state hooks of `Generator`. Models take a `window` hyperparameter: the window
    length a single long series is cut into (None: 128 or a quarter of the series, whichever is smaller).
    """

    kind: ClassVar[str] = "timeseries"
    _DOC_KEYS: ClassVar[tuple[str, ...]] = ("codec", "n_train_sequences")
    window: int | None = None

    def fit(self, data: SequenceData) -> "SequenceGenerator":
        """Learn `data` (not modified)."""
        if not isinstance(data, SequenceData):
            raise InvalidDataError(f"{type(self).__name__} learns timeseries data (a SequenceData), not "
                                   f"{kind_of(data)} data; use a generator for {kind_of(data)} data")
        codec = SequenceCodec.fit(data, self.window)
        self.codec_pending_ = codec  # the hooks read it; `codec_` is set last (it marks the model fitted)
        encoded = codec.encode(data)
        self.n_train_sequences_ = int(len(encoded.lengths))
        try:
            self._fit(encoded)
            self._canonicalise()
        finally:
            del self.codec_pending_
        self.codec_ = codec
        return self

    @property
    def _codec(self) -> SequenceCodec:
        """The codec while fitting or loading (before `codec_` marks the model fitted), then `codec_`."""
        return self.codec_ if hasattr(self, "codec_") else self.codec_pending_

    def sample(self, n: int, *, seed: int | None = None, conditions: Mapping[str, Any] | None = None,
               length: int | None = None) -> SequenceData:
        """n new sequences with fresh entity ids; same fitted model + same seed => same sequences.

        `conditions` ({context column: value}) fixes context values (ConditionError for a non-context column or
        an unseen value); `length` makes every sequence that many steps long (default: the learned lengths; the
        window length for a single long series; the one length when every training sequence had it).
        """
        self._require_fitted()
        n = check_count(n, "sequences")
        if length is not None:
            length = check_count(length, "steps")
        elif self.codec_.single_series:
            length = self.codec_.window
        elif len(self.codec_.lengths) == 1:  # every training sequence has one length: so do the samples
            length = int(self.codec_.lengths[0])
        conds = self.codec_.check_conditions(conditions)
        rng = np.random.default_rng(seed)
        context = self.codec_.sample_context(n, rng, conds)
        enc = self._sample(n, rng, context, length)
        enc.check(self.codec_)
        if length is not None and not (enc.lengths == length).all():
            raise AssertionError(f"{type(self).__name__}._sample ignored length={length}")
        return self.codec_.decode(enc, rng, conds)

    def _fit(self, encoded: EncodedSequences) -> None:
        raise NotImplementedError

    def _sample(self, n: int, rng: np.random.Generator, context: np.ndarray, length: int | None
                ) -> EncodedSequences:
        raise NotImplementedError

    # ------------------------------------------------------- persistence
    def _describe(self) -> dict[str, Any]:
        return {"codec": self.codec_.to_dict(), "n_train_sequences": self.n_train_sequences_}

    def _restore(self, doc: Mapping[str, Any], where: Path) -> SequenceCodec:
        try:
            codec = SequenceCodec.from_dict(doc["codec"])
        except GeneratorError as exc:
            raise ModelFormatError(f"{where}: {exc}") from exc
        n = doc["n_train_sequences"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ModelFormatError(f"{where}: n_train_sequences must be a positive integer")
        self.n_train_sequences_ = n
        self.codec_pending_ = codec  # `_set_state` reads it; `load` then sets `codec_`
        return codec

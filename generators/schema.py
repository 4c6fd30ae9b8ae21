"""Table schema: the kind of every column and whether it may be null; inferred, overridable, saved as JSON."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from generators.errors import InvalidDataError, SchemaError

KINDS = ("numeric", "integer", "categorical", "datetime", "boolean", "id")
_ID_NAME = re.compile(r"(^|_)(id|uuid|key)$", re.IGNORECASE)


@dataclass(frozen=True)
class ColumnSchema:
    """One column: its name, kind (one of KINDS) and whether nulls may appear."""

    name: str
    kind: str
    nullable: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SchemaError(
                f"column {self.name!r} has unknown kind {self.kind!r}; use one of {', '.join(KINDS)}"
            )


@dataclass(frozen=True)
class TableSchema:
    """An ordered tuple of column schemas."""

    columns: tuple[ColumnSchema, ...]

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise SchemaError(f"schema has duplicate column names: {names}; rename them")
        if not names:
            raise SchemaError("schema has no columns; a table needs at least one column")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __getitem__(self, name: str) -> ColumnSchema:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self.columns)

    @classmethod
    def infer(cls, data: pd.DataFrame, overrides: Mapping[str, Any] | None = None) -> "TableSchema":
        """Infer kinds and nullability from `data`; `overrides` maps a column to a kind or {kind, nullable}."""
        _check_frame(data)
        cols = [ColumnSchema(str(name), infer_kind(data[name]), bool(data[name].isna().any()))
                for name in data.columns]
        return cls(tuple(cols)).with_overrides(overrides or {})

    def with_overrides(self, overrides: Mapping[str, Any]) -> "TableSchema":
        """Return a copy with some columns' kind and/or nullability replaced."""
        unknown = [k for k in overrides if k not in self]
        if unknown:
            raise SchemaError(f"schema overrides name unknown columns {unknown}; columns are {self.names}")
        cols = []
        for c in self.columns:
            o = overrides.get(c.name)
            if o is None:
                cols.append(c)
            elif isinstance(o, str):
                cols.append(replace(c, kind=o))
            elif isinstance(o, Mapping):
                bad = set(o) - {"kind", "nullable"}
                if bad:
                    raise SchemaError(f"override for {c.name!r} has unknown keys {sorted(bad)}; use kind, nullable")
                cols.append(replace(c, **dict(o)))
            else:
                raise SchemaError(f"override for {c.name!r} must be a kind name or a mapping, got {o!r}")
        return TableSchema(tuple(cols))

    def to_dict(self) -> dict:
        return {"columns": [{"name": c.name, "kind": c.kind, "nullable": c.nullable} for c in self.columns]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TableSchema":
        try:
            return cls(tuple(ColumnSchema(str(c["name"]), str(c["kind"]), bool(c.get("nullable", False)))
                             for c in d["columns"]))
        except (KeyError, TypeError, AttributeError) as exc:
            raise SchemaError(f"malformed schema dict ({exc!r}); expected {{'columns': [{{name, kind, nullable}}]}}") from exc

    def validate_training_frame(self, data: pd.DataFrame) -> None:
        """Raise if `data` cannot be learned under this schema."""
        _check_frame(data)
        missing = [n for n in self.names if n not in data.columns]
        if missing:
            raise SchemaError(f"data lacks schema columns {missing}; pass a schema matching the data's columns")
        extra = [str(n) for n in data.columns if str(n) not in self]
        if extra:
            raise SchemaError(f"data has columns {extra} that the schema does not list; add them or drop them")
        for c in self.columns:
            s = data[c.name]
            if s.isna().any() and not c.nullable:
                raise SchemaError(f"column {c.name!r} has nulls but the schema says it is not nullable; "
                                  "set nullable=True for it")
            if c.kind in ("numeric", "integer") and not _is_numeric(s):
                raise SchemaError(f"column {c.name!r} is declared {c.kind} but holds {s.dtype} values; "
                                  "declare it categorical or convert it")
            if c.kind == "integer":
                v = pd.to_numeric(s.dropna()).to_numpy(dtype=float)
                if v.size and not np.all(np.isfinite(v) & (v == np.round(v))):
                    raise SchemaError(f"column {c.name!r} is declared integer but has fractional values; "
                                      "declare it numeric")
            if c.kind == "numeric":
                v = pd.to_numeric(s.dropna()).to_numpy(dtype=float)
                if v.size and not np.all(np.isfinite(v)):
                    raise SchemaError(f"column {c.name!r} has infinite values; replace them by nulls or drop the rows")
            if c.kind == "datetime":
                try:
                    pd.to_datetime(s.dropna())
                except (ValueError, TypeError) as exc:
                    raise SchemaError(f"column {c.name!r} is declared datetime but does not parse ({exc}); "
                                      "declare it categorical") from exc

    def check_frame(self, data: pd.DataFrame) -> list[str]:
        """List how `data` departs from this schema (columns, order, dtypes, nulls); empty when it conforms."""
        problems = []
        if [str(c) for c in data.columns] != self.names:
            problems.append(f"columns {list(data.columns)} != schema {self.names}")
            return problems
        for c in self.columns:
            s = data[c.name]
            if s.isna().any() and not c.nullable:
                problems.append(f"{c.name}: nulls in a non-nullable column")
            ok = {
                "numeric": pd.api.types.is_float_dtype(s),
                "integer": pd.api.types.is_integer_dtype(s),
                "datetime": pd.api.types.is_datetime64_any_dtype(s),
                "boolean": pd.api.types.is_bool_dtype(s) or (c.nullable and s.dtype == object),
                "categorical": not pd.api.types.is_datetime64_any_dtype(s),
                "id": s.notna().all() and s.is_unique,
            }[c.kind]
            if not ok:
                problems.append(f"{c.name}: dtype {s.dtype} does not fit kind {c.kind}")
        return problems


def infer_kind(s: pd.Series) -> str:
    """Guess a column's kind from its dtype, values and name."""
    v = s.dropna()
    name_is_id = bool(_ID_NAME.search(str(s.name)))
    if pd.api.types.is_bool_dtype(s) or (len(v) and v.map(type).isin([bool, np.bool_]).all()):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "datetime"
    if pd.api.types.is_integer_dtype(s):
        return "id" if name_is_id and v.is_unique and len(v) == len(s) else "integer"
    if pd.api.types.is_float_dtype(s):
        # pandas turns an integer column with nulls into floats; keep it integer
        if len(v) and s.isna().any() and np.all(v.to_numpy() == np.round(v.to_numpy())):
            return "integer"
        return "numeric"
    if name_is_id and v.is_unique and len(v) == len(s):
        return "id"
    return "categorical"


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _check_frame(data: Any) -> None:
    if not isinstance(data, pd.DataFrame):
        raise InvalidDataError(f"expected a pandas DataFrame, got {type(data).__name__}; wrap the data in pd.DataFrame")
    if len(data) == 0:
        raise InvalidDataError("the table has no rows; a generator needs at least a few rows to learn from")
    if data.shape[1] == 0:
        raise InvalidDataError("the table has no columns")
    all_null = [str(c) for c in data.columns if data[c].isna().all()]
    if all_null:
        raise InvalidDataError(f"columns {all_null} are entirely null; drop them before fitting")
    dup = pd.Index(data.columns).duplicated()
    if dup.any():
        raise InvalidDataError(f"duplicate column names {list(pd.Index(data.columns)[dup])}; rename them")


def as_schema(schema: "TableSchema | Mapping[str, Any] | None", data: pd.DataFrame) -> TableSchema:
    """Turn None (infer), a dict from `to_dict`, or a TableSchema into a TableSchema."""
    if schema is None:
        return TableSchema.infer(data)
    if isinstance(schema, TableSchema):
        return schema
    if isinstance(schema, Mapping) and "columns" in schema:
        return TableSchema.from_dict(schema)
    if isinstance(schema, Mapping):
        return TableSchema.infer(data, schema)
    raise SchemaError(f"schema must be a TableSchema, its dict, or a mapping of overrides; got {type(schema).__name__}")


def iter_kinds(schema: TableSchema, kinds: Iterable[str]) -> list[ColumnSchema]:
    wanted = set(kinds)
    return [c for c in schema.columns if c.kind in wanted]

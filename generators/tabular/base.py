"""The tabular kind: a frame (with its schema) in, a frame of synthetic rows out, through the TableCodec."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np
import pandas as pd

from generators.base import Generator, check_count
from generators.codec import ModelColumn, TableCodec, matches
from generators.conditions import format_conditions
from generators.data import TableData, kind_of
from generators.errors import (ConditionUnreachableError, GeneratorError, InvalidDataError, ModelFormatError,
                               RejectionSamplingWarning)
from generators.schema import TableSchema, as_schema


class TableGenerator(Generator):
    """Learns a table and samples synthetic rows like it.

    Subclasses implement `_fit(frame, columns)`, learning the model frame (see `generators.codec`: numerics as
    float64, categoricals as int64 codes, no nulls, ids and constants left out), and `_sample(n, rng)`, returning a
    model frame of n rows, plus the state hooks of `Generator`, checked against `model_columns_`.
    """

    kind: ClassVar[str] = "tabular"
    _DOC_KEYS: ClassVar[tuple[str, ...]] = ("schema", "codec", "n_train_rows", "model_columns")
    # cap on rows drawn by rejection when sampling under conditions
    max_rejection_draws: ClassVar[int] = 2_000_000

    # --------------------------------------------------------------- fit
    def fit(self, data: pd.DataFrame | TableData, schema: TableSchema | Mapping[str, Any] | None = None
            ) -> "TableGenerator":
        """Learn `data` (not modified); `schema` is inferred when None, or a TableSchema / overrides mapping."""
        if isinstance(data, TableData):
            data, schema = data.frame, data.schema if schema is None else schema
        elif not isinstance(data, pd.DataFrame) and kind_of(data) != "tabular":
            raise InvalidDataError(f"{type(self).__name__} learns tabular data, not {kind_of(data)} data; "
                                   f"use a generator for {kind_of(data)} data")
        schema = as_schema(schema, data)
        schema.validate_training_frame(data)
        rng = np.random.default_rng(self.seed)
        codec = TableCodec.fit(data, schema)
        frame = codec.encode(data, rng)
        columns = codec.model_columns
        self.schema_ = schema
        self.n_train_rows_ = int(len(data))
        self.model_columns_ = columns
        if columns:
            self._fit(frame, columns)
            self._canonicalise()
        self.codec_ = codec  # last: marks the generator fitted
        return self

    def _fit(self, frame: pd.DataFrame, columns: list[ModelColumn]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ sample
    def sample(self, n: int, *, seed: int | None = None,
               conditions: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Draw n synthetic rows; same fitted model + same seed => same rows.

        `conditions` ({column: value or generators.conditions.Range}) are met by every row. A model that can
        condition natively (see `conditioning_method`) samples them directly at about the cost of an unconditional
        sample; otherwise rows are drawn by rejection, with a RejectionSamplingWarning, and
        ConditionUnreachableError when `max_rejection_draws` rows do not yield n matches.
        """
        self._require_fitted()
        n = check_count(n, "rows")
        conds = self.codec_.check_conditions(conditions)
        rng = np.random.default_rng(seed)
        if not conds:
            table = self.codec_.decode(self._draw(n, rng))
        elif self._is_native(conds):
            table = self._draw_native(n, rng, conds)
        else:
            warnings.warn(RejectionSamplingWarning(
                f"{type(self).__name__} cannot condition on {format_conditions(conds)} natively; sampling by "
                "rejection (slow for rare values)"), stacklevel=2)
            table = self._draw_matching(n, rng, conds)
        return self.codec_.add_ids(table, rng)

    def conditioning_method(self, conditions: Mapping[str, Any] | None) -> str:
        """How `sample` would meet these conditions: "none", "native" or "rejection" (checks them; samples nothing)."""
        self._require_fitted("check conditions")
        conds = self.codec_.check_conditions(conditions)
        if not conds:
            return "none"
        return "native" if self._is_native(conds) else "rejection"

    def _is_native(self, conds: dict[str, Any]) -> bool:
        constraints = self.codec_.model_constraints(conds)
        return not constraints or self._can_condition(constraints)

    def _can_condition(self, constraints: dict[str, Any]) -> bool:
        """Whether `_sample_conditioned` can meet these model-column constraints (a code or a Range each)."""
        return False

    def _sample_conditioned(self, n: int, rng: np.random.Generator, constraints: dict[str, Any]) -> pd.DataFrame:
        """A model frame of n rows drawn from the model's distribution given the constraints."""
        raise NotImplementedError

    def _draw(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        if not self.model_columns_:
            return pd.DataFrame(index=pd.RangeIndex(n))
        frame = self._sample(n, rng)
        if len(frame) != n:
            raise AssertionError(f"{type(self).__name__}._sample returned {len(frame)} rows, not {n}")
        return frame

    def _draw_native(self, n: int, rng: np.random.Generator, conds: dict[str, Any]) -> pd.DataFrame:
        """Rows drawn under the constraints; the decoded rows are checked, and the rare row that decoding moved
        out of a range (rounding at its edge) is drawn again."""
        constraints = self.codec_.model_constraints(conds)
        if not constraints:
            return self.codec_.decode(self._draw(n, rng))
        kept: list[pd.DataFrame] = []
        found = 0
        for _ in range(20):
            frame = self._sample_conditioned(max(n - found, 16), rng, constraints)
            table = self.codec_.decode(frame)
            hit = table[matches(table, conds)]
            kept.append(hit)
            found += len(hit)
            if found >= n:
                return pd.concat(kept, ignore_index=True).iloc[:n].reset_index(drop=True)
        raise ConditionUnreachableError(f"{type(self).__name__} drew only {found} of {n} rows meeting "
                                        f"{format_conditions(conds)} natively; widen the range")

    def _draw_matching(self, n: int, rng: np.random.Generator, conds: dict[str, Any]) -> pd.DataFrame:
        kept: list[pd.DataFrame] = []
        found = drawn = 0
        batch = max(2 * n, 1024)
        while found < n:
            if drawn >= self.max_rejection_draws:
                raise ConditionUnreachableError(
                    f"only {found} of {n} rows matched {format_conditions(conds)} after drawing {drawn} rows; the "
                    "condition is too rare for this model: ask for fewer rows or train on data with more such rows")
            batch = min(batch, self.max_rejection_draws - drawn)
            table = self.codec_.decode(self._draw(batch, rng))
            hit = table[matches(table, conds)]
            drawn += batch
            found += len(hit)
            kept.append(hit)
            rate = max(found, 1) / drawn
            batch = int(min(max((n - found) / rate * 1.2, 1024), 500_000))
        return pd.concat(kept, ignore_index=True).iloc[:n].reset_index(drop=True)

    def _sample(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        raise NotImplementedError

    # ------------------------------------------------------- persistence
    def _has_weights(self) -> bool:
        return bool(self.model_columns_)

    def _describe(self) -> dict[str, Any]:
        return {"schema": self.schema_.to_dict(), "codec": self.codec_.to_dict(), "n_train_rows": self.n_train_rows_,
                "model_columns": [[c.name, c.type, c.n_categories] for c in self.model_columns_]}

    def _restore(self, doc: Mapping[str, Any], where: Path) -> TableCodec:
        if not isinstance(doc["schema"], dict) or not isinstance(doc["codec"], dict):
            raise ModelFormatError(f"{where}: 'schema' and 'codec' must be mappings")
        try:
            self.schema_ = TableSchema.from_dict(doc["schema"])
        except GeneratorError as exc:
            raise ModelFormatError(f"{where}: bad schema ({exc})") from exc
        codec = TableCodec.from_dict(self.schema_, doc["codec"])
        n_rows = doc["n_train_rows"]
        if isinstance(n_rows, bool) or not isinstance(n_rows, int) or n_rows < 0:
            raise ModelFormatError(f"{where}: n_train_rows must be a non-negative integer, not {str(n_rows)[:30]!r}")
        self.n_train_rows_ = n_rows
        columns = codec.model_columns
        if doc["model_columns"] != [[c.name, c.type, c.n_categories] for c in columns]:
            raise ModelFormatError(f"{where}: model_columns do not match the columns the codec produces "
                                   f"({[c.name for c in columns][:10]}...)")
        self.model_columns_ = columns
        return codec

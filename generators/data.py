"""Each data kind's natural container: what a generator of that kind learns and what its `sample` returns.

- tabular: `TableData` (a frame and, optionally, its schema); a bare DataFrame is accepted as well;
- timeseries: `SequenceData`, a long frame (one row per entity and step) naming its entity, time and context
  columns; every other column is a value column;
- image: `ImageData`, uint8 pixels of shape (n, height, width, channels) and one label (text or None) per image.

The containers only check their own shape; what a model can learn from them is its kind's codec's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from generators.errors import InvalidDataError
from generators.kinds import KINDS  # noqa: F401 - re-exported


@dataclass
class TableData:
    """A table: one row per record; `schema` (a TableSchema or column overrides) is inferred when None."""

    frame: pd.DataFrame
    schema: Any = None

    kind = "tabular"


@dataclass
class SequenceData:
    """Many sequences in one long frame: one row per (entity, step), sorted or not.

    `entity` names the column that tells sequences apart (None: the whole frame is one long series); `time` the
    column ordering the steps (integers or datetimes); `context` columns are constant within an entity (a
    customer's country) and are inferred when None. Every other column is a value column (numeric or categorical,
    NaN where the data has gaps).
    """

    frame: pd.DataFrame
    time: str
    entity: str | None = None
    context: list[str] | None = None

    kind = "timeseries"

    def check(self) -> "SequenceData":
        """Raise InvalidDataError naming what is wrong with the frame or its column roles; returns self."""
        if not isinstance(self.frame, pd.DataFrame):
            raise InvalidDataError(f"SequenceData.frame must be a pandas DataFrame, got {type(self.frame).__name__}")
        if len(self.frame) == 0:
            raise InvalidDataError("the sequences have no rows; a generator needs at least a few sequences")
        columns = [str(c) for c in self.frame.columns]
        if len(set(columns)) != len(columns):
            raise InvalidDataError("the sequence frame has duplicate column names; rename them")
        for role, name in (("time", self.time), ("entity", self.entity)):
            if name is not None and name not in self.frame.columns:
                raise InvalidDataError(f"{role} column {name!r} is not in the frame; columns are {', '.join(columns)}")
        if self.entity is not None and self.entity == self.time:
            raise InvalidDataError("the entity and time columns must differ")
        if self.frame[self.time].isna().any():
            raise InvalidDataError(f"time column {self.time!r} has missing values")
        if self.entity is not None and self.frame[self.entity].isna().any():
            raise InvalidDataError(f"entity column {self.entity!r} has missing values")
        for name in self.context or []:
            if name not in self.frame.columns or name in (self.time, self.entity):
                raise InvalidDataError(f"context column {name!r} is not a column of the frame besides the entity "
                                       "and time columns")
        if not self.value_columns():
            raise InvalidDataError("the sequences have no value columns besides the entity, time and context ones")
        return self

    def value_columns(self) -> list[str]:
        fixed = {self.time, self.entity, *(self.context or [])}
        return [c for c in self.frame.columns if c not in fixed]

    def entities(self) -> np.ndarray:
        """The distinct entity ids in order of first appearance (one None for a single series)."""
        if self.entity is None:
            return np.array([None], dtype=object)
        return pd.unique(self.frame[self.entity])


@dataclass
class ImageData:
    """Images of one size: uint8 `pixels` (n, height, width, channels) and `labels` (n texts or Nones) or None."""

    pixels: np.ndarray
    labels: np.ndarray | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    kind = "image"

    def check(self) -> "ImageData":
        """Raise InvalidDataError naming what is wrong with the pixels or labels; returns self."""
        px = self.pixels
        if not isinstance(px, np.ndarray):
            raise InvalidDataError(f"ImageData.pixels must be a numpy array, got {type(px).__name__}")
        if px.ndim != 4:
            raise InvalidDataError(f"ImageData.pixels must have shape (n, height, width, channels), got {px.shape}")
        if px.dtype != np.uint8:
            raise InvalidDataError(f"ImageData.pixels must be uint8 (0..255), got {px.dtype}; scale and cast them")
        if px.shape[0] == 0 or 0 in px.shape[1:]:
            raise InvalidDataError(f"ImageData holds no pixels (shape {px.shape})")
        if px.shape[3] not in (1, 3, 4):
            raise InvalidDataError(f"images must have 1, 3 or 4 channels, got {px.shape[3]}")
        if self.labels is not None:
            labels = np.asarray(self.labels, dtype=object)
            if labels.shape != (px.shape[0],):
                raise InvalidDataError(f"{labels.shape[0] if labels.ndim else 0} labels for {px.shape[0]} images; "
                                       "give one label per image (None where unknown)")
            bad = [v for v in labels if v is not None and not isinstance(v, str)]
            if bad:
                raise InvalidDataError(f"labels must be text or None, got {type(bad[0]).__name__} {bad[0]!r}")
            self.labels = labels
        return self

    def __len__(self) -> int:
        return int(self.pixels.shape[0])


def kind_of(data: Any) -> str:
    """The kind of a container (a bare DataFrame is a table); InvalidDataError for anything else."""
    if isinstance(data, pd.DataFrame):
        return "tabular"
    if isinstance(data, (TableData, SequenceData, ImageData)):
        return data.kind
    raise InvalidDataError(f"expected a DataFrame, TableData, SequenceData or ImageData, got {type(data).__name__}")

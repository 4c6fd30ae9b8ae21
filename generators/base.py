"""The Generator protocol: fit a table, sample new rows, save and load without pickle."""

from __future__ import annotations

import inspect
import json
import warnings
from abc import ABC, abstractmethod
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np
import pandas as pd

from generators.codec import ModelColumn, TableCodec, matches
from generators.errors import (ConditionUnreachableError, InvalidSampleSizeError, ModelFormatError,
                               NotFittedError, VersionMismatchWarning)
from generators.schema import TableSchema, as_schema

FORMAT_VERSION = 1
MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"
_VERSIONED = ("synthwatch", "numpy", "pandas", "torch", "scikit-learn", "sdv", "safetensors")


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries a saved model depends on."""
    out = {}
    for dist in _VERSIONED:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


class Generator(ABC):
    """Learns a table and samples synthetic rows like it.

    Subclasses: `__init__` only stores hyperparameters (all keyword, JSON-able, one of them `seed`);
    `_fit(frame, columns)` learns the model frame (see `generators.codec`); `_sample(n, rng)` returns a model
    frame of n rows; `_get_state()` / `_set_state()` give the fitted state as (JSON dict, numpy arrays).
    """

    name: ClassVar[str] = ""
    # cap on rows drawn by rejection when sampling under conditions
    max_rejection_draws: ClassVar[int] = 2_000_000

    # ------------------------------------------------------------ params
    def get_params(self) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self"}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "codec_")

    # --------------------------------------------------------------- fit
    def fit(self, data: pd.DataFrame, schema: TableSchema | Mapping[str, Any] | None = None) -> "Generator":
        """Learn `data` (not modified); `schema` is inferred when None, or a TableSchema / overrides mapping."""
        schema = as_schema(schema, data)
        schema.validate_training_frame(data)
        rng = np.random.default_rng(self.seed)
        codec = TableCodec.fit(data, schema)
        frame = codec.encode(data, rng)
        columns = codec.model_columns
        self.schema_ = schema
        self.n_train_rows_ = int(len(data))
        if columns:
            self._fit(frame, columns)
        self.model_columns_ = columns
        self.codec_ = codec  # last: marks the generator fitted
        return self

    @abstractmethod
    def _fit(self, frame: pd.DataFrame, columns: list[ModelColumn]) -> None: ...

    # ------------------------------------------------------------ sample
    def sample(self, n: int, *, seed: int | None = None,
               conditions: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Draw n synthetic rows; same fitted model + same seed => same rows.

        `conditions` ({column: value}) keeps only rows with those values, drawn by rejection; raises
        ConditionUnreachableError when `max_rejection_draws` rows do not yield n matches.
        """
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(data) or load a saved model first")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
            raise InvalidSampleSizeError(f"number of rows must be a positive integer, got {n!r}")
        n = int(n)
        conds = self.codec_.check_conditions(conditions)
        rng = np.random.default_rng(seed)
        if not conds:
            table = self.codec_.decode(self._draw(n, rng))
        else:
            table = self._draw_matching(n, rng, conds)
        return self.codec_.add_ids(table, rng)

    def _draw(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        if not self.model_columns_:
            return pd.DataFrame(index=pd.RangeIndex(n))
        frame = self._sample(n, rng)
        if len(frame) != n:
            raise AssertionError(f"{type(self).__name__}._sample returned {len(frame)} rows, not {n}")
        return frame

    def _draw_matching(self, n: int, rng: np.random.Generator, conds: dict[str, Any]) -> pd.DataFrame:
        kept: list[pd.DataFrame] = []
        found = drawn = 0
        batch = max(2 * n, 1024)
        while found < n:
            if drawn >= self.max_rejection_draws:
                raise ConditionUnreachableError(
                    f"only {found} of {n} rows matched {conds} after drawing {drawn} rows; the condition is too "
                    "rare for this model: ask for fewer rows or train on data with more such rows")
            batch = min(batch, self.max_rejection_draws - drawn)
            table = self.codec_.decode(self._draw(batch, rng))
            hit = table[matches(table, conds)]
            drawn += batch
            found += len(hit)
            kept.append(hit)
            rate = max(found, 1) / drawn
            batch = int(min(max((n - found) / rate * 1.2, 1024), 500_000))
        return pd.concat(kept, ignore_index=True).iloc[:n].reset_index(drop=True)

    @abstractmethod
    def _sample(self, n: int, rng: np.random.Generator) -> pd.DataFrame: ...

    # ------------------------------------------------------- persistence
    @abstractmethod
    def _get_state(self) -> tuple[dict, dict[str, np.ndarray]]: ...

    @abstractmethod
    def _set_state(self, state: dict, arrays: dict[str, np.ndarray]) -> None: ...

    def save(self, path: str | Path) -> Path:
        """Write `path/model.json` (params, schema, fitted state, versions) and `path/weights.safetensors`."""
        from safetensors.numpy import save_file

        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted; fit it before saving")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state, arrays = self._get_state() if self.model_columns_ else ({}, {})
        doc = {
            "format_version": FORMAT_VERSION,
            "generator": self.name,
            "params": self.get_params(),
            "schema": self.schema_.to_dict(),
            "codec": self.codec_.to_dict(),
            "n_train_rows": self.n_train_rows_,
            "model_columns": [[c.name, c.type, c.n_categories] for c in self.model_columns_],
            "state": state,
            "versions": library_versions(),
        }
        (path / MODEL_FILE).write_text(json.dumps(doc, indent=1, allow_nan=True))
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path / WEIGHTS_FILE))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Generator":
        """Rebuild a saved generator; the class comes from the registry by name, never from the file's code."""
        from safetensors.numpy import load_file

        from generators.registry import get_generator_class

        path = Path(path)
        try:
            doc = json.loads((path / MODEL_FILE).read_text())
        except FileNotFoundError as exc:
            raise ModelFormatError(f"no {MODEL_FILE} in {path}; point to a directory written by Generator.save") from exc
        except json.JSONDecodeError as exc:
            raise ModelFormatError(f"{path / MODEL_FILE} is not valid JSON ({exc}); re-train the model") from exc
        if doc.get("format_version") != FORMAT_VERSION:
            raise ModelFormatError(f"{path} has model format {doc.get('format_version')!r}, this synthwatch reads "
                                   f"{FORMAT_VERSION}; re-train the model with this version")
        klass = get_generator_class(doc["generator"])
        if cls is not Generator and not issubclass(klass, cls):
            raise ModelFormatError(f"{path} holds a {doc['generator']!r} model, not a {cls.__name__}")
        saved, running = doc.get("versions", {}), library_versions()
        diff = {k: (saved.get(k), running.get(k)) for k in running if saved.get(k) != running.get(k)}
        if diff:
            warnings.warn(f"model {path} was saved with other library versions "
                          + ", ".join(f"{k} {a} (now {b})" for k, (a, b) in diff.items())
                          + "; samples may differ from the original; re-train to silence this",
                          VersionMismatchWarning, stacklevel=2)
        obj = klass(**doc["params"])
        obj.schema_ = TableSchema.from_dict(doc["schema"])
        obj.n_train_rows_ = int(doc["n_train_rows"])
        obj.model_columns_ = [ModelColumn(a, b, int(c)) for a, b, c in doc["model_columns"]]
        weights = path / WEIGHTS_FILE
        arrays = load_file(str(weights)) if weights.exists() else {}
        if obj.model_columns_:
            obj._set_state(doc["state"], arrays)
        obj.codec_ = TableCodec.from_dict(obj.schema_, doc["codec"])
        return obj


def torch_generator(rng: np.random.Generator):
    """A torch.Generator seeded from a numpy Generator (so one seed drives both)."""
    import torch

    g = torch.Generator()
    g.manual_seed(int(rng.integers(0, 2**62)))
    return g

"""The Generator protocol: fit a table, sample new rows, save and load without pickle."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping

import numpy as np
import pandas as pd

from generators.codec import ModelColumn, TableCodec, matches
from generators.errors import (ConditionUnreachableError, GeneratorError, InvalidSampleSizeError, ModelFormatError,
                               NotFittedError, UnsafeModelError, VersionMismatchWarning)
from generators.schema import TableSchema, as_schema
from modelkit import errors as shared
from modelkit.files import (MODEL_FILE, WEIGHTS_FILE, canonical, library_versions, read_envelope,
                            read_safetensors_checked, warn_if_versions_differ, write_envelope)
from modelkit.params import check_saved_params, get_params

FORMAT_VERSION = 1
VERSIONED_LIBRARIES = ("synthwatch", "numpy", "pandas", "torch", "scikit-learn", "sdv", "safetensors")
_DOC_KEYS = ("generator", "params", "schema", "codec", "n_train_rows", "model_columns", "state")


class Generator(ABC):
    """Learns a table and samples synthetic rows like it.

    Subclasses: `__init__` only stores hyperparameters (all keyword, JSON-able, one of them `seed`);
    `_fit(frame, columns)` learns the model frame (see `generators.codec`); `_sample(n, rng)` returns a model
    frame of n rows; `_get_state()` / `_set_state()` give the fitted state as (JSON dict, C-contiguous numpy
    arrays of fixed dtypes). `_set_state` treats its input as hostile: it checks every array's presence, dtype,
    shape and values against `model_columns_` and raises ModelFormatError. `fit` ends by passing the fitted state
    through both, so a fitted model and its saved-and-loaded copy compute on identical memory.
    """

    name: ClassVar[str] = ""
    # cap on rows drawn by rejection when sampling under conditions
    max_rejection_draws: ClassVar[int] = 2_000_000

    # ------------------------------------------------------------ params
    def get_params(self) -> dict[str, Any]:
        return get_params(self)

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
        self.model_columns_ = columns
        if columns:
            self._fit(frame, columns)
            self._canonicalise()
        self.codec_ = codec  # last: marks the generator fitted
        return self

    def _canonicalise(self) -> None:
        """Replace the fitted state by exactly what `load` would rebuild from it (C-contiguous arrays, JSON state).

        A saved-and-loaded model then computes with the very same memory layouts and dtypes as the fitted one, so
        both sample bit-identically (a column-major matrix and its row-major copy take different BLAS paths).
        """
        state, arrays = self._get_state()
        self._set_state(json.loads(json.dumps(state, allow_nan=True)), {k: canonical(v) for k, v in arrays.items()})

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
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted; fit it before saving")
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
            "versions": library_versions(VERSIONED_LIBRARIES),
        }
        return write_envelope(path, doc, arrays, indent=1)

    @classmethod
    def load(cls, path: str | Path) -> "Generator":
        """Rebuild a saved generator; the class comes from the registry by name, never from the file's code.

        The directory is treated as hostile: anything malformed, inconsistent or unsafe raises ModelFormatError
        (UnsafeModelError for a class outside the allow-list) in one line naming the file.
        """
        path = Path(path)
        try:
            return cls._load(path)
        except shared.ModelFormatError as exc:
            msg = " ".join(str(exc).split())
            if str(path) not in msg:
                msg = f"{path / MODEL_FILE}: {msg}"
            if isinstance(exc, GeneratorError):
                error = type(exc)
            else:  # a check of the shared envelope: it says what is wrong, the way out is ours
                error = UnsafeModelError if isinstance(exc, shared.UnsafeModelError) else ModelFormatError
                msg = f"{msg}; re-train the model, or point to a directory Generator.save wrote"
            if error is type(exc) and msg == str(exc):
                raise
            raise error(msg) from exc
        except Warning:  # a VersionMismatchWarning that a warnings filter turned into an error
            raise
        except Exception as exc:  # noqa: BLE001 - never KeyboardInterrupt/SystemExit (BaseException)
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            raise ModelFormatError(f"{path / MODEL_FILE}: cannot rebuild the saved model ({detail}); the directory is "
                                   "corrupt or was not written by Generator.save: re-train the model") from exc

    @classmethod
    def _load(cls, path: Path) -> "Generator":
        from generators.registry import REGISTRY, get_generator_class

        doc = read_envelope(path, format_version=FORMAT_VERSION, keys=_DOC_KEYS)
        where = path / MODEL_FILE
        name = doc["generator"]
        if not isinstance(name, str) or name not in REGISTRY:
            raise ModelFormatError(f"{where} names unknown generator {str(name)[:50]!r}; known: "
                                   f"{', '.join(sorted(REGISTRY))}")
        klass = get_generator_class(name)
        if cls is not Generator and not issubclass(klass, cls):
            raise ModelFormatError(f"{path} holds a {name!r} model, not a {cls.__name__}")
        saved = doc.get("versions", {})
        if not isinstance(saved, dict):
            raise ModelFormatError(f"{where}: 'versions' is not a mapping of library to version")
        warn_if_versions_differ(path, saved, library_versions(VERSIONED_LIBRARIES), category=VersionMismatchWarning,
                                consequence="samples may differ from the original; re-train to silence this",
                                stacklevel=3)
        check_saved_params(klass, doc["params"], where, complete=True)
        obj = klass(**doc["params"])
        if not isinstance(doc["schema"], dict) or not isinstance(doc["codec"], dict):
            raise ModelFormatError(f"{where}: 'schema' and 'codec' must be mappings")
        try:
            obj.schema_ = TableSchema.from_dict(doc["schema"])
        except GeneratorError as exc:
            raise ModelFormatError(f"{where}: bad schema ({exc})") from exc
        codec = TableCodec.from_dict(obj.schema_, doc["codec"])
        n_rows = doc["n_train_rows"]
        if isinstance(n_rows, bool) or not isinstance(n_rows, int) or n_rows < 0:
            raise ModelFormatError(f"{where}: n_train_rows must be a non-negative integer, not {str(n_rows)[:30]!r}")
        obj.n_train_rows_ = n_rows
        columns = codec.model_columns
        if doc["model_columns"] != [[c.name, c.type, c.n_categories] for c in columns]:
            raise ModelFormatError(f"{where}: model_columns do not match the columns the codec produces "
                                   f"({[c.name for c in columns][:10]}...)")
        obj.model_columns_ = columns
        if not isinstance(doc["state"], dict):
            raise ModelFormatError(f"{where}: 'state' is not a mapping")
        weights = path / WEIGHTS_FILE
        if columns:
            arrays = read_safetensors_checked(weights)
            try:
                obj._set_state(doc["state"], arrays)
            except ModelFormatError as exc:
                raise type(exc)(f"{where} with {WEIGHTS_FILE}: {exc}") from exc
            except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
                raise ModelFormatError(f"{where} with {WEIGHTS_FILE}: saved state does not fit a "
                                       f"{name!r} model ({type(exc).__name__}: {str(exc)[:200]})") from exc
        obj.codec_ = codec
        return obj


def take_array(arrays: Mapping[str, np.ndarray], key: str, dtype: Any, shape: tuple | None = None,
               ndim: int | None = None, finite: bool = True) -> np.ndarray:
    """A saved array checked for presence, dtype, shape and finite values, as a C-contiguous array."""
    if key not in arrays:
        raise ModelFormatError(f"array {key!r} is missing from the weights")
    a = arrays[key]
    if a.dtype != np.dtype(dtype):
        raise ModelFormatError(f"array {key!r} is {a.dtype}, expected {np.dtype(dtype)}")
    if (shape is not None and a.shape != tuple(shape)) or (ndim is not None and a.ndim != ndim):
        raise ModelFormatError(f"array {key!r} has shape {a.shape}, expected "
                               f"{tuple(shape) if shape is not None else f'{ndim} dimensions'}")
    if finite and a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ModelFormatError(f"array {key!r} holds NaN or infinite values")
    return np.ascontiguousarray(a)


def check_array_keys(arrays: Mapping[str, np.ndarray], expected: Iterable[str]) -> None:
    """Refuse weights whose array names are not exactly the expected ones."""
    expected = set(expected)
    extra, missing = sorted(set(arrays) - expected), sorted(expected - set(arrays))
    if missing:
        raise ModelFormatError(f"array {missing[0]!r} is missing from the weights")
    if extra:
        raise ModelFormatError(f"the weights hold unexpected array {extra[0][:50]!r}")


def torch_generator(rng: np.random.Generator):
    """A torch.Generator seeded from a numpy Generator (so one seed drives both)."""
    import torch

    g = torch.Generator()
    g.manual_seed(int(rng.integers(0, 2**62)))
    return g

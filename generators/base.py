"""The Generator protocol: fit a table, sample new rows, save and load without pickle."""

from __future__ import annotations

import inspect
import json
import math
import types
import typing
import warnings
from abc import ABC, abstractmethod
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping

import numpy as np
import pandas as pd

from generators.codec import ModelColumn, TableCodec, matches
from generators.errors import (ConditionUnreachableError, GeneratorError, InvalidSampleSizeError, ModelFormatError,
                               NotFittedError, VersionMismatchWarning)
from generators.schema import TableSchema, as_schema

FORMAT_VERSION = 1
MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"
_VERSIONED = ("synthwatch", "numpy", "pandas", "torch", "scikit-learn", "sdv", "safetensors")
MAX_MODEL_JSON_BYTES = 64 * 2**20
MAX_SAFETENSORS_HEADER_BYTES = 100 * 2**20  # the safetensors library's own limit
_DOC_KEYS = ("format_version", "generator", "params", "schema", "codec", "n_train_rows", "model_columns", "state")
_ST_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2, "U32": 4, "I32": 4, "F32": 4,
                "U64": 8, "I64": 8, "F64": 8}


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
        self._set_state(json.loads(json.dumps(state, allow_nan=True)),
                        {k: np.array(v, order="C", copy=True) for k, v in arrays.items()})

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
        """Rebuild a saved generator; the class comes from the registry by name, never from the file's code.

        The directory is treated as hostile: anything malformed, inconsistent or unsafe raises ModelFormatError
        (UnsafeModelError for a class outside the allow-list) in one line naming the file.
        """
        path = Path(path)
        try:
            return cls._load(path)
        except ModelFormatError as exc:
            msg = " ".join(str(exc).split())
            if str(path) not in msg:
                msg = f"{path / MODEL_FILE}: {msg}"
            if msg == str(exc):
                raise
            raise type(exc)(msg) from exc
        except Warning:  # a VersionMismatchWarning that a warnings filter turned into an error
            raise
        except Exception as exc:  # noqa: BLE001 - never KeyboardInterrupt/SystemExit (BaseException)
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            raise ModelFormatError(f"{path / MODEL_FILE}: cannot rebuild the saved model ({detail}); the directory is "
                                   "corrupt or was not written by Generator.save: re-train the model") from exc

    @classmethod
    def _load(cls, path: Path) -> "Generator":
        from generators.registry import REGISTRY, get_generator_class

        doc = _read_model_json(path / MODEL_FILE)
        where = path / MODEL_FILE
        missing = [k for k in _DOC_KEYS if k not in doc]
        if missing:
            raise ModelFormatError(f"{where} lacks the key {missing[0]!r}; it was not written by Generator.save")
        version = doc["format_version"]
        if isinstance(version, bool) or version != FORMAT_VERSION:
            raise ModelFormatError(f"{where} has model format {str(version)[:20]!r}, this synthwatch reads "
                                   f"{FORMAT_VERSION}; re-train the model with this version")
        name = doc["generator"]
        if not isinstance(name, str) or name not in REGISTRY:
            raise ModelFormatError(f"{where} names unknown generator {str(name)[:50]!r}; known: "
                                   f"{', '.join(sorted(REGISTRY))}")
        klass = get_generator_class(name)
        if cls is not Generator and not issubclass(klass, cls):
            raise ModelFormatError(f"{path} holds a {name!r} model, not a {cls.__name__}")
        saved, running = doc.get("versions", {}), library_versions()
        if not isinstance(saved, dict):
            raise ModelFormatError(f"{where}: 'versions' is not a mapping of library to version")
        diff = {k: (saved.get(k), running.get(k)) for k in running if saved.get(k) != running.get(k)}
        if diff:
            warnings.warn(f"model {path} was saved with other library versions "
                          + ", ".join(f"{k} {str(a)[:30]} (now {b})" for k, (a, b) in diff.items())
                          + "; samples may differ from the original; re-train to silence this",
                          VersionMismatchWarning, stacklevel=3)
        check_params(klass, doc["params"], where)
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


def _read_model_json(path: Path) -> dict:
    """The parsed model.json, refusing what is missing, not a regular file, oversized or not a JSON object."""
    if not path.exists():
        raise ModelFormatError(f"no {MODEL_FILE} in {path.parent}; point to a directory written by Generator.save")
    if not path.is_file():
        raise ModelFormatError(f"{path} is not a regular file")
    with open(path, "rb") as f:
        raw = f.read(MAX_MODEL_JSON_BYTES + 1)
    if len(raw) > MAX_MODEL_JSON_BYTES:
        raise ModelFormatError(f"{path} is larger than {MAX_MODEL_JSON_BYTES} bytes; no saved model is that large")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelFormatError(f"{path} is not valid JSON ({exc}); re-train the model") from exc
    except RecursionError as exc:
        raise ModelFormatError(f"{path} is nested too deeply to be a saved model") from exc
    if not isinstance(doc, dict):
        raise ModelFormatError(f"{path} holds a JSON {type(doc).__name__}, not a saved model's object")
    return doc


def read_safetensors_checked(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a safetensors file as C-contiguous copies, after checking its header against the file.

    Refuses (ModelFormatError naming the file) a missing or truncated file, a header length beyond the file or
    MAX_SAFETENSORS_HEADER_BYTES, a header that is not JSON, unknown dtypes, and offsets or sizes that do not fit.
    """
    from safetensors.numpy import load

    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path} is missing or not a regular file; the model needs its weights")
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ModelFormatError(f"{path} is truncated ({len(data)} bytes, shorter than the 8-byte header length)")
    n = int.from_bytes(data[:8], "little")
    if n > MAX_SAFETENSORS_HEADER_BYTES or 8 + n > len(data):
        raise ModelFormatError(f"{path} declares a {n}-byte header, beyond the file ({len(data)} bytes) or the "
                               f"{MAX_SAFETENSORS_HEADER_BYTES}-byte cap; the file is truncated or forged")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFormatError(f"{path} has a header that is not JSON ({type(exc).__name__})") from exc
    if not isinstance(header, dict):
        raise ModelFormatError(f"{path} has a header that is not a JSON object")
    body = len(data) - 8 - n
    spans = []
    for key, info in header.items():
        if key == "__metadata__":
            continue
        ok = (isinstance(info, dict) and info.get("dtype") in _ST_ITEMSIZE and isinstance(info.get("shape"), list)
              and all(_is_count(x) for x in info["shape"]) and isinstance(info.get("data_offsets"), list)
              and len(info["data_offsets"]) == 2 and all(_is_count(x) for x in info["data_offsets"]))
        if not ok:
            raise ModelFormatError(f"{path}: header entry {str(key)[:50]!r} is malformed")
        begin, end = info["data_offsets"]
        if not begin <= end <= body or end - begin != math.prod(info["shape"]) * _ST_ITEMSIZE[info["dtype"]]:
            raise ModelFormatError(f"{path}: tensor {key!r} has offsets {[begin, end]} that do not fit its shape "
                                   f"{info['shape'][:8]} or the file's {body} data bytes; the file is truncated "
                                   "or forged")
        spans.append((begin, end))
    spans.sort()
    if [b for b, _ in spans] != [0] + [e for _, e in spans[:-1]] or (spans[-1][1] if spans else 0) != body:
        raise ModelFormatError(f"{path}: tensors overlap or leave gaps in the data; the file is forged")
    try:
        arrays = load(data)
    except Exception as exc:  # noqa: BLE001 - the library's own checks, whatever it raises
        raise ModelFormatError(f"{path} is not a valid safetensors file ({str(exc)[:200]})") from exc
    return {k: np.array(v, order="C", copy=True) for k, v in arrays.items()}


def _is_count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def check_params(klass: type, params: Any, where: Any) -> None:
    """Refuse saved hyperparameters that are not exactly the keyword arguments of `klass` with fitting JSON types."""
    names = [p for p in inspect.signature(klass.__init__).parameters if p != "self"]
    if not isinstance(params, dict):
        raise ModelFormatError(f"{where}: params must be a mapping of hyperparameter to value")
    unknown = sorted(str(k)[:50] for k in params if k not in names)
    if unknown:
        raise ModelFormatError(f"{where}: unknown param {unknown[0]!r} for {klass.__name__}; it takes {names}")
    absent = [k for k in names if k not in params]
    if absent:
        raise ModelFormatError(f"{where}: param {absent[0]!r} is missing; a saved model records every one")
    hints = typing.get_type_hints(klass.__init__)
    for k, v in params.items():
        if not _fits(v, hints.get(k, Any)):
            raise ModelFormatError(f"{where}: param {k}={str(v)[:50]!r} is not a {hints.get(k, 'JSON value')}")


def _fits(v: Any, hint: Any) -> bool:
    """Whether a JSON value fits a simple type hint (int, float, bool, str, None, unions and lists of them)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(v, a) for a in typing.get_args(hint))
    if origin is list:
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(v, list) and all(_fits(x, item) for x in v)
    if hint is Any:
        return v is None or isinstance(v, (bool, int, str)) or (isinstance(v, float) and math.isfinite(v))
    if hint is type(None):
        return v is None
    if hint is bool:
        return isinstance(v, bool)
    if hint is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if hint is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if hint is str:
        return isinstance(v, str)
    return False


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

"""The Generator protocol common to every data kind: params, fit/sample, save and load without pickle."""

from __future__ import annotations

import contextlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping

import numpy as np

from generators.errors import (ConditionError, GeneratorError, InvalidSampleSizeError, ModelFormatError, NotFittedError,
                               UnsafeModelError, VersionMismatchWarning)
from modelkit import errors as shared
from modelkit.files import (MODEL_FILE, WEIGHTS_FILE, canonical, library_versions, read_envelope,
                            read_safetensors_checked, warn_if_versions_differ, write_envelope)
from modelkit.params import check_saved_params, get_params

FORMAT_VERSION = 1
VERSIONED_LIBRARIES = ("synthwatch", "numpy", "pandas", "torch", "scikit-learn", "sdv", "safetensors")
_COMMON_KEYS = ("generator", "params", "state")


class Generator(ABC):
    """Learns data of one kind and samples new data like it; saved as JSON + safetensors, loaded without pickle.

    Each kind has a base class that owns its container and codec (`generators.tabular.base.TableGenerator`,
    `generators.timeseries.base.SequenceGenerator`, `generators.image.base.ImageGenerator`); a model subclasses
    one of them and implements its private hooks. Common to all: `__init__` only stores hyperparameters (all
    keyword, JSON-able, one of them `seed`); `_get_state()` / `_set_state()` give the fitted state as (JSON dict,
    C-contiguous numpy arrays of fixed dtypes), and `_set_state` treats its input as hostile (presence, dtype,
    shape and values of every array, ModelFormatError otherwise). `fit` ends by passing the fitted state through
    both, so a fitted model and its saved-and-loaded copy compute on identical memory.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""  # the data kind this model learns: one of generators.data.KINDS
    _DOC_KEYS: ClassVar[tuple[str, ...]] = ()  # the kind's own entries of model.json (besides the common ones)
    # hyperparameters added after files were saved without them: the value that reproduces such a file's model
    params_added: ClassVar[dict[str, Any]] = {}

    # ------------------------------------------------------------ params
    def get_params(self) -> dict[str, Any]:
        return get_params(self)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "codec_")

    def _require_fitted(self, doing: str = "sample from it") -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(data) or load a saved model "
                                 f"before you {doing}")

    # ------------------------------------------------------- the kind's API
    @abstractmethod
    def fit(self, data: Any) -> "Generator":
        """Learn `data` (the kind's container; never modified) and return self."""

    @abstractmethod
    def sample(self, n: int, *, seed: int | None = None, conditions: Mapping[str, Any] | None = None) -> Any:
        """Draw n new items (rows, sequences, images) as the kind's container; same model + same seed => same."""

    def check_conditions(self, conditions: Mapping[str, Any] | None) -> dict[str, Any]:
        """The conditions `sample` would apply, coerced to the model's types; ConditionError for a column the
        model does not condition on or a value it never saw (cheap: nothing is sampled)."""
        self._require_fitted("check conditions")
        check = getattr(self.codec_, "check_conditions", None)
        if check is None:
            if conditions:
                raise ConditionError(f"{type(self).__name__} samples without conditions; drop --where")
            return {}
        return check(conditions)

    def _canonicalise(self) -> None:
        """Replace the fitted state by exactly what `load` would rebuild from it (C-contiguous arrays, JSON state).

        A saved-and-loaded model then computes with the very same memory layouts and dtypes as the fitted one, so
        both sample bit-identically (a column-major matrix and its row-major copy take different BLAS paths).
        """
        state, arrays = self._get_state()
        self._set_state(json.loads(json.dumps(state, allow_nan=True)), {k: canonical(v) for k, v in arrays.items()})

    # ------------------------------------------------------- persistence
    @abstractmethod
    def _get_state(self) -> tuple[dict, dict[str, np.ndarray]]: ...

    @abstractmethod
    def _set_state(self, state: dict, arrays: dict[str, np.ndarray]) -> None: ...

    @abstractmethod
    def _describe(self) -> dict[str, Any]:
        """The kind's own entries of model.json (codec, schema, training size...), JSON-able."""

    @abstractmethod
    def _restore(self, doc: Mapping[str, Any], where: Path) -> Any:
        """Rebuild the kind's fitted attributes from a loaded model.json (hostile: check everything, raise
        ModelFormatError); returns the codec, which `load` sets last (it marks the model fitted)."""

    def _has_weights(self) -> bool:
        """Whether the fitted state includes arrays (a table with only ids and constants has none)."""
        return True

    def save(self, path: str | Path) -> Path:
        """Write `path/model.json` (params, the kind's codec, fitted state, versions) and `path/weights.safetensors`."""
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted; fit it before saving")
        state, arrays = self._get_state() if self._has_weights() else ({}, {})
        doc = {"format_version": FORMAT_VERSION, "generator": self.name, "kind": self.kind,
               "params": self.get_params(), **self._describe(), "state": state,
               "versions": library_versions(VERSIONED_LIBRARIES)}
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

        doc = read_envelope(path, format_version=FORMAT_VERSION, keys=_COMMON_KEYS)
        where = path / MODEL_FILE
        name = doc["generator"]
        if not isinstance(name, str) or name not in REGISTRY:
            raise ModelFormatError(f"{where} names unknown generator {str(name)[:50]!r}; known: "
                                   f"{', '.join(sorted(REGISTRY))}")
        klass = get_generator_class(name)
        if cls is not Generator and not issubclass(klass, cls):
            raise ModelFormatError(f"{path} holds a {name!r} model, not a {cls.__name__}")
        missing = [k for k in klass._DOC_KEYS if k not in doc]
        if missing:
            raise ModelFormatError(f"{where} lacks {missing[0]!r}: it was not written by {klass.__name__}.save")
        kind = doc.get("kind", klass.kind)  # files written before kinds were recorded are tabular
        if kind != klass.kind:
            raise ModelFormatError(f"{where} says kind {str(kind)[:30]!r}, but {name!r} learns {klass.kind} data")
        saved = doc.get("versions", {})
        if not isinstance(saved, dict):
            raise ModelFormatError(f"{where}: 'versions' is not a mapping of library to version")
        warn_if_versions_differ(path, saved, library_versions(VERSIONED_LIBRARIES), category=VersionMismatchWarning,
                                consequence="samples may differ from the original; re-train to silence this",
                                stacklevel=3)
        params = doc["params"]
        if isinstance(params, dict):  # a file older than a hyperparameter gets the value that reproduces it
            params = {**{k: v for k, v in klass.params_added.items() if k not in params}, **params}
        check_saved_params(klass, params, where, complete=True)
        obj = klass(**params)
        codec = obj._restore(doc, where)
        if not isinstance(doc["state"], dict):
            raise ModelFormatError(f"{where}: 'state' is not a mapping")
        if obj._has_weights():
            arrays = read_safetensors_checked(path / WEIGHTS_FILE)
            try:
                obj._set_state(doc["state"], arrays)
            except ModelFormatError as exc:
                raise type(exc)(f"{where} with {WEIGHTS_FILE}: {exc}") from exc
            except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
                raise ModelFormatError(f"{where} with {WEIGHTS_FILE}: saved state does not fit a "
                                       f"{name!r} model ({type(exc).__name__}: {str(exc)[:200]})") from exc
        obj.codec_ = codec
        return obj


def check_count(n: Any, what: str = "rows") -> int:
    """n as an int if it is a positive integer; InvalidSampleSizeError otherwise."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise InvalidSampleSizeError(f"number of {what} must be a positive integer, got {n!r}")
    return int(n)


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


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run torch with `n` intra-op threads (None: leave it), restoring the setting after."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def torch_generator(rng: np.random.Generator):
    """A torch.Generator seeded from a numpy Generator (so one seed drives both)."""
    import torch

    g = torch.Generator()
    g.manual_seed(int(rng.integers(0, 2**62)))
    return g

"""Save a fitted third-party object graph as JSON + numpy arrays, and rebuild it, without pickle.

Used for SDV synthesizers, which only offer cloudpickle. An object is written as its class path and its
`__dict__`; arrays and tensors go to the safetensors file. Loading rebuilds objects with `object.__new__` and
`__dict__.update`, and only for the exact classes in ALLOWED_CLASSES: a class path is `module:qualname`, found
by looking the qualname up in that module's own namespace, and the class found must carry that very
`__module__` and `__qualname__` (never whatever an attribute path happens to reach). A listed class must also
have no finaliser and no pickling hook outside SAFE_BASES, so a crafted file cannot run code at load time or
when the rebuilt object is collected. Anything else is refused with UnsafeModelError; malformed state with
ModelFormatError.
"""

from __future__ import annotations

import importlib
import math
import re
import types
from collections import OrderedDict
from typing import Any, Iterable

import numpy as np
import pandas as pd

from generators.errors import ModelFormatError, UnsafeModelError

# Every class a fitted SDV 2.0 `gaussian_copula`, `ctgan` or `tvae` model holds (found by walking fitted models of
# tables with numeric, categorical and nullable columns; sdv and torch are pinned). A class not listed here is
# neither saved nor rebuilt; add one only after checking that it passes `_check_rebuildable`.
ALLOWED_CLASSES = frozenset({
    "copulas.multivariate.gaussian:GaussianMultivariate",
    "copulas.univariate.beta:BetaUnivariate",
    "copulas.univariate.gaussian:GaussianUnivariate",  # SDV's fallback when a beta fit fails
    "ctgan.data_sampler:DataSampler",
    "ctgan.data_transformer:ColumnTransformInfo",  # named tuples
    "ctgan.data_transformer:DataTransformer",
    "ctgan.data_transformer:SpanInfo",
    "ctgan.synthesizers.ctgan:CTGAN",
    "ctgan.synthesizers.ctgan:Generator",
    "ctgan.synthesizers.ctgan:Residual",
    "ctgan.synthesizers.tvae:Decoder",
    "ctgan.synthesizers.tvae:TVAE",
    "rdt.hyper_transformer:HyperTransformer",
    "rdt.transformers.categorical:OneHotEncoder",
    "rdt.transformers.categorical:UniformEncoder",
    "rdt.transformers.null:NullTransformer",
    "rdt.transformers.numerical:ClusterBasedNormalizer",
    "rdt.transformers.numerical:FloatFormatter",
    "sdv.data_processing.data_processor:DataProcessor",
    "sdv.data_processing.numerical_formatter:NumericalFormatter",
    "sdv.metadata._single_table:_SingleTableMetadata",
    "sdv.metadata.metadata:Metadata",
    "sdv.sequential.par:PARSynthesizer",  # saved without its context synthesizer (see generators.timeseries.par)
    "deepecho.models.par:PARModel",  # saved without its network, which is rebuilt from its weights
    "sdv.single_table.copulas:GaussianCopulaSynthesizer",
    "sdv.single_table.ctgan:CTGANSynthesizer",
    "sdv.single_table.ctgan:TVAESynthesizer",
    "sklearn.mixture._bayesian_mixture:BayesianGaussianMixture",
    "torch.nn.modules.activation:ReLU",
    "torch.nn.modules.batchnorm:BatchNorm1d",
    "torch.nn.modules.container:Sequential",
    "torch.nn.modules.linear:Linear",
})

# Bases whose pickling hooks are known to be bookkeeping only; the loader never calls them (it restores
# `__dict__` as written), and they hold no finaliser.
#   torch Module: __getstate__/__setstate__ drop and restore hook dicts of old torch versions
#   sklearn BaseEstimator: __getstate__/__setstate__ record and check the sklearn version
#   ctgan BaseSynthesizer: __getstate__/__setstate__ move the model to the CPU and wrap the random states
SAFE_BASES = ("torch.nn.modules.module:Module", "sklearn.base:BaseEstimator", "ctgan.synthesizers.base:BaseSynthesizer")
_HOOKS = ("__reduce__", "__reduce_ex__", "__getstate__", "__setstate__", "__getnewargs__", "__getnewargs_ex__",
          "__new__")
_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")
MAX_DEPTH = 100  # nesting of decoded values; fitted SDV models stay below 40
MAX_ITEMS = 10**9  # elements of a rebuilt index or object array
_NDLIST_KINDS = "OUMm"  # what the writer puts in JSON lists: object, text and datetime arrays
_TORCH_DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _is_named_tuple(cls: type) -> bool:
    return cls.__bases__ == (tuple,) and isinstance(getattr(cls, "_fields", None), tuple)


def _check_rebuildable(cls: type, path: str) -> None:
    """Refuse a class with a finaliser, its own `__new__`, or a pickling hook outside SAFE_BASES."""
    for base in cls.__mro__:
        if base is object:
            continue
        if "__del__" in vars(base):
            raise UnsafeModelError(f"saved model asks to rebuild {path}, which has a finaliser ({_class_path(base)}"
                                   ".__del__); refused: do not load this model")
        if _class_path(base) in SAFE_BASES or (base is tuple and _is_named_tuple(cls)):
            continue
        if base is cls and _is_named_tuple(cls):
            continue  # a plain named tuple: __new__ and __getnewargs__ are the generated ones
        hooks = [h for h in _HOOKS if h in vars(base)]
        if hooks:
            raise UnsafeModelError(f"saved model asks to rebuild {path}, which has the pickling hook "
                                   f"{_class_path(base)}.{hooks[0]}; refused: do not load this model")


def resolve_class(path: str) -> type:
    """The class named exactly `module:qualname` if it is allow-listed and safe to rebuild; else UnsafeModelError."""
    if not isinstance(path, str) or not _PATH.match(path) or path not in ALLOWED_CLASSES:
        raise UnsafeModelError(f"saved model refers to class {str(path)[:200]!r}, which is not on the allow-list "
                               "generators.safe_state.ALLOWED_CLASSES; it was not written by synthwatch: do not "
                               "load it")
    module, _, qual = path.partition(":")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise ModelFormatError(f"saved model refers to class {path!r}, whose module does not import ({exc})") from exc
    for part in qual.split("."):
        # the namespace itself, not getattr: no module __getattr__, no descriptors, no hops to other modules
        obj = vars(obj).get(part) if isinstance(obj, (type, types.ModuleType)) else None
        if obj is None:
            break
    if not (isinstance(obj, type) and obj.__module__ == module and obj.__qualname__ == qual):
        raise UnsafeModelError(f"saved model refers to {path!r}, which is not a class defined there under that name; "
                               "refused: do not load this model")
    _check_rebuildable(obj, path)
    return obj


def _writable_class(cls: type) -> str:
    path = _class_path(cls)
    if path not in ALLOWED_CLASSES:
        raise UnsafeModelError(f"cannot save class {path}: it is not on generators.safe_state.ALLOWED_CLASSES "
                               "(add it only after checking it has no finaliser or pickling hook)")
    _check_rebuildable(cls, path)
    return path


class StateWriter:
    """Encodes an object graph; `skip` lists (class name, attribute) pairs left out and restored by the caller."""

    def __init__(self, skip: Iterable[tuple[str, str]] = ()):
        self.skip = set(skip)
        self.arrays: dict[str, np.ndarray] = {}
        self._memo: dict[int, int] = {}
        self._keep: list[Any] = []  # keep encoded objects alive so ids stay unique

    def _array(self, a: np.ndarray) -> str:
        key = f"a{len(self.arrays)}"
        self.arrays[key] = np.ascontiguousarray(a)
        return key

    def encode(self, o: Any) -> Any:
        import torch

        if o is None or isinstance(o, (bool, str)):
            return o
        if isinstance(o, int) and not isinstance(o, bool):
            return o
        if isinstance(o, float):
            return {"__float__": repr(o)} if not np.isfinite(o) else o
        if isinstance(o, np.generic):
            return {"__np__": o.dtype.str, "v": self.encode(o.item())}
        if isinstance(o, np.ndarray):
            if o.dtype.kind in "biuf":
                return {"__nd__": self._array(o)}
            return {"__ndlist__": [self.encode(x) for x in o.ravel().tolist()], "shape": list(o.shape),
                    "dtype": o.dtype.str}
        if isinstance(o, torch.Tensor):
            return {"__tensor__": self._array(o.detach().cpu().numpy()),
                    "param": isinstance(o, torch.nn.Parameter), "grad": bool(o.requires_grad)}
        if isinstance(o, torch.Generator):
            return {"__tgen__": self._array(o.get_state().numpy()), "device": str(o.device)}
        if isinstance(o, torch.device):
            return {"__device__": str(o)}
        if isinstance(o, torch.dtype):
            return {"__tdtype__": str(o).removeprefix("torch.")}
        if isinstance(o, np.dtype):
            return {"__dtype__": o.str}
        if isinstance(o, pd.api.extensions.ExtensionDtype):
            return {"__pddtype__": str(o)}
        if isinstance(o, np.random.RandomState):
            return {"__rs__": self.encode(o.get_state())}
        if isinstance(o, np.random.Generator):
            return {"__npgen__": self.encode(o.bit_generator.state)}
        if isinstance(o, pd.Timestamp):
            return {"__ts__": o.isoformat()}
        if isinstance(o, pd.RangeIndex):
            return {"__range__": [o.start, o.stop, o.step], "name": self.encode(o.name)}
        if isinstance(o, pd.Index):
            return {"__index__": self.encode(o.to_numpy()), "name": self.encode(o.name), "dtype": str(o.dtype)}
        if isinstance(o, pd.Series):
            return {"__series__": self.encode(o.to_numpy()), "index": self.encode(o.index),
                    "name": self.encode(o.name), "dtype": str(o.dtype)}
        if isinstance(o, pd.DataFrame):
            return {"__df__": [[self.encode(c), self.encode(o[c])] for c in o.columns],
                    "index": self.encode(o.index)}
        if isinstance(o, type):
            return {"__class__": _writable_class(o)}
        if isinstance(o, tuple) and hasattr(o, "_fields"):
            return {"__nt__": self.encode(type(o)), "v": [self.encode(x) for x in o]}
        if isinstance(o, tuple):
            return {"__tuple__": [self.encode(x) for x in o]}
        if isinstance(o, list):
            return [self.encode(x) for x in o]
        if isinstance(o, (set, frozenset)):
            # sorted: a set's iteration order varies between processes, the saved file must not
            items = sorted(o, key=lambda x: (type(x).__name__, repr(x)))
            return {"__set__": [self.encode(x) for x in items], "frozen": isinstance(o, frozenset)}
        if isinstance(o, dict):
            return {"__dict__": [[self.encode(k), self.encode(v)] for k, v in o.items()],
                    "ordered": isinstance(o, OrderedDict)}
        cls = type(o)
        if hasattr(o, "__dict__") and _class_path(cls) in ALLOWED_CLASSES:
            _writable_class(cls)
            if id(o) in self._memo:
                return {"__ref__": self._memo[id(o)]}
            ref = self._memo[id(o)] = len(self._memo)
            self._keep.append(o)
            state = {k: v for k, v in vars(o).items() if (cls.__name__, k) not in self.skip}
            return {"__obj__": _class_path(cls), "ref": ref, "state": self.encode(state)}
        raise UnsafeModelError(f"cannot save an object of type {_class_path(cls)} without pickle")


class StateReader:
    """Rebuilds what StateWriter encoded; refuses anything it would not have written.

    `finite=True` also refuses float arrays and tensors holding NaN or infinity (fitted models hold none).
    """

    def __init__(self, arrays: dict[str, np.ndarray], *, finite: bool = False):
        self.arrays = arrays
        self.finite = finite
        self._memo: dict[int, Any] = {}
        self._depth = 0
        self.used: set[str] = set()  # names of the arrays the decoded state refers to

    def decode(self, d: Any) -> Any:
        if self._depth >= MAX_DEPTH:
            raise ModelFormatError(f"saved state is nested deeper than {MAX_DEPTH} levels; it was not written by "
                                   "synthwatch: re-train the model")
        self._depth += 1
        try:
            return self._decode(d)
        finally:
            self._depth -= 1

    def _array(self, key: Any) -> np.ndarray:
        if not isinstance(key, str) or key not in self.arrays:
            raise ModelFormatError(f"saved state refers to array {str(key)[:100]!r}, which the weights file lacks")
        self.used.add(key)
        a = np.array(self.arrays[key], order="C", copy=True)  # canonical: an aligned C-contiguous copy
        if self.finite and a.dtype.kind == "f" and not np.isfinite(a).all():
            raise ModelFormatError(f"array {key!r} holds NaN or infinite values; a fitted model has none")
        return a

    def _decode(self, d: Any) -> Any:
        import torch

        if d is None or isinstance(d, (bool, int, float, str)):
            return d
        if isinstance(d, list):
            return [self.decode(x) for x in d]
        if not isinstance(d, dict) or len(d) == 0:
            raise ModelFormatError(f"unexpected value in saved state: {str(d)[:100]!r}")
        tag = next(iter(d))
        try:
            if tag == "__float__":
                return float(_str(d[tag]))
            if tag == "__np__":
                dtype = np.dtype(_str(d[tag]))
                if dtype.kind not in "biufU":
                    raise ModelFormatError(f"unsupported numpy scalar type {dtype.str!r}")
                return dtype.type(self.decode(d["v"]))
            if tag == "__nd__":
                return self._array(d[tag])
            if tag == "__ndlist__":
                return self._ndlist(d)
            if tag == "__tensor__":
                t = torch.from_numpy(self._array(d[tag]))
                grad = _bool(d["grad"])
                return torch.nn.Parameter(t, requires_grad=grad) if _bool(d["param"]) else t.requires_grad_(grad)
            if tag == "__tgen__":
                if d["device"] != "cpu":
                    raise ModelFormatError(f"unsupported torch generator device {str(d['device'])[:50]!r}")
                g = torch.Generator(device="cpu")
                g.set_state(torch.from_numpy(self._array(d[tag])))
                return g
            if tag == "__device__":
                if d[tag] != "cpu":
                    raise ModelFormatError(f"unsupported torch device {str(d[tag])[:50]!r}; models run on the CPU")
                return torch.device("cpu")
            if tag == "__tdtype__":
                if d[tag] not in _TORCH_DTYPES:
                    raise ModelFormatError(f"unknown torch dtype {str(d[tag])[:50]!r}")
                return getattr(torch, d[tag])
            if tag == "__dtype__":
                return np.dtype(_str(d[tag]))
            if tag == "__pddtype__":
                return pd.api.types.pandas_dtype(_str(d[tag]))
            if tag == "__rs__":
                rs = np.random.RandomState()
                rs.set_state(self.decode(d[tag]))
                return rs
            if tag == "__npgen__":
                state = self.decode(d[tag])
                if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
                    raise ModelFormatError("unsupported numpy bit generator state; only PCG64 is written")
                g = np.random.Generator(np.random.PCG64())
                g.bit_generator.state = state
                return g
            if tag == "__ts__":
                return pd.Timestamp(_str(d[tag]))
            if tag == "__range__":
                start, stop, step = (_int(x) for x in d[tag])
                if step == 0 or len(range(start, stop, step)) > MAX_ITEMS:
                    raise ModelFormatError(f"range index {d[tag]!r} is empty-stepped or too long")
                return pd.RangeIndex(start, stop, step, name=self.decode(d["name"]))
            if tag == "__index__":
                return pd.Index(self.decode(d[tag]), name=self.decode(d["name"]), dtype=_str(d["dtype"]))
            if tag == "__series__":
                return pd.Series(self.decode(d[tag]), index=self.decode(d["index"]), name=self.decode(d["name"]),
                                 dtype=_str(d["dtype"]))
            if tag == "__df__":
                cols = [(self.decode(k), self.decode(v)) for k, v in d[tag]]
                return pd.DataFrame(dict(cols), index=self.decode(d["index"]), columns=[k for k, _ in cols])
            if tag == "__class__":
                return resolve_class(d[tag])
            if tag == "__nt__":
                inner = d[tag]
                if not (isinstance(inner, dict) and list(inner) == ["__class__"]):
                    raise ModelFormatError("a saved named tuple must name its class directly")
                cls = resolve_class(inner["__class__"])
                if not _is_named_tuple(cls):
                    raise UnsafeModelError(f"{inner['__class__']!r} is not a named tuple")
                return cls(*[self.decode(x) for x in _list(d["v"])])
            if tag == "__tuple__":
                return tuple(self.decode(x) for x in _list(d[tag]))
            if tag == "__set__":
                vals = [self.decode(x) for x in _list(d[tag])]
                return frozenset(vals) if _bool(d["frozen"]) else set(vals)
            if tag == "__dict__":
                pairs = [(self.decode(k), self.decode(v)) for k, v in _list(d[tag])]
                return OrderedDict(pairs) if _bool(d["ordered"]) else dict(pairs)
            if tag == "__ref__":
                ref = _int(d[tag])
                if ref not in self._memo:
                    raise ModelFormatError(f"saved state refers to object #{ref} before defining it")
                return self._memo[ref]
            if tag == "__obj__":
                cls = resolve_class(d[tag])
                if _is_named_tuple(cls):
                    raise UnsafeModelError(f"{d[tag]!r} is a named tuple; it cannot be rebuilt from a __dict__")
                ref = _int(d["ref"])
                if ref in self._memo:
                    raise ModelFormatError(f"saved state defines object #{ref} twice")
                obj = object.__new__(cls)  # no custom __new__ on a listed class (_check_rebuildable)
                self._memo[ref] = obj
                state = self.decode(d["state"])
                if not (isinstance(state, dict) and all(isinstance(k, str) for k in state)):
                    raise ModelFormatError(f"saved state of a {d[tag]} is not a mapping of attribute names")
                obj.__dict__.update(state)
                return obj
        except ModelFormatError:
            raise
        except RecursionError as exc:
            raise ModelFormatError(f"saved state is nested too deeply near {tag}; re-train the model") from exc
        except Exception as exc:  # noqa: BLE001 - whatever a crafted value trips over is a format error
            raise ModelFormatError(f"corrupt saved state near {tag} ({type(exc).__name__}: "
                                   f"{str(exc)[:200]}); re-train the model") from exc
        raise ModelFormatError(f"unknown tag {str(tag)[:50]!r} in saved state; re-train the model")

    def _ndlist(self, d: dict) -> np.ndarray:
        dtype = np.dtype(_str(d["dtype"]))
        if dtype.kind not in _NDLIST_KINDS or dtype.itemsize > 4096:
            raise ModelFormatError(f"unsupported dtype {dtype.str!r} for a listed array")
        shape = [_int(x) for x in _list(d["shape"])]
        items = _list(d["__ndlist__"])
        if any(x < 0 for x in shape) or math.prod(shape) != len(items) or len(shape) > 32:
            raise ModelFormatError(f"listed array of {len(items)} items does not fit shape {shape[:8]}")
        arr = np.empty(len(items), dtype=dtype)
        arr[:] = [self.decode(x) for x in items]
        return arr.reshape(shape)


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ModelFormatError(f"expected a string in saved state, got {type(v).__name__}")
    return v


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ModelFormatError(f"expected an integer in saved state, got {type(v).__name__}")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ModelFormatError(f"expected true or false in saved state, got {type(v).__name__}")
    return v


def _list(v: Any) -> list:
    if not isinstance(v, list):
        raise ModelFormatError(f"expected a list in saved state, got {type(v).__name__}")
    return v

"""Save a fitted third-party object graph as JSON + numpy arrays, and rebuild it, without pickle.

Used for SDV synthesizers, which only offer cloudpickle. An object is written as its class path and its
`__dict__`; arrays and tensors go to the safetensors file. Loading rebuilds objects with `cls.__new__` and
`__dict__.update` only for classes whose module is on an allow-list (no `__reduce__`, no `__setstate__`, no
arbitrary callables), so a crafted file cannot run code at load time; anything else is refused with
UnsafeModelError.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from typing import Any, Iterable

import numpy as np
import pandas as pd

from generators.errors import ModelFormatError, UnsafeModelError

ALLOWED_MODULES = ("sdv.", "rdt.", "ctgan.", "copulas.", "sklearn.mixture.", "torch.nn.modules.")


def _allowed(module: str) -> bool:
    return module.startswith(ALLOWED_MODULES)


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _resolve(path: str) -> Any:
    module, _, qual = path.partition(":")
    if not _allowed(module):
        raise UnsafeModelError(f"saved model refers to {path!r}, outside the allow-list {ALLOWED_MODULES}; "
                               "it was not written by synthwatch: do not load it")
    obj: Any = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


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
            if not _allowed(o.__module__):
                raise UnsafeModelError(f"cannot save a reference to class {_class_path(o)} (not allow-listed)")
            return {"__class__": _class_path(o)}
        if isinstance(o, tuple) and hasattr(o, "_fields"):
            return {"__nt__": self.encode(type(o)), "v": [self.encode(x) for x in o]}
        if isinstance(o, tuple):
            return {"__tuple__": [self.encode(x) for x in o]}
        if isinstance(o, list):
            return [self.encode(x) for x in o]
        if isinstance(o, (set, frozenset)):
            return {"__set__": [self.encode(x) for x in o], "frozen": isinstance(o, frozenset)}
        if isinstance(o, dict):
            return {"__dict__": [[self.encode(k), self.encode(v)] for k, v in o.items()],
                    "ordered": isinstance(o, OrderedDict)}
        cls = type(o)
        if hasattr(o, "__dict__") and _allowed(cls.__module__):
            if id(o) in self._memo:
                return {"__ref__": self._memo[id(o)]}
            ref = self._memo[id(o)] = len(self._memo)
            self._keep.append(o)
            state = {k: v for k, v in vars(o).items() if (cls.__name__, k) not in self.skip}
            return {"__obj__": _class_path(cls), "ref": ref, "state": self.encode(state)}
        raise UnsafeModelError(f"cannot save an object of type {_class_path(cls)} without pickle")


class StateReader:
    """Rebuilds what StateWriter encoded."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self._memo: dict[int, Any] = {}

    def decode(self, d: Any) -> Any:
        import torch

        if d is None or isinstance(d, (bool, int, float, str)):
            return d
        if isinstance(d, list):
            return [self.decode(x) for x in d]
        if not isinstance(d, dict) or len(d) == 0:
            raise ModelFormatError(f"unexpected value in saved state: {d!r}")
        tag = next(iter(d))
        try:
            if tag == "__float__":
                return float(d[tag])
            if tag == "__np__":
                return np.dtype(d[tag]).type(self.decode(d["v"]))
            if tag == "__nd__":
                return np.array(self.arrays[d[tag]])
            if tag == "__ndlist__":
                vals = [self.decode(x) for x in d[tag]]
                arr = np.empty(len(vals), dtype=np.dtype(d["dtype"]))
                arr[:] = vals
                return arr.reshape(d["shape"])
            if tag == "__tensor__":
                t = torch.from_numpy(np.array(self.arrays[d[tag]]))
                return torch.nn.Parameter(t, requires_grad=d["grad"]) if d["param"] else t.requires_grad_(d["grad"])
            if tag == "__tgen__":
                g = torch.Generator(device=d["device"])
                g.set_state(torch.from_numpy(np.array(self.arrays[d[tag]])))
                return g
            if tag == "__device__":
                return torch.device(d[tag])
            if tag == "__tdtype__":
                return getattr(torch, d[tag])
            if tag == "__dtype__":
                return np.dtype(d[tag])
            if tag == "__pddtype__":
                return pd.api.types.pandas_dtype(d[tag])
            if tag == "__rs__":
                rs = np.random.RandomState()
                rs.set_state(self.decode(d[tag]))
                return rs
            if tag == "__npgen__":
                state = self.decode(d[tag])
                if state.get("bit_generator") != "PCG64":
                    raise ModelFormatError(f"unsupported bit generator {state.get('bit_generator')!r}")
                g = np.random.Generator(np.random.PCG64())
                g.bit_generator.state = state
                return g
            if tag == "__ts__":
                return pd.Timestamp(d[tag])
            if tag == "__range__":
                return pd.RangeIndex(*d[tag], name=self.decode(d["name"]))
            if tag == "__index__":
                return pd.Index(self.decode(d[tag]), name=self.decode(d["name"]), dtype=d["dtype"])
            if tag == "__series__":
                return pd.Series(self.decode(d[tag]), index=self.decode(d["index"]), name=self.decode(d["name"]),
                                 dtype=d["dtype"])
            if tag == "__df__":
                cols = [(self.decode(k), self.decode(v)) for k, v in d[tag]]
                return pd.DataFrame(dict(cols), index=self.decode(d["index"]), columns=[k for k, _ in cols])
            if tag == "__class__":
                cls = _resolve(d[tag])
                if not isinstance(cls, type):
                    raise UnsafeModelError(f"{d[tag]!r} is not a class")
                return cls
            if tag == "__nt__":
                cls = self.decode(d[tag])
                if not (issubclass(cls, tuple) and hasattr(cls, "_fields")):
                    raise UnsafeModelError(f"{cls!r} is not a named tuple")
                return cls(*[self.decode(x) for x in d["v"]])
            if tag == "__tuple__":
                return tuple(self.decode(x) for x in d[tag])
            if tag == "__set__":
                vals = [self.decode(x) for x in d[tag]]
                return frozenset(vals) if d["frozen"] else set(vals)
            if tag == "__dict__":
                pairs = [(self.decode(k), self.decode(v)) for k, v in d[tag]]
                return OrderedDict(pairs) if d["ordered"] else dict(pairs)
            if tag == "__ref__":
                return self._memo[d[tag]]
            if tag == "__obj__":
                cls = _resolve(d[tag])
                if not isinstance(cls, type):
                    raise UnsafeModelError(f"{d[tag]!r} is not a class")
                obj = cls.__new__(cls)
                self._memo[d["ref"]] = obj
                obj.__dict__.update(self.decode(d["state"]))
                return obj
        except ModelFormatError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, ImportError) as exc:
            raise ModelFormatError(f"corrupt saved state near {tag} ({exc!r}); re-train the model") from exc
        raise ModelFormatError(f"unknown tag {tag!r} in saved state; re-train the model")

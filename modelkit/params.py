"""Hyperparameters as the keyword arguments of `__init__`: introspection, type checks and saved-params validation.

A model's `__init__` only stores hyperparameters (scikit-learn's rule), so its signature is the one list of them:
what `get_params` returns, what a saved model records and what a loaded one may be rebuilt from.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from typing import Any, Callable, Iterator

from modelkit.errors import ModelFormatError, one_line


def _inits(cls: type) -> Iterator[Callable]:
    """The `__init__`s that take `cls`'s hyperparameters: its own, then up the MRO while each forwards **kwargs."""
    for klass in cls.__mro__:
        if klass is object or "__init__" not in klass.__dict__:
            continue
        init = klass.__dict__["__init__"]
        yield init
        if not any(p.kind is p.VAR_KEYWORD for p in inspect.signature(init).parameters.values()):
            return


def init_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """Hyperparameters of `cls` by name, subclass first, from every `__init__` that takes them (see `_inits`)."""
    found: dict[str, inspect.Parameter] = {}
    for init in _inits(cls):
        for p in inspect.signature(init).parameters.values():
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                found.setdefault(p.name, p)
    return found


def param_names(cls: type) -> list[str]:
    """The names of `cls`'s hyperparameters, in signature order."""
    return list(init_parameters(cls))


def get_params(model: Any) -> dict[str, Any]:
    """Every hyperparameter of `model` with its value (what `__init__` stored under the same name)."""
    return {name: getattr(model, name) for name in param_names(type(model))}


def param_hints(cls: type) -> dict[str, Any]:
    """The resolved type annotation of each hyperparameter (`Any` where there is none)."""
    hints: dict[str, Any] = {}
    for init in _inits(cls):
        for name, hint in typing.get_type_hints(init).items():
            hints.setdefault(name, hint)
    return {name: hints.get(name, Any) for name in init_parameters(cls)}


def param_types(cls: type, name: str) -> tuple[type, ...]:
    """The types hyperparameter `name`'s annotation allows (``float | None`` -> (float, NoneType)); (object,) when
    it is not annotated or not a hyperparameter."""
    hint = param_hints(cls).get(name, Any)
    out = []
    for arg in _union_args(hint):
        if arg is Any or arg is object:
            return (object,)
        origin = typing.get_origin(arg)
        if isinstance(origin, type):
            out.append(origin)
        elif isinstance(arg, type):
            out.append(arg)
    return tuple(out) or (object,)


def _union_args(hint: Any) -> tuple[Any, ...]:
    """The members of a union hint, or the hint alone."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def accepts(cls: type, name: str, value: Any) -> bool:
    """Whether JSON `value` fits hyperparameter `name`'s annotation (an int passes for a float; a bool only for
    bool; floats must be finite)."""
    return fits(value, param_hints(cls).get(name, Any))


def fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a simple type hint (int, float, bool, str, None, unions and lists of them)."""
    if len(_union_args(hint)) > 1:
        return any(fits(value, arg) for arg in _union_args(hint))
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint) or (Any,)
        return isinstance(value, list) and all(fits(v, item) for v in value)
    if hint is Any or hint is object:
        return value is None or isinstance(value, (bool, int, str)) or (isinstance(value, float)
                                                                        and math.isfinite(value))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    return False


def describe(hint: Any) -> str:
    """A type hint in words: ``float | None`` -> "float or null", ``list[int]`` -> "list of int"."""
    if len(_union_args(hint)) > 1:
        return " or ".join(describe(arg) for arg in _union_args(hint))
    if typing.get_origin(hint) is list:
        return "list of " + " or ".join(describe(arg) for arg in typing.get_args(hint) or (Any,))
    if hint is type(None):
        return "null"
    if hint is Any or hint is object:
        return "JSON value"
    return getattr(hint, "__name__", str(hint))


def check_saved_params(cls: type, params: Any, where: Any, *, complete: bool) -> None:
    """Refuse saved hyperparameters (ModelFormatError starting with `where`, the file they came from) that are not
    a mapping, name one `cls` does not take, lack one (when `complete`) or hold a value its annotation refuses."""
    if not isinstance(params, dict):
        raise ModelFormatError(f"{where}: 'params' is not a JSON object of hyperparameter to value")
    names = param_names(cls)
    label = getattr(cls, "name", "") or cls.__name__
    unknown = [k for k in params if k not in names]
    if unknown:
        raise ModelFormatError(f"{where}: param {one_line(unknown[0], 50)!r} is unknown to {label}, which takes "
                               f"{names}")
    absent = [k for k in names if k not in params] if complete else []
    if absent:
        raise ModelFormatError(f"{where}: param {absent[0]!r} is missing; a saved model records every one")
    hints = param_hints(cls)
    for name, value in params.items():
        if not fits(value, hints[name]):
            raise ModelFormatError(f"{where}: param {name!r} = {one_line(value, 40)} is not {describe(hints[name])}")

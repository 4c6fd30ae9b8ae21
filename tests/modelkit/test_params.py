"""Hyperparameter introspection from `__init__` and the validation of saved hyperparameters."""

from __future__ import annotations

import math

import pytest

from modelkit.errors import ModelFormatError
from modelkit.params import accepts, check_saved_params, describe, get_params, param_hints, param_names, param_types


class Base:
    name = "base"

    def __init__(self, *, a: int = 1, b: float | None = None, tags: list[str] | None = None):
        self.a, self.b, self.tags = a, b, tags


class Forwarding(Base):
    name = "forwarding"

    def __init__(self, *, c: str = "x", **kwargs):
        super().__init__(**kwargs)
        self.c = c


class Closed(Base):
    def __init__(self, *, c: bool = False):
        super().__init__(a=2)
        self.c = c


def test_names_walk_the_mro_only_as_far_as_kwargs_forward():
    assert param_names(Base) == ["a", "b", "tags"]
    assert param_names(Forwarding) == ["c", "a", "b", "tags"]
    assert param_names(Closed) == ["c"]
    assert get_params(Forwarding(c="y", a=3)) == {"c": "y", "a": 3, "b": None, "tags": None}
    assert param_hints(Forwarding)["b"] == float | None


def test_types_and_what_they_accept():
    assert param_types(Forwarding, "b") == (float, type(None))
    assert param_types(Forwarding, "tags") == (list, type(None))
    assert param_types(Forwarding, "nope") == (object,)
    assert accepts(Base, "b", 1) and accepts(Base, "b", 1.5) and accepts(Base, "b", None)
    assert not accepts(Base, "b", True) and not accepts(Base, "b", math.nan) and not accepts(Base, "b", "1")
    assert accepts(Base, "a", 3) and not accepts(Base, "a", 3.0) and not accepts(Base, "a", False)
    assert accepts(Closed, "c", False) and not accepts(Closed, "c", 0)
    assert accepts(Base, "tags", ["x"]) and not accepts(Base, "tags", ["x", 1])
    assert describe(float | None) == "float or null" and describe(list[str]) == "list of str"


@pytest.mark.parametrize("params,complete,match", [
    ("x", False, "'params' is not a JSON object"),
    ({"zzz": 1}, False, "param 'zzz' is unknown to forwarding, which takes"),
    ({"c": "x"}, True, "param 'a' is missing"),
    ({"a": "1"}, False, "param 'a' = 1 is not int"),
    ({"b": math.inf}, False, "param 'b' = inf is not float or null"),
    ({"c": "x\ny"}, False, None),
])
def test_saved_params_are_checked(params, complete, match):
    if match is None:
        check_saved_params(Forwarding, params, "m/model.json", complete=complete)
        return
    with pytest.raises(ModelFormatError, match=match) as info:
        check_saved_params(Forwarding, params, "m/model.json", complete=complete)
    assert str(info.value).startswith("m/model.json: ") and "\n" not in str(info.value)


def test_registry_models_accept_their_own_params():
    from detectors.registry import REGISTRY as DETECTORS, create_detector
    from generators.registry import REGISTRY as GENERATORS, get_generator_class

    for name in DETECTORS:
        model = create_detector(name)
        check_saved_params(type(model), model.get_params(), name, complete=True)
    for name in ("cart", "gmm", "autoregressive"):
        klass = get_generator_class(name)
        check_saved_params(klass, get_params(klass(**GENERATORS[name].test_params)), name, complete=True)

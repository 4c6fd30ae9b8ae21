"""Checks of the values a saved detector holds; the files themselves are read by `modelkit.files`.

Every value read from `model.json` or `weights.safetensors` is checked before a model uses it; a failed check
raises `BadState`, which `Detector.load` turns into a one-line `ModelFormatError` naming the file.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from modelkit.errors import one_line
from modelkit.files import MODEL_FILE, WEIGHTS_FILE


class BadState(ValueError):
    """A saved value that fails a check; `file` is the file of the model directory it came from."""

    def __init__(self, problem: str, file: str = MODEL_FILE):
        super().__init__(problem)
        self.file = file


# ---------------------------------------------------------------------- value checks
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def require(mapping: Any, key: str, where: str) -> Any:
    """`mapping[key]`, or BadState naming the missing key."""
    if not isinstance(mapping, dict):
        raise BadState(f"{where} is not a JSON object")
    if key not in mapping:
        raise BadState(f"missing key {key!r} in {where}")
    return mapping[key]


def positive_int(value: Any, what: str) -> int:
    if not _is_int(value) or value < 1:
        raise BadState(f"{what} must be a positive integer, got {one_line(value, 60)}")
    return value


def finite_number(value: Any, what: str) -> float:
    if not _is_number(value) or not math.isfinite(value):
        raise BadState(f"{what} must be a finite number, got {one_line(value, 60)}")
    return float(value)


def shape_list(value: Any, what: str, length: int | None = None) -> list[int]:
    """A list of positive integers (a shape), of `length` items when given."""
    if not isinstance(value, list) or not value or (length is not None and len(value) != length) \
            or not all(_is_int(v) and v >= 1 for v in value):
        raise BadState(f"{what} must be a list of {length or 'some'} positive integers, got {one_line(value, 60)}")
    return list(value)


def number_list(value: Any, what: str, length: int | None = None, positive: bool = False) -> list[float]:
    """A non-empty list of finite numbers (all > 0 when `positive`), of `length` items when given."""
    if not isinstance(value, list) or not value or (length is not None and len(value) != length):
        raise BadState(f"{what} must be a list of {length or 'some'} finite numbers, got {one_line(value, 60)}")
    numbers = [finite_number(v, what) for v in value]
    if positive and min(numbers) <= 0:
        raise BadState(f"{what} must be positive, got {one_line(value, 60)}")
    return numbers


def mean_std(value: Any, what: str) -> list[float]:
    """A [mean, std] pair: finite, std > 0."""
    mean, std = number_list(value, what, length=2)
    if std <= 0:
        raise BadState(f"{what} has a standard deviation {std} that is not positive")
    return [mean, std]


def module_specs(prefix: str, module: Any) -> dict[str, tuple[tuple[int, ...], Any]]:
    """name -> (shape, dtype) of every tensor in a module's state dict, as `prefixed_state` names them."""
    return {f"{prefix}.{k}": (tuple(v.shape), v.dtype) for k, v in module.state_dict().items()}


def check_tensors(tensors: Mapping[str, Any], expected: Mapping[str, tuple[tuple[int, ...], Any]]) -> None:
    """The file holds exactly the `expected` tensors, each of its shape and dtype, with finite values."""
    import torch

    missing = [k for k in expected if k not in tensors]
    if missing:
        raise BadState(f"missing tensor(s) {one_line(missing[:5], 120)}", WEIGHTS_FILE)
    extra = [k for k in tensors if k not in expected]
    if extra:
        raise BadState(f"unexpected tensor(s) {one_line(extra[:5], 120)}", WEIGHTS_FILE)
    for name, (shape, dtype) in expected.items():
        tensor = tensors[name]
        if tuple(tensor.shape) != tuple(shape) or tensor.dtype != dtype:
            raise BadState(f"tensor {name!r} is {tuple(tensor.shape)} {tensor.dtype}, the model needs "
                           f"{tuple(shape)} {dtype}", WEIGHTS_FILE)
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise BadState(f"NaN or infinite values in tensor {name!r}", WEIGHTS_FILE)
        if name.endswith("running_var") and bool((tensor < 0).any()):
            raise BadState(f"negative variances in tensor {name!r}", WEIGHTS_FILE)

"""Saved detectors as untrusted input, and the one memory layout fitted state is kept in.

Every value read from `model.json` or `weights.safetensors` is checked before a model uses it; a failed check
raises `BadState`, which `Detector.load` turns into a one-line `ModelFormatError` naming the file.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

MODEL_JSON = "model.json"
WEIGHTS = "weights.safetensors"
MAX_JSON_BYTES = 64 * 2**20
MAX_HEADER_BYTES = 100 * 2**20
_ITEM_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


class BadState(ValueError):
    """A saved value that fails a check; `file` is the file of the model directory it came from."""

    def __init__(self, problem: str, file: str = MODEL_JSON):
        super().__init__(problem)
        self.file = file


def one_line(text: Any, limit: int = 300) -> str:
    """`text` on one line, shortened: messages quoting a tampered file must not spill over the terminal."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# ---------------------------------------------------------------------- canonical layout
def canonical(value: Any, dtype: Any = None) -> Any:
    """A fresh copy of `value` (numpy array or torch tensor) in `dtype`, C-contiguous with standard strides.

    Fitted state goes through this when it is set, after `fit` and after `load`, so both hold it in one layout:
    matrix products pick their kernel by the operands' strides and alignment, and a column-major matrix (what
    `torch.linalg.inv` returns) or a tensor at an odd offset of a loaded file (what safetensors hands back)
    multiplies to results that differ in the last bits on some CPUs. Torch's allocator aligns the copy to 64 bytes.
    """
    if isinstance(value, np.ndarray) or not hasattr(value, "detach"):
        return np.array(value, dtype=dtype, order="C", copy=True)
    import torch

    tensor = value.detach()
    out = torch.empty(tuple(tensor.shape), dtype=dtype or tensor.dtype)
    out.copy_(tensor)
    return out


def canonical_module(module: Any) -> Any:
    """Put every parameter and buffer of a torch module in the canonical layout (see `canonical`)."""
    for submodule in module.modules():
        for name, param in list(submodule._parameters.items()):
            if param is not None:
                param.data = canonical(param.data)
        for name, buffer in list(submodule._buffers.items()):
            if buffer is not None:
                submodule._buffers[name] = canonical(buffer)
    return module


def is_canonical(value: Any) -> bool:
    """True for a C-contiguous array/tensor with standard strides (and, for torch, 64-byte aligned data)."""
    if isinstance(value, np.ndarray):
        return value.flags.c_contiguous and value.strides == np.empty(value.shape, value.dtype).strides
    import torch

    standard = torch.empty(tuple(value.shape), dtype=value.dtype).stride()
    return (value.is_contiguous() and value.stride() == standard and value.storage_offset() == 0
            and (value.numel() == 0 or value.data_ptr() % 64 == 0))


# ---------------------------------------------------------------------- files
def read_json(path: Path) -> Any:
    """Parse model.json: size-capped, UTF-8, and no NaN or infinite number anywhere."""
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise BadState(f"its {size} bytes exceed the {MAX_JSON_BYTES}-byte limit for detector metadata")

    def finite_float(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise BadState(f"non-finite number {text[:40]}")
        return value

    def no_constant(text: str) -> Any:
        raise BadState(f"non-finite number {text}")

    try:
        return json.loads(path.read_bytes().decode("utf-8"), parse_float=finite_float, parse_constant=no_constant)
    except UnicodeDecodeError:
        raise BadState("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise BadState(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise BadState("JSON nested too deeply") from None


def read_weights(path: Path) -> dict[str, Any]:
    """Load weights.safetensors after checking its header: length, JSON, dtypes, shapes and offsets in the file."""
    from safetensors.torch import load

    size = path.stat().st_size

    def bad(problem: str) -> BadState:
        return BadState(problem, WEIGHTS)

    if size < 8:
        raise bad(f"truncated ({size} bytes, shorter than the 8-byte safetensors header length)")
    with path.open("rb") as handle:
        header_length = int.from_bytes(handle.read(8), "little")
        if header_length > min(size - 8, MAX_HEADER_BYTES):
            raise bad(f"header length {header_length} bytes exceeds the {size}-byte file or the "
                      f"{MAX_HEADER_BYTES}-byte limit")
        raw_header = handle.read(header_length)
    try:
        header = json.loads(raw_header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise bad("the safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise bad("the safetensors header is not a JSON object")
    data_bytes = size - 8 - header_length
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"malformed header entry for tensor {one_line(name, 60)!r}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _ITEM_BYTES:
            raise bad(f"tensor {name!r} has unsupported dtype {one_line(dtype, 20)!r}")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise bad(f"tensor {name!r} has invalid shape {one_line(shape, 60)}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= data_bytes):
            raise bad(f"tensor {name!r} at offsets {one_line(offsets, 60)} lies outside the {data_bytes} data bytes "
                      "(truncated?)")
        if offsets[1] - offsets[0] != math.prod(shape) * _ITEM_BYTES[dtype]:
            raise bad(f"tensor {name!r} takes {offsets[1] - offsets[0]} bytes, not what shape {shape} of {dtype} needs")
        spans.append(tuple(offsets))
    spans.sort()
    covered = 0
    for begin, end in spans:
        if begin != covered:
            raise bad("tensor data overlaps or leaves gaps")
        covered = end
    if covered != data_bytes:
        raise bad(f"{data_bytes} data bytes, but the tensors take {covered} (truncated or padded)")
    return load(path.read_bytes())


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
        raise BadState(f"missing tensor(s) {one_line(missing[:5], 120)}", WEIGHTS)
    extra = [k for k in tensors if k not in expected]
    if extra:
        raise BadState(f"unexpected tensor(s) {one_line(extra[:5], 120)}", WEIGHTS)
    for name, (shape, dtype) in expected.items():
        tensor = tensors[name]
        if tuple(tensor.shape) != tuple(shape) or tensor.dtype != dtype:
            raise BadState(f"tensor {name!r} is {tuple(tensor.shape)} {tensor.dtype}, the model needs "
                           f"{tuple(shape)} {dtype}", WEIGHTS)
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise BadState(f"NaN or infinite values in tensor {name!r}", WEIGHTS)
        if name.endswith("running_var") and bool((tensor < 0).any()):
            raise BadState(f"negative variances in tensor {name!r}", WEIGHTS)

"""The saved-model envelope: `model.json` plus `weights.safetensors`, written and read back without pickle.

Both files are untrusted input when read: every reader here checks sizes, structure and the safetensors header
against the file before anything is decoded, and raises `ModelFormatError` in one line that names the file and
says what is wrong, never what to do: the library that calls them adds its own way out when it reports the error.
Fitted state is kept in one memory layout (`canonical`) after `fit` and after `load` alike.
"""

from __future__ import annotations

import json
import math
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

import numpy as np

from modelkit.errors import ModelFormatError, VersionMismatchWarning, one_line

MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"
MAX_MODEL_JSON_BYTES = 64 * 2**20
MAX_SAFETENSORS_HEADER_BYTES = 100 * 2**20  # the safetensors library's own limit
_ITEM_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2, "U32": 4, "I32": 4, "F32": 4,
               "U64": 8, "I64": 8, "F64": 8}
_HEADER_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}


# ---------------------------------------------------------------------- versions
def library_versions(distributions: Iterable[str]) -> dict[str, str | None]:
    """Installed version of each distribution (None where it is not installed), as recorded beside a model."""
    out: dict[str, str | None] = {}
    for dist in distributions:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def warn_if_versions_differ(model: Path, saved: Mapping[str, Any], running: Mapping[str, Any], *, consequence: str,
                            category: type[Warning] = VersionMismatchWarning, stacklevel: int = 2) -> None:
    """Warn (`category`) naming every running library whose version differs from the one `model` was saved with."""
    differing = {k: (saved.get(k), now) for k, now in running.items() if saved.get(k) != now}
    if differing:
        warnings.warn(f"model {model} was saved with other library versions "
                      + ", ".join(f"{k} {one_line(was, 30)} (now {now})" for k, (was, now) in differing.items())
                      + f"; {consequence}", category, stacklevel=stacklevel + 1)


# ---------------------------------------------------------------------- model.json
def read_model_json(path: str | Path, max_bytes: int | None = None, *, finite: bool = False) -> dict[str, Any]:
    """The JSON object in `path`, refusing a missing or irregular file, more than `max_bytes`
    (default MAX_MODEL_JSON_BYTES), text that is not UTF-8 JSON, nesting beyond the parser's depth, anything but
    an object and, with `finite`, NaN or infinite numbers.
    """
    path = Path(path)
    limit = MAX_MODEL_JSON_BYTES if max_bytes is None else max_bytes
    if not path.exists():
        raise ModelFormatError(f"{path.parent} holds no {path.name}: it is not a saved model's directory")
    if not path.is_file():
        raise ModelFormatError(f"{path}: not a regular file")
    with open(path, "rb") as handle:
        raw = handle.read(limit + 1)
    if len(raw) > limit:
        raise ModelFormatError(f"{path}: its {path.stat().st_size} bytes exceed the {limit}-byte limit (no saved "
                               "model is larger)")

    def finite_float(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ModelFormatError(f"{path}: non-finite number {text[:40]}")
        return value

    def no_constant(text: str) -> Any:
        raise ModelFormatError(f"{path}: non-finite number {text}")

    hooks = {"parse_float": finite_float, "parse_constant": no_constant} if finite else {}
    try:
        doc = json.loads(raw.decode("utf-8"), **hooks)
    except UnicodeDecodeError:
        raise ModelFormatError(f"{path}: not valid JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise ModelFormatError(f"{path}: JSON nested too deeply to be a saved model") from None
    if not isinstance(doc, dict):
        raise ModelFormatError(f"{path}: the envelope is not a JSON object (it is a JSON {type(doc).__name__})")
    return doc


def read_envelope(directory: str | Path, *, format_version: int, keys: Iterable[str], finite: bool = False,
                  max_bytes: int | None = None) -> dict[str, Any]:
    """`directory`'s model.json (see `read_model_json`), of `format_version` and holding every one of `keys`."""
    path = Path(directory) / MODEL_FILE
    doc = read_model_json(path, max_bytes, finite=finite)
    version = doc.get("format_version")
    if isinstance(version, bool) or version != format_version:
        raise ModelFormatError(f"{path}: model format version {one_line(version, 20)} is not {format_version}, the "
                               "one this synthwatch reads")
    for key in keys:
        if key not in doc:
            raise ModelFormatError(f"{path}: missing key {key!r} in the envelope")
    return doc


# ---------------------------------------------------------------------- weights.safetensors
def read_safetensors_checked(path: str | Path, *, framework: Literal["numpy", "torch"] = "numpy") -> dict[str, Any]:
    """The tensors of a safetensors file, after checking its header against the file.

    Refuses a missing or truncated file, a header length beyond the file or MAX_SAFETENSORS_HEADER_BYTES, a header
    that is not a JSON object, malformed entries, unknown dtypes, and offsets that do not tile the data exactly.
    `numpy` gives C-contiguous array copies; `torch` gives what `safetensors.torch.load` returns.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: missing or not a regular file (the model's weights)")
    data = path.read_bytes()
    size = len(data)
    if size < 8:
        raise ModelFormatError(f"{path}: truncated ({size} bytes, shorter than the 8-byte safetensors header length)")
    header_length = int.from_bytes(data[:8], "little")
    if header_length > min(size - 8, MAX_SAFETENSORS_HEADER_BYTES):
        raise ModelFormatError(f"{path}: header length {header_length} bytes exceeds the {size}-byte file or the "
                               f"{MAX_SAFETENSORS_HEADER_BYTES}-byte limit (truncated or forged)")
    try:
        header = json.loads(data[8:8 + header_length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ModelFormatError(f"{path}: the safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise ModelFormatError(f"{path}: the safetensors header is not a JSON object")
    data_bytes = size - 8 - header_length
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        where = f"{path}: tensor {one_line(name, 60)!r}"
        if not isinstance(entry, dict) or set(entry) != _HEADER_ENTRY_KEYS:
            raise ModelFormatError(f"{where} has a malformed header entry")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _ITEM_BYTES:
            raise ModelFormatError(f"{where} has unsupported dtype {one_line(dtype, 20)!r}")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise ModelFormatError(f"{where} has invalid shape {one_line(shape, 60)}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)
                and offsets[0] <= offsets[1] <= data_bytes):
            raise ModelFormatError(f"{where} at offsets {one_line(offsets, 60)} lies outside the {data_bytes} data "
                                   "bytes (truncated or forged)")
        if offsets[1] - offsets[0] != math.prod(shape) * _ITEM_BYTES[dtype]:
            raise ModelFormatError(f"{where} takes {offsets[1] - offsets[0]} bytes, not what shape "
                                   f"{one_line(shape, 60)} of {dtype} needs")
        spans.append((offsets[0], offsets[1]))
    covered = 0
    for begin, end in sorted(spans):
        if begin != covered:
            raise ModelFormatError(f"{path}: tensor data overlaps or leaves gaps (forged)")
        covered = end
    if covered != data_bytes:
        raise ModelFormatError(f"{path}: {data_bytes} data bytes, but the tensors take {covered} (truncated or padded)")
    if framework == "torch":
        from safetensors.torch import load
    else:
        from safetensors.numpy import load
    try:
        tensors = load(data)
    except Exception as exc:  # noqa: BLE001 - the library's own checks, whatever it raises
        raise ModelFormatError(f"{path}: not a valid safetensors file ({one_line(exc, 200)})") from None
    if framework == "torch":
        return tensors
    return {k: np.array(v, order="C", copy=True) for k, v in tensors.items()}


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# ---------------------------------------------------------------------- writing
def write_envelope(directory: str | Path, doc: Mapping[str, Any], arrays: Mapping[str, Any], *, indent: int = 1,
                   sort_keys: bool = False) -> Path:
    """Write `arrays` (all numpy or all torch) to weights.safetensors, then `doc` to model.json; return `directory`.

    The weights come first, so a directory whose model.json exists has its weights. `indent` and `sort_keys` keep
    the text layout each library has always written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: canonical(v) for k, v in arrays.items()}
    if any(hasattr(v, "detach") for v in tensors.values()):
        from safetensors.torch import save_file
    else:
        from safetensors.numpy import save_file
    save_file(tensors, str(directory / WEIGHTS_FILE))
    (directory / MODEL_FILE).write_text(json.dumps(doc, indent=indent, sort_keys=sort_keys, allow_nan=True))
    return directory


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
        for param in submodule._parameters.values():
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

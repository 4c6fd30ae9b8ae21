"""The shared envelope: checked readers refuse tampered files in one line naming them; the writer round-trips."""

from __future__ import annotations

import json
import math
import struct
import warnings

import numpy as np
import pytest

from modelkit import errors, files
from modelkit.errors import ModelFormatError
from modelkit.files import (MODEL_FILE, WEIGHTS_FILE, canonical, canonical_module, is_canonical, library_versions,
                            read_envelope, read_model_json, read_safetensors_checked, warn_if_versions_differ,
                            write_envelope)


def _refused(call, match: str, path) -> ModelFormatError:
    with pytest.raises(ModelFormatError, match=match) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    return info.value


def _safetensors(header: dict, data: bytes = b"", length: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


# ------------------------------------------------------------------ errors
def test_each_library_error_is_also_the_shared_one():
    import detectors.errors as de
    import generators.errors as ge

    assert issubclass(ge.ModelFormatError, (errors.ModelFormatError)) and issubclass(ge.ModelFormatError, ValueError)
    assert issubclass(ge.UnsafeModelError, errors.UnsafeModelError) and issubclass(ge.UnsafeModelError,
                                                                                   ge.ModelFormatError)
    assert issubclass(ge.NotFittedError, errors.NotFittedError) and issubclass(ge.NotFittedError, ge.GeneratorError)
    assert issubclass(de.ModelFormatError, errors.ModelFormatError) and issubclass(de.ModelFormatError,
                                                                                   de.DetectorError)
    assert issubclass(de.NotFittedError, errors.ModelError)
    assert issubclass(ge.VersionMismatchWarning, errors.VersionMismatchWarning)
    assert issubclass(de.DetectorVersionWarning, errors.VersionMismatchWarning)
    assert not issubclass(ge.VersionMismatchWarning, de.DetectorVersionWarning)


# ------------------------------------------------------------------ envelope
def test_write_envelope_round_trips_bit_for_bit(tmp_path):
    arrays = {"w": np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4) / 7), "n": np.arange(3)}
    doc = {"format_version": 3, "state": {"edge": -math.inf}, "params": {"a": 1}}
    assert write_envelope(tmp_path / "m", doc, arrays) == tmp_path / "m"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [MODEL_FILE, WEIGHTS_FILE]
    back = read_envelope(tmp_path / "m", format_version=3, keys=("state", "params"))
    assert back == doc
    loaded = read_safetensors_checked(tmp_path / "m" / WEIGHTS_FILE)
    assert set(loaded) == set(arrays)
    for key, array in arrays.items():
        assert loaded[key].dtype == array.dtype and np.array_equal(loaded[key], array) and is_canonical(loaded[key])


def test_write_envelope_writes_torch_tensors_and_the_requested_layout(tmp_path):
    import torch

    tensors = {"t": torch.arange(6, dtype=torch.float32).reshape(2, 3).T}
    write_envelope(tmp_path, {"b": 1, "a": 2}, tensors, indent=2, sort_keys=True)
    assert (tmp_path / MODEL_FILE).read_text() == json.dumps({"a": 2, "b": 1}, indent=2)
    loaded = read_safetensors_checked(tmp_path / WEIGHTS_FILE, framework="torch")
    assert torch.equal(loaded["t"], tensors["t"])


def test_read_envelope_refuses_other_versions_and_missing_keys(tmp_path):
    for version in (2, True, "1", None):
        (tmp_path / MODEL_FILE).write_text(json.dumps({"format_version": version, "a": 1}))
        _refused(lambda: read_envelope(tmp_path, format_version=1, keys=("a",)), "format version", tmp_path)
    (tmp_path / MODEL_FILE).write_text(json.dumps({"format_version": 1}))
    _refused(lambda: read_envelope(tmp_path, format_version=1, keys=("a",)), "missing key 'a' in the envelope",
             tmp_path)


# ------------------------------------------------------------------ model.json
def test_model_json_caps_and_parse_errors(tmp_path, monkeypatch):
    path = tmp_path / MODEL_FILE
    _refused(lambda: read_model_json(path), "holds no model.json", tmp_path)
    path.mkdir()
    _refused(lambda: read_model_json(path), "not a regular file", path)
    path.rmdir()
    path.write_text(json.dumps({"x": "y" * 200}))
    _refused(lambda: read_model_json(path, max_bytes=100), "exceed the 100-byte limit", path)
    monkeypatch.setattr(files, "MAX_MODEL_JSON_BYTES", 50)
    _refused(lambda: read_model_json(path), "exceed the 50-byte limit", path)
    monkeypatch.undo()
    for raw, match in [(b"\xff\xfe{}", "not UTF-8"), (b'{"a": ', "not valid JSON"), (b"[1, 2]", "not a JSON object"),
                       (b"[" * 100_000 + b"]" * 100_000, "nested too deeply")]:
        path.write_bytes(raw)
        _refused(lambda: read_model_json(path), match, path)


def test_model_json_non_finite_numbers_only_where_refused(tmp_path):
    path = tmp_path / MODEL_FILE
    path.write_text('{"a": NaN, "b": 1e999}')
    assert math.isnan(read_model_json(path)["a"])
    _refused(lambda: read_model_json(path, finite=True), "non-finite number NaN", path)
    path.write_text('{"b": 1e999}')
    _refused(lambda: read_model_json(path, finite=True), "non-finite number 1e999", path)


# ------------------------------------------------------------------ weights.safetensors
GOOD = {"x": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]}}


@pytest.mark.parametrize("raw,match", [
    (b"", "truncated"),
    (b"\x01\x00\x00", "truncated"),
    (_safetensors(GOOD, b"\0" * 16, length=2**62), "header length 4611686018427387904 bytes exceeds"),
    (_safetensors(GOOD, b"\0" * 16, length=10**6), "exceeds the"),
    (struct.pack("<Q", 3) + b"{{{" + b"\0" * 16, "header is not valid JSON"),
    (_safetensors([1, 2]), "header is not a JSON object"),
    (_safetensors({"x": dict(GOOD["x"], extra=1)}, b"\0" * 16), "malformed header entry"),
    (_safetensors({"x": dict(GOOD["x"], dtype="C64")}, b"\0" * 16), "unsupported dtype"),
    (_safetensors({"x": dict(GOOD["x"], shape=[-2])}, b"\0" * 16), "invalid shape"),
    (_safetensors({"x": dict(GOOD["x"], shape=[True])}, b"\0" * 16), "invalid shape"),
    (_safetensors(GOOD, b"\0" * 10), "lies outside the 10 data bytes"),
    (_safetensors({"x": dict(GOOD["x"], shape=[10**6], data_offsets=[0, 8 * 10**6])}, b"\0" * 16), "outside"),
    (_safetensors({"x": dict(GOOD["x"], shape=[3])}, b"\0" * 16), "not what shape"),
    (_safetensors(dict(GOOD, y=dict(GOOD["x"], data_offsets=[8, 24])), b"\0" * 24), "overlaps or leaves gaps"),
    (_safetensors(GOOD, b"\0" * 24), "truncated or padded"),
])
def test_forged_safetensors_are_refused_in_one_line(tmp_path, raw, match):
    path = tmp_path / WEIGHTS_FILE
    path.write_bytes(raw)
    for framework in ("numpy", "torch"):
        _refused(lambda: read_safetensors_checked(path, framework=framework), match, path)


def test_header_cap_and_missing_file(tmp_path, monkeypatch):
    path = tmp_path / WEIGHTS_FILE
    _refused(lambda: read_safetensors_checked(path), "missing", path)
    path.write_bytes(_safetensors(GOOD, b"\0" * 16))
    assert np.array_equal(read_safetensors_checked(path)["x"], np.zeros(2))
    monkeypatch.setattr(files, "MAX_SAFETENSORS_HEADER_BYTES", 10)
    _refused(lambda: read_safetensors_checked(path), "10-byte limit", path)


# ------------------------------------------------------------------ versions
def test_library_versions_and_the_drift_warning(tmp_path):
    versions = library_versions(["numpy", "no-such-distribution-synthwatch"])
    assert versions == {"numpy": np.__version__, "no-such-distribution-synthwatch": None}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_versions_differ(tmp_path, dict(versions), versions, consequence="fine")

    class Drift(errors.VersionMismatchWarning):
        pass
    with pytest.warns(Drift, match=r"numpy 0\.1 \(now .*\); results may differ"):
        warn_if_versions_differ(tmp_path, dict(versions, numpy="0.1"), versions, category=Drift,
                                consequence="results may differ")


# ------------------------------------------------------------------ canonical layout
def test_canonical_numpy_copies_into_c_order_and_dtype():
    source = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))[:, 1:]
    assert not is_canonical(source)
    out = canonical(source, np.float64)
    assert is_canonical(out) and out.dtype == np.float64 and np.array_equal(out, source)
    assert not np.shares_memory(out, source)
    assert is_canonical(canonical([[1, 2], [3, 4]]))


def test_canonical_torch_is_standard_strided_aligned_and_detached():
    import torch

    base = torch.arange(40, dtype=torch.float64, requires_grad=True)
    odd = base[1:].reshape(3, 13).T  # offset storage and transposed strides
    assert not is_canonical(odd)
    out = canonical(odd)
    assert is_canonical(out) and torch.equal(out, odd) and not out.requires_grad
    assert canonical(odd, torch.float32).dtype == torch.float32
    module = torch.nn.Linear(3, 2)
    module.weight.data = module.weight.data.T.contiguous().T  # column-major parameter
    assert not is_canonical(module.weight.data)
    canonical_module(module)
    assert all(is_canonical(p.data) for p in module.parameters())

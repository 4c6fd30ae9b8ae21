"""A saved model is user input: every tampered directory is refused at load with one typed line naming the file."""

from __future__ import annotations

import gc
import json
import shutil
import struct

import numpy as np
import pytest

from generators.base import MODEL_FILE, WEIGHTS_FILE, Generator
from generators.errors import ModelFormatError, UnsafeModelError
from generators.registry import REGISTRY, make_generator
from generators.safe_state import StateReader, StateWriter

OWN = ["cart", "gmm", "autoregressive"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory, mixed_frame_factory):
    """saved(name) -> directory of that generator fitted on a tiny frame (fitted once per module and name)."""
    cache = {}

    def get(name: str):
        if name not in cache:
            gen = make_generator(name, **REGISTRY[name].test_params).fit(mixed_frame_factory(60))
            cache[name] = gen.save(tmp_path_factory.mktemp(name) / "model")
        return cache[name]

    return get


@pytest.fixture
def copy_of(saved, tmp_path):
    """copy_of(name) -> a fresh copy of that saved model to tamper with."""
    def get(name: str):
        return shutil.copytree(saved(name), tmp_path / f"{name}-copy")

    return get


def _edit_doc(path, edit):
    doc = json.loads((path / MODEL_FILE).read_text())
    edit(doc)
    (path / MODEL_FILE).write_text(json.dumps(doc))


def _edit_arrays(path, edit):
    from safetensors.numpy import load_file, save_file

    arrays = {k: v.copy() for k, v in load_file(str(path / WEIGHTS_FILE)).items()}
    edit(arrays)
    save_file(arrays, str(path / WEIGHTS_FILE))


def _refused(path, match=None, error=ModelFormatError):
    """Load must raise `error` in one line naming a file of the model directory."""
    with pytest.raises(error, match=match) as info:
        Generator.load(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


# ------------------------------------------------------------------ classes
def _closer(victim, ref=10**6):
    path = "torch.nn.modules.module:torch.serialization.tempfile._TemporaryFileCloser"
    return {"__obj__": path, "ref": ref, "state": {"__dict__": [
        ["file", 1], ["name", str(victim)], ["delete", True], ["close_called", False]], "ordered": False}}


def test_temporary_file_closer_exploit_is_refused_and_the_victim_survives(copy_of, tmp_path):
    path = copy_of("ctgan")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    _edit_doc(path, lambda d: d["state"]["synthesizer"]["state"]["__dict__"].append(["extra", _closer(victim)]))
    _refused(path, "_TemporaryFileCloser", UnsafeModelError)
    gc.collect()
    assert victim.read_text() == "keep me"


@pytest.mark.parametrize("class_path", [
    "torch.nn.modules.module:torch.serialization.tempfile._TemporaryFileCloser",
    "torch.nn.modules.linear:torch.nn.Linear",           # a real allowed class, but named through an attribute path
    "ctgan.synthesizers.ctgan:torch.nn.modules.linear.Linear",
    "torch.nn.modules.linear:Linear.__init__",
    "torch.nn.modules.linear:Linear.__class__",
    "torch.nn.modules.module:Module",                     # allowed module, class never part of a saved model
    "os:system", "subprocess:Popen", "builtins:eval", "", ":", "torch.nn.modules.linear", ".x:Y",
])
def test_only_exact_listed_classes_resolve(class_path):
    with pytest.raises(UnsafeModelError):
        StateReader({}).decode({"__class__": class_path})
    with pytest.raises(UnsafeModelError):
        StateReader({}).decode({"__obj__": class_path, "ref": 0, "state": {"__dict__": [], "ordered": False}})


def test_listed_class_with_a_finaliser_or_pickling_hook_is_still_refused(monkeypatch, tmp_path):
    import generators.safe_state as ss

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    monkeypatch.setattr(ss, "ALLOWED_CLASSES", ss.ALLOWED_CLASSES | {"tempfile:_TemporaryFileCloser",
                                                                      "collections:Counter"})
    doc = _closer(victim)
    doc["__obj__"] = "tempfile:_TemporaryFileCloser"
    with pytest.raises(UnsafeModelError, match="finaliser"):
        StateReader({}).decode(doc)
    with pytest.raises(UnsafeModelError, match="pickling hook"):
        StateReader({}).decode({"__obj__": "collections:Counter", "ref": 0,
                                "state": {"__dict__": [], "ordered": False}})
    gc.collect()
    assert victim.exists()


def test_every_listed_class_resolves_and_passes_the_rule():
    import generators.safe_state as ss

    for class_path in ss.ALLOWED_CLASSES:
        cls = ss.resolve_class(class_path)
        assert f"{cls.__module__}:{cls.__qualname__}" == class_path


def test_writer_refuses_classes_off_the_list():
    import tempfile

    with pytest.raises(UnsafeModelError):
        StateWriter().encode(tempfile._TemporaryFileCloser(None, "x"))
    with pytest.raises(UnsafeModelError):
        StateWriter().encode(tempfile._TemporaryFileCloser)


@pytest.mark.parametrize("doc", [
    {"__ref__": 3},
    {"__obj__": "torch.nn.modules.activation:ReLU", "ref": "a", "state": {"__dict__": [], "ordered": False}},
    {"__obj__": "torch.nn.modules.activation:ReLU", "ref": 0, "state": [1]},
    {"__nt__": {"__tuple__": []}, "v": []},
    {"__tdtype__": "save"},
    {"__tgen__": "a0", "device": "cuda"},
    {"__ndlist__": [], "shape": [2**40, 2**40], "dtype": "|O"},
    {"__ndlist__": [1, 2], "shape": [-1], "dtype": "|V99999999999"},
    {"__nd__": "missing"},
    {"__range__": [0, 2**62, 1], "name": None},
])
def test_malformed_state_is_a_format_error(doc):
    with pytest.raises(ModelFormatError):
        StateReader({"a0": np.zeros(3, dtype=np.uint8)}).decode(doc)


def test_deep_nesting_is_a_format_error(copy_of):
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ModelFormatError):
        StateReader({}).decode(json.loads("[" * 500 + "]" * 500))
    path = copy_of("cart")
    text = (path / MODEL_FILE).read_text()
    (path / MODEL_FILE).write_text(text.replace('"state": {', f'"deep": {deep}, "state": {{', 1))
    _refused(path, "model.json")


# ------------------------------------------------------------------ files
def test_truncated_weights_are_refused(copy_of):
    path = copy_of("cart")
    data = (path / WEIGHTS_FILE).read_bytes()
    for cut in (4, 12, len(data) // 2, len(data) - 1):
        (path / WEIGHTS_FILE).write_bytes(data[:cut])
        _refused(path, "weights.safetensors")


def test_oversized_or_lying_safetensors_header_is_refused(copy_of):
    path = copy_of("cart")
    data = (path / WEIGHTS_FILE).read_bytes()
    (path / WEIGHTS_FILE).write_bytes(struct.pack("<Q", 2**62) + data[8:])
    _refused(path, "weights.safetensors")
    header = json.dumps({"x": {"dtype": "F64", "shape": [10**6], "data_offsets": [0, 8 * 10**6]}}).encode()
    (path / WEIGHTS_FILE).write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    _refused(path, "weights.safetensors")


def test_missing_weights_file_is_refused(copy_of):
    path = copy_of("gmm")
    (path / WEIGHTS_FILE).unlink()
    _refused(path, "weights.safetensors")


def test_oversized_or_garbage_model_json_is_refused(copy_of, monkeypatch):
    import modelkit.files

    path = copy_of("cart")
    monkeypatch.setattr(modelkit.files, "MAX_MODEL_JSON_BYTES", 1000)
    _refused(path, "larger")
    monkeypatch.undo()
    for garbage in (b"\xff\xfe\x00garbage", b"[1, 2]", b'{"format_version": 1'):
        (path / MODEL_FILE).write_bytes(garbage)
        _refused(path, "model.json")


# ------------------------------------------------------------------ document
@pytest.mark.parametrize("key", ["generator", "params", "schema", "codec", "n_train_rows", "model_columns", "state"])
def test_missing_key_is_named(copy_of, key):
    path = copy_of("cart")
    _edit_doc(path, lambda d: d.pop(key))
    _refused(path, key)


def test_unknown_generator_is_a_format_error(copy_of):
    path = copy_of("cart")
    _edit_doc(path, lambda d: d.update(generator="nope"))
    _refused(path, "nope")


@pytest.mark.parametrize("params", [{"not_a_param": 1}, {"min_samples_leaf": "5"}, {"min_samples_leaf": [5]},
                                    {"max_depth": 2.5}, {"seed": True}, {"min_samples_leaf": float("nan")}])
def test_bad_params_are_refused(copy_of, params):
    path = copy_of("cart")
    _edit_doc(path, lambda d: d["params"].update(params))
    _refused(path, f"param {next(iter(params))!r}|param {next(iter(params))}=")


@pytest.mark.parametrize("params", ["x", {}, {"min_samples_leaf": 5}])
def test_params_must_be_the_complete_mapping(copy_of, params):
    path = copy_of("cart")
    _edit_doc(path, lambda d: d.update(params=params))
    _refused(path, "param")


@pytest.mark.parametrize("edit", [
    lambda d: d.update(format_version=True),
    lambda d: d.update(n_train_rows=-1),
    lambda d: d["model_columns"][1].__setitem__(2, -4),
    lambda d: d["model_columns"].pop(),
    lambda d: d["schema"]["columns"][0].update(kind="nope"),
    lambda d: d["codec"]["columns"]["age"].update(min=float("nan")),
    lambda d: d["codec"]["columns"]["age"].update(min=1e9),
    lambda d: d["codec"]["columns"]["segment"].update(categories="abc"),
    lambda d: d["codec"]["columns"].pop("segment"),
    lambda d: d["codec"]["columns"]["opened"].update(resolution="fortnight"),
    lambda d: d["state"].update(n_trees=99),
])
def test_inconsistent_document_is_refused(copy_of, edit):
    path = copy_of("cart")
    _edit_doc(path, edit)
    _refused(path)


# ------------------------------------------------------------------ arrays
def _first_float(arrays, prefix=""):
    return next(k for k, v in sorted(arrays.items()) if k.startswith(prefix) and v.dtype.kind == "f" and v.size)


@pytest.mark.parametrize("name", [*OWN, "ctgan"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_weights_are_refused(copy_of, name, value):
    path = copy_of(name)
    prefix = {"autoregressive": "net.w"}.get(name, "")
    _edit_arrays(path, lambda a: a[_first_float(a, prefix)].reshape(-1).__setitem__(0, value))
    _refused(path)


@pytest.mark.parametrize("name", [*OWN, "ctgan"])
def test_wrong_shapes_are_refused(copy_of, name):
    path = copy_of(name)
    key = {"cart": "tree3.left", "gmm": "means", "autoregressive": "net.w1"}.get(name)

    def cut(a):
        k = key or max(a, key=lambda k: a[k].size)
        a[k] = np.ascontiguousarray(a[k][..., :-1])

    _edit_arrays(path, cut)
    _refused(path)


@pytest.mark.parametrize("name", OWN)
def test_missing_array_is_refused(copy_of, name):
    path = copy_of(name)
    _edit_arrays(path, lambda a: a.pop(sorted(a)[0]))
    _refused(path)


@pytest.mark.parametrize("key, value", [("tree2.count", -3), ("tree2.left", 0), ("tree2.start", 10**6),
                                        ("tree2.feature", 7), ("tree2.values", 99.0)])
def test_cart_negative_counts_cycles_and_out_of_range_indexes_are_refused(copy_of, key, value):
    path = copy_of("cart")
    # tree2 predicts `income__null` (categorical, 2 codes): its values are category codes
    _edit_arrays(path, lambda a: a[key].__setitem__(0 if "values" in key or "left" in key else -1, value))
    _refused(path)


def test_wrong_dtype_is_refused(copy_of):
    path = copy_of("gmm")
    _edit_arrays(path, lambda a: a.update(weights=a["weights"].astype(np.float32)))
    _refused(path, "float64")


def test_gmm_weights_must_be_a_distribution(copy_of):
    path = copy_of("gmm")
    _edit_arrays(path, lambda a: a.update(weights=-a["weights"]))
    _refused(path)


def test_autoregressive_thread_count_is_bounded(copy_of):
    path = copy_of("autoregressive")
    _edit_doc(path, lambda d: d["params"].update(num_threads=10**6))
    _refused(path, "num_threads")

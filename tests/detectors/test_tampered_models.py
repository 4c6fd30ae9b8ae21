"""A saved model is user input: tampered files are refused at load with one line naming the file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from detectors.base import Detector
from detectors.errors import ModelFormatError
from detectors.iforest import IsolationForest
from detectors.registry import REGISTRY, create_detector
from modelkit import files


def _save(name: str, make_data, path: Path, kind: str = "tabular") -> Path:
    """Fit the registry's tiny version of `name` (one epoch for deep models) and save it under `path`."""
    params = dict(REGISTRY[name].test_params, kind=kind)
    params = dict(params, epochs=1, encoder_epochs=1) if "epochs" in params else dict(params, n_estimators=5)
    params = {k: v for k, v in params.items() if k in create_detector(name)._param_names()}
    create_detector(name, **params).fit(make_data(kind)[0]).save(path)
    return path


def _edit_json(path: Path, edit) -> None:
    envelope = json.loads((path / "model.json").read_text())
    edit(envelope)
    (path / "model.json").write_text(json.dumps(envelope))


def _edit_weights(path: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    tensors = {k: v.clone() for k, v in load_file(str(path / "weights.safetensors")).items()}
    edit(tensors)
    save_file(tensors, str(path / "weights.safetensors"))


def _refused(path: Path, file: str, match: str) -> ModelFormatError:
    with pytest.raises(ModelFormatError, match=match) as info:
        Detector.load(path)
    message = str(info.value)
    assert "\n" not in message and str(path / file) in message, message
    return info.value


@pytest.mark.timeout(20)
def test_iforest_tree_with_a_cycle_is_refused_before_scoring(make_data, tmp_path):
    path = _save("iforest", make_data, tmp_path / "m")

    def cycle(tensors):
        left, right = tensors["tree0.children_left"], tensors["tree0.children_right"]
        child = int(left[0]) if left[int(left[0])] >= 0 else int(right[0])
        left[child] = right[child] = 0  # both children point back at the root
    _edit_weights(path, cycle)
    with pytest.raises(ModelFormatError, match="tree 0 is invalid.*cycle"):
        Detector.load(path).score(make_data("tabular")[1])  # before: loaded, then scoring never ended
    _refused(path, "weights.safetensors", "cycle")


@pytest.mark.parametrize("edit,match", [
    (lambda t: t["tree1.n_node_samples"].__setitem__(-1, -3), "node size is not positive"),
    (lambda t: t["tree1.n_node_samples"].__setitem__(0, 10_000), "size differs from the sum"),
    (lambda t: t["tree0.children_left"].__setitem__(0, 10_000), "out of range"),
    (lambda t: t["tree0.children_right"].__setitem__(0, -1), "one child only"),
    (lambda t: t["tree0.feature"].__setitem__(0, 99), "split feature is outside"),
    (lambda t: t["tree0.features"].__setitem__(0, 99), r"column ids in \[0, 6\)"),
    (lambda t: t["tree0.threshold"].__setitem__(0, math.nan), "threshold is NaN"),
    (lambda t: t.__setitem__("tree0.threshold", t["tree0.threshold"][:-1]), "one common"),
    (lambda t: t.__setitem__("tree0.feature", t["tree0.feature"].float()), "is float32, not int64"),
    (lambda t: t.pop("tree4.features"), "29 tree tensors, but 5 trees need 30"),
    (lambda t: t.__setitem__("train_scores", t["train_scores"][:, None]), "train_scores"),
    (lambda t: t["train_scores"].__setitem__(0, math.inf), "infinite training scores"),
])
def test_iforest_bad_trees_are_refused(edit, match, make_data, tmp_path):
    path = _save("iforest", make_data, tmp_path / "m")
    _edit_weights(path, edit)
    _refused(path, "weights.safetensors", match)


@pytest.mark.parametrize("edit,match", [
    (lambda e: e.pop("params"), "missing key 'params' in the envelope"),
    (lambda e: e["base_state"].pop("kind"), "missing key 'kind' in base_state"),
    (lambda e: e["state"].pop("n_trees"), "missing key 'n_trees' in state"),
    (lambda e: e["base_state"].__setitem__("threshold", math.inf), "non-finite number Infinity"),
    (lambda e: e["base_state"].__setitem__("threshold", "0.5"), "threshold must be a finite number"),
    (lambda e: e["base_state"].__setitem__("score_mode", "telepathy"), "score mode 'telepathy' is not one of"),
    (lambda e: e["base_state"].__setitem__("kind", "video"), "kind 'video' is not one of"),
    (lambda e: e["params"].__setitem__("kind", "image"), "differs from the hyperparameter kind='image'"),
    (lambda e: e["base_state"].__setitem__("n_train", -5), "n_train must be a positive integer"),
    (lambda e: e["params"].__setitem__("n_trees_please", 3), "'n_trees_please' is unknown to iforest"),
    (lambda e: e["params"].__setitem__("n_estimators", "many"), "'n_estimators' = many is not int"),
    (lambda e: e["params"].__setitem__("window_length", 0), "window_length must be a positive integer"),
    (lambda e: e["params"].__setitem__("kind", "video"), "kind must be one of"),
    (lambda e: e["state"].__setitem__("max_samples", 0), "max_samples must be a positive integer"),
    (lambda e: e["state"].__setitem__("n_trees", 10**12), "30 tree tensors, but 1000000000000 trees need"),
    (lambda e: e["state"].__setitem__("n_features_in", 7), "n_features_in 7 differs"),
    (lambda e: e["base_state"]["encoder"]["numeric"]["a"].__setitem__(1, 0.0), "standard deviation 0.0"),
    (lambda e: e["base_state"]["encoder"]["numeric"].pop("a"), "do not split its columns"),
    (lambda e: e.__setitem__("detector", "nope"), "detector 'nope' is not one of"),
])
def test_tampered_metadata_is_refused(edit, match, make_data, tmp_path):
    path = _save("iforest", make_data, tmp_path / "m")
    _edit_json(path, edit)
    # A count that disagrees with the weights is reported against the weights file.
    _refused(path, "weights.safetensors" if "tree tensors" in match else "model.json", match)


def test_series_and_image_statistics_are_checked(make_data, tmp_path):
    series = _save("iforest", make_data, tmp_path / "s", kind="timeseries")
    _edit_json(series, lambda e: e["base_state"]["series_stats"]["std"].__setitem__(0, -1.0))
    _refused(series, "model.json", "series_stats std must be positive")
    images = _save("iforest", make_data, tmp_path / "i", kind="image")
    _edit_json(images, lambda e: e["base_state"].__setitem__("image_shape", [1, -16, 16]))
    _refused(images, "model.json", "image_shape must be a list of 3 positive integers")


def test_malformed_json_is_refused(make_data, tmp_path, monkeypatch):
    path = _save("iforest", make_data, tmp_path / "m")
    text = (path / "model.json").read_text()
    (path / "model.json").write_text(text.replace('"threshold": ', '"threshold": 1e999, "x": ', 1))
    _refused(path, "model.json", "non-finite number 1e999")
    (path / "model.json").write_text(text[: len(text) // 2])
    _refused(path, "model.json", "not valid JSON")
    (path / "model.json").write_text("[1, 2]")
    _refused(path, "model.json", "envelope is not a JSON object")
    (path / "model.json").write_text(text)
    monkeypatch.setattr(files, "MAX_MODEL_JSON_BYTES", 100)
    _refused(path, "model.json", "exceed the 100-byte limit")


def test_damaged_safetensors_are_refused(make_data, tmp_path):
    path = _save("iforest", make_data, tmp_path / "m")
    weights = path / "weights.safetensors"
    raw = weights.read_bytes()
    weights.write_bytes(raw[:-10])
    _refused(path, "weights.safetensors", "truncated")
    weights.write_bytes(raw[:5])
    _refused(path, "weights.safetensors", "truncated")
    weights.write_bytes((2**62).to_bytes(8, "little") + raw[8:])
    _refused(path, "weights.safetensors", "header length 4611686018427387904 bytes exceeds")
    header_length = int.from_bytes(raw[:8], "little")
    weights.write_bytes(raw[:8] + b"{" * header_length + raw[8 + header_length:])
    _refused(path, "weights.safetensors", "header is not valid JSON")
    weights.write_bytes(raw + b"\0" * 16)
    _refused(path, "weights.safetensors", "truncated or padded")


@pytest.mark.parametrize("edit,match", [
    (lambda t: t["generator.encoder1.net.0.weight"].__setitem__((0, 0), math.nan), "NaN or infinite values"),
    (lambda t: t.__setitem__("code_precision", t["code_precision"][:3, :3].clone()), r"needs \(4, 4\)"),
    (lambda t: t.__setitem__("generator.decoder.net.4.bias", t["generator.decoder.net.4.bias"][:-1].clone()),
     "generator.decoder.net.4.bias"),
    (lambda t: t.pop("discriminator.classifier.1.weight"), "missing tensor"),
    (lambda t: t.__setitem__("extra", t["code_mean"].clone()), r"unexpected tensor\(s\) \['extra'\]"),
    (lambda t: t["error_scale"].__setitem__(0, -1.0), "error_scale' must be positive"),
])
def test_tampered_deep_weights_are_refused(edit, match, make_data, tmp_path):
    path = _save("ganomaly", make_data, tmp_path / "m")
    _edit_weights(path, edit)
    _refused(path, "weights.safetensors", match)


@pytest.mark.parametrize("edit,match", [
    (lambda e: e["state"]["part_stats"]["density"].__setitem__(1, -1.0), "standard deviation -1.0"),
    (lambda e: e["state"].__setitem__("input_shape", [7]), r"input_shape \[7\] differs"),
    (lambda e: e["state"].__setitem__("input_shape", [10**9]), "differs"),
    (lambda e: e["params"].__setitem__("score_mode", "telepathy"), "score_mode must be 'auto' or one of"),
    (lambda e: e["params"].__setitem__("latent_dim", 5), r"needs \(5, 5\)|needs \(5,"),
    (lambda e: e["params"].__setitem__("blend_weight", 2.0), "blend_weight must be in"),
])
def test_tampered_deep_metadata_is_refused(edit, match, make_data, tmp_path):
    path = _save("ganomaly", make_data, tmp_path / "m")
    _edit_json(path, edit)
    _refused(path, "model.json" if "needs" not in match else "weights.safetensors", match)


@pytest.mark.parametrize("name", ["anogan", "autoencoder"])
def test_other_deep_models_check_their_weights(name, make_data, tmp_path):
    path = _save(name, make_data, tmp_path / "m", kind="image")
    first = sorted(json.loads((path / "model.json").read_text())["state"])  # input_shape only
    assert first == ["input_shape"]
    _edit_weights(path, lambda t: t[sorted(k for k in t if k.endswith("weight"))[0]].fill_(math.inf))
    _refused(path, "weights.safetensors", "NaN or infinite values")
    _edit_json(path, lambda e: e["state"].__setitem__("input_shape", [1, 16, 17]))
    _refused(path, "model.json", r"input_shape \[1, 16, 17\] differs")


def test_an_unexpected_failure_inside_load_is_a_format_error(make_data, tmp_path, monkeypatch):
    path = _save("iforest", make_data, tmp_path / "m")

    def broken(self, state, tensors):
        raise ZeroDivisionError("a\nb")
    monkeypatch.setattr(IsolationForest, "_set_state", broken)
    error = _refused(path, "model.json", "ZeroDivisionError: a b")
    assert isinstance(error.__cause__, ZeroDivisionError)


def test_a_loaded_model_still_scores_like_the_saved_one(make_data, tmp_path):
    train, test, _ = make_data("tabular")
    model = IsolationForest(n_estimators=5).fit(train)
    model.save(tmp_path / "m")
    np.testing.assert_array_equal(Detector.load(tmp_path / "m").score(test), model.score(test))

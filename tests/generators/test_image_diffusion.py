"""image_diffusion's own promises: deterministic training and DDIM sampling, images independent of their batch,
guidance and both predictions, unlabelled images, and hostile params or weights refused in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from generators.base import MODEL_FILE, WEIGHTS_FILE, Generator
from generators.data import ImageData
from generators.errors import ModelFormatError
from generators.registry import REGISTRY, make_generator
from tests.generators.conftest import make_images
from tests.generators.test_image import _nearest_class_mean


def _diffusion(data: ImageData, **params):
    return make_generator("image_diffusion", **{**REGISTRY["image_diffusion"].test_params, **params}).fit(data)


@pytest.fixture(scope="module")
def fitted():
    data = make_images(90, seed=11)
    return _diffusion(data), data


def test_training_is_deterministic_and_learns(fitted):
    gen, data = fitted
    again = _diffusion(data)
    assert np.array_equal(gen.sample(20, seed=3).pixels, again.sample(20, seed=3).pixels)
    losses = [h["loss"] for h in gen.history_]
    assert len(losses) == gen.epochs and np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses
    # another training seed is another model
    assert not np.array_equal(_diffusion(data, seed=1).sample(20, seed=3).pixels, gen.sample(20, seed=3).pixels)


def test_an_image_does_not_depend_on_the_others_drawn_with_it(fitted):
    import torch

    gen, _ = fitted
    # conditioned draws take no labels from the rng, so image i of 5 and of 45 starts from the same noise; 45
    # images run in two chunks of sample_batch (32), 5 in one padded chunk
    try:
        for label, eta in (("bar", 0.0), ("cross", 1.0)):  # eta 1: fresh noise at every step, each image its own
            gen.eta = eta
            few = gen.sample(5, seed=7, conditions={"label": label}).pixels
            many = gen.sample(45, seed=7, conditions={"label": label}).pixels
            assert np.array_equal(few, many[:5])
            assert len({p.tobytes() for p in many}) == 45  # per-index noise: no two images alike
    finally:
        gen.eta = 0.0
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in gen.net_.modules())
    x, t, y = torch.randn(6, 1, 8, 8), torch.rand(6), torch.tensor([0, 1, 2, 3, 1, 0])
    with torch.no_grad():
        together = gen.net_(x, t, y).numpy()
        alone = np.concatenate([gen.net_(x[i:i + 1], t[i:i + 1], y[i:i + 1]).numpy() for i in range(6)])
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-5)


def test_guidance_and_steps_change_the_sample_and_reload_bit_identically(fitted, tmp_path):
    gen, data = fitted
    base = gen.sample(30, seed=5).pixels
    gen.save(tmp_path / "m")
    loaded = Generator.load(tmp_path / "m")
    assert np.array_equal(loaded.sample(30, seed=5).pixels, base)
    for key, value in (("guidance", 0.0), ("guidance", 3.0), ("sample_steps", 4), ("eta", 1.0)):
        loaded = Generator.load(tmp_path / "m")
        setattr(loaded, key, value)
        other = loaded.sample(30, seed=5)
        assert not np.array_equal(other.pixels, base), (key, value)
        # still recognisably each image's label
        agree = float(np.mean(_nearest_class_mean(data, other.pixels) == other.labels))
        assert agree >= 0.8, (key, value, agree)


def test_epsilon_prediction_learns_the_classes_too():
    data = make_images(90, seed=11)
    gen = _diffusion(data, prediction="epsilon")
    s = gen.sample(60, seed=2)
    assert float(np.mean(_nearest_class_mean(data, s.pixels) == s.labels)) >= 0.8
    assert not np.array_equal(s.pixels, _diffusion(data).sample(60, seed=2).pixels)


def test_unlabelled_images_are_learnt_and_sampled_without_labels():
    data = make_images(60, seed=4)
    bars = ImageData(data.pixels[data.labels == "bar"], None)
    gen = _diffusion(bars, epochs=30)
    s = gen.sample(12, seed=0)
    assert s.labels is None and s.pixels.shape == (12, 8, 8, 1)
    # the bar (columns 3-4) is bright, the rest dark
    assert s.pixels[:, :, 3:5].mean() > s.pixels[:, :, :2].mean() + 80


@pytest.mark.parametrize("params, message", [
    ({"guidance": -1.0}, "guidance"), ({"guidance": float("nan")}, "guidance"), ({"prediction": "x0"}, "prediction"),
    ({"sample_steps": 0}, "sample_steps"), ({"sample_steps": 2.5}, "sample_steps"), ({"ema_decay": 1.0}, "ema_decay"),
    ({"uncond_prob": -0.1}, "uncond_prob"), ({"eta": 1.5}, "eta"), ({"base": 10**6}, "base"), ({"base": True}, "base"),
    ({"sample_batch": 0}, "sample_batch"), ({"num_threads": 10**6}, "num_threads"),
    ({"learning_rate": 0}, "learning_rate")])
def test_params_out_of_range_are_refused_when_given_and_when_loaded(fitted, tmp_path, params, message):
    with pytest.raises(ModelFormatError, match=message):
        make_generator("image_diffusion", **params)
    gen, _ = fitted
    gen.save(tmp_path / "m")
    model = tmp_path / "m" / MODEL_FILE
    doc = json.loads(model.read_text())
    model.write_text(json.dumps({**doc, "params": {**doc["params"], **params}}))
    with pytest.raises(ModelFormatError, match=message) as info:
        Generator.load(tmp_path / "m")
    assert "\n" not in str(info.value) and str(tmp_path / "m") in str(info.value)


def test_tampered_weights_are_refused_in_one_line(fitted, tmp_path):
    from safetensors.numpy import load_file, save_file

    gen, _ = fitted
    gen.save(tmp_path / "m")
    weights = tmp_path / "m" / WEIGHTS_FILE
    arrays = load_file(str(weights))
    key = "net.class_embedding.weight"
    nan = arrays[key].copy()
    nan[1, 0] = np.nan
    for bad, message in [({**arrays, key: nan}, "NaN"),
                         ({**arrays, key: arrays[key][:-1].copy()}, "shape"),  # one class fewer
                         ({**arrays, key: arrays[key].astype(np.float64)}, "float64|float32"),
                         ({k: v for k, v in arrays.items() if k != key}, "missing"),
                         ({**arrays, "net.extra": arrays[key].copy()}, "unexpected")]:
        save_file(bad, str(weights))
        with pytest.raises(ModelFormatError, match=message) as info:
            Generator.load(tmp_path / "m")
        assert "\n" not in str(info.value) and str(tmp_path / "m") in str(info.value)
    save_file(arrays, str(weights))
    assert np.array_equal(Generator.load(tmp_path / "m").sample(6, seed=1).pixels, gen.sample(6, seed=1).pixels)

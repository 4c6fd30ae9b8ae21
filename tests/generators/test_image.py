"""The image kind's own promises, for every registered image generator: shapes, labels, conditioning, class fidelity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from generators.base import MODEL_FILE, WEIGHTS_FILE, Generator
from generators.data import ImageData
from generators.errors import ConditionError, InvalidDataError, ModelFormatError
from generators.image.base import ImageCodec
from generators.registry import REGISTRY, list_generators, make_generator
from tests.generators.conftest import make_images

IMAGE_GENERATORS = list_generators("image")


def _fit(name: str, data: ImageData):
    return make_generator(name, **REGISTRY[name].test_params).fit(data)


@pytest.fixture(scope="module", params=IMAGE_GENERATORS)
def grey(request):
    """(generator name, fitted model, training images): 90 grey 8x8 images of three shapes."""
    data = make_images(90, seed=11)
    return request.param, _fit(request.param, data), data


def _nearest_class_mean(train: ImageData, images: np.ndarray) -> np.ndarray:
    labels = sorted(set(train.labels))
    x = train.pixels.reshape(len(train), -1).astype(float)
    means = np.stack([x[train.labels == lab].mean(0) for lab in labels])
    q = images.reshape(len(images), -1).astype(float)
    d = ((q[:, None, :] - means[None]) ** 2).sum(-1)
    return np.array(labels, dtype=object)[d.argmin(1)]


def test_every_image_generator_is_registered_with_the_image_kind():
    assert {"image_gmm"} <= set(IMAGE_GENERATORS)


def test_samples_keep_shape_dtype_and_known_labels(grey):
    _, gen, data = grey
    s = gen.sample(40, seed=0)
    assert s.pixels.shape == (40, 8, 8, 1) and s.pixels.dtype == np.uint8
    assert set(s.labels) <= {"bar", "square", "cross"}
    assert s.labels.dtype == object


def test_label_proportions_follow_training(grey):
    _, gen, _ = grey
    # training: a third each; unbalanced training is checked below with the GMM
    s = gen.sample(600, seed=1)
    shares = {lab: float(np.mean(s.labels == lab)) for lab in ("bar", "square", "cross")}
    assert all(0.25 < v < 0.42 for v in shares.values()), shares


def test_conditioning_returns_only_that_label_and_is_recognisably_that_class(grey):
    name, gen, data = grey
    for label in ("bar", "square", "cross"):
        s = gen.sample(30, seed=2, conditions={"label": label})
        assert set(s.labels) == {label}
        agree = float(np.mean(_nearest_class_mean(data, s.pixels) == label))
        assert agree >= 0.8, (name, label, agree)  # chance is 1/3


def test_unseen_or_malformed_conditions_are_refused(grey):
    _, gen, _ = grey
    with pytest.raises(ConditionError, match="known labels: 'bar', 'cross', 'square'"):
        gen.sample(3, conditions={"label": "circle"})
    with pytest.raises(ConditionError, match="only be conditioned on 'label'"):
        gen.sample(3, conditions={"colour": "red"})


def test_unbalanced_labels_and_unlabelled_images():
    data = make_images(90, seed=3)
    keep = np.r_[np.flatnonzero(data.labels == "bar"), np.flatnonzero(data.labels == "square")[:6]]
    unbalanced = ImageData(data.pixels[keep], data.labels[keep])
    gen = _fit("image_gmm", unbalanced)
    share = float(np.mean(gen.sample(1000, seed=0).labels == "square"))
    assert abs(share - 6 / 36) < 0.05
    plain = _fit("image_gmm", ImageData(data.pixels, None))
    s = plain.sample(5, seed=0)
    assert s.labels is None and s.pixels.shape == (5, 8, 8, 1)
    with pytest.raises(ConditionError, match="unlabelled"):
        plain.sample(2, conditions={"label": "bar"})


def test_missing_labels_are_a_class_of_their_own():
    data = make_images(60, seed=4)
    labels = data.labels.copy()
    labels[labels == "cross"] = None
    gen = _fit("image_gmm", ImageData(data.pixels, labels))
    assert gen.codec_.labels == ("bar", "square", None)
    s = gen.sample(20, seed=0, conditions={"label": None})
    assert all(v is None for v in s.labels)


@pytest.mark.parametrize("name", IMAGE_GENERATORS)
def test_colour_images_of_odd_size_keep_their_shape(name):
    rng = np.random.default_rng(0)
    px = rng.integers(0, 255, (24, 7, 10, 3)).astype(np.uint8)
    px[12:, :, :, 0] = 250  # the second class is red
    labels = np.array(["a"] * 12 + ["b"] * 12, dtype=object)
    gen = _fit(name, ImageData(px, labels))
    s = gen.sample(6, seed=1, conditions={"label": "b"})
    assert s.pixels.shape == (6, 7, 10, 3) and s.pixels.dtype == np.uint8
    assert s.pixels[..., 0].mean() > s.pixels[..., 1].mean() + 40


def test_bad_training_data_is_refused():
    with pytest.raises(InvalidDataError, match="uint8"):
        _fit("image_gmm", ImageData(np.zeros((4, 8, 8, 1), dtype=np.float32), None))
    with pytest.raises(InvalidDataError, match="one label per image"):
        _fit("image_gmm", ImageData(np.zeros((4, 8, 8, 1), dtype=np.uint8), np.array(["a"], dtype=object)))
    with pytest.raises(InvalidDataError, match="too few"):
        _fit("image_gmm", ImageData(np.zeros((1, 8, 8, 1), dtype=np.uint8), None))


def test_tampered_codec_and_weights_are_refused(grey, tmp_path):
    name, gen, _ = grey
    gen.save(tmp_path / "m")
    doc = json.loads((tmp_path / "m" / MODEL_FILE).read_text())
    for field, value, message in (("labels", ["bar", "bar", "cross"], "repeat"),
                                  ("height", 10**9, "height"), ("counts", [1, 2], "counts"),
                                  ("channels", 2, "channels")):
        bad = json.loads(json.dumps(doc))
        bad["codec"][field] = value
        (tmp_path / "m" / MODEL_FILE).write_text(json.dumps(bad))
        with pytest.raises(ModelFormatError, match=message):
            Generator.load(tmp_path / "m")
    # weights written for 3 classes, codec claiming 4: every array shape is checked against the codec
    bad = json.loads(json.dumps(doc))
    bad["codec"]["labels"] = ["a", "bar", "cross", "square"]
    bad["codec"]["counts"] = [1, 30, 30, 30]
    (tmp_path / "m" / MODEL_FILE).write_text(json.dumps(bad))
    with pytest.raises(ModelFormatError):
        Generator.load(tmp_path / "m")
    (tmp_path / "m" / MODEL_FILE).write_text(json.dumps(doc))
    assert np.array_equal(Generator.load(tmp_path / "m").sample(4, seed=0).pixels, gen.sample(4, seed=0).pixels)
    from safetensors.numpy import load_file, save_file

    arrays = load_file(str(tmp_path / "m" / WEIGHTS_FILE))
    key = sorted(arrays)[0]
    arrays[key] = np.full_like(arrays[key], np.nan) if arrays[key].dtype.kind == "f" else arrays[key][:0]
    save_file(arrays, str(tmp_path / "m" / WEIGHTS_FILE))
    with pytest.raises(ModelFormatError):
        Generator.load(tmp_path / "m")


def test_codec_round_trip_and_hostile_input():
    codec, classes = ImageCodec.fit(make_images(12))
    assert ImageCodec.from_dict(json.loads(json.dumps(codec.to_dict()))) == codec
    assert classes.dtype == np.int64 and set(classes) == {0, 1, 2}
    for bad in (None, [], {**codec.to_dict(), "extra": 1}, {**codec.to_dict(), "labelled": "yes"},
                {**codec.to_dict(), "intensities": [3, 2]}, {**codec.to_dict(), "intensities": [256]},
                {**codec.to_dict(), "labels": ["z", "a", "b"]}, {**codec.to_dict(), "counts": [0, 1, 2]}):
        with pytest.raises(ModelFormatError):
            ImageCodec.from_dict(bad)


def test_pixel_ar_sampler_crops_match_the_full_forward_and_are_causal():
    import torch

    from generators.image.pixel_ar.torch_model import GatedPixelCNN

    torch.manual_seed(0)
    net = GatedPixelCNN(2, 3, 8, 16, 3, 16).eval()
    x, y = torch.rand(3, 2, 9, 7), torch.tensor([0, 1, 2])
    xc = GatedPixelCNN.with_coordinates(x)
    with torch.no_grad():
        full = net(x, y)
        for r in range(9):
            above = None if r == 0 else xc[:, :, max(0, r - 4):r]  # n_layers + 1 rows, as the sampler takes
            contributions = net.vertical_contributions(above, y, 7)
            for c in range(7):
                crop = net.horizontal_logits(xc[:, :, r:r + 1, :c + 1], contributions, y)[:, :, :, 0, c]
                assert torch.allclose(crop, full[:, :, :, r, c], atol=1e-5), (r, c)
        changed = x.clone()
        changed[:, :, 4, 3] = 0.5
        moved = (net(changed, y) - full).abs().amax(dim=(0, 1, 2)) > 1e-6
    before = torch.zeros(9, 7, dtype=torch.bool)
    before[:4] = True
    before[4, :4] = True  # every pixel up to and including (4, 3) must not see it
    assert not moved[before].any() and moved[5:].all()


def test_images_with_few_intensities_are_sampled_with_those_only():
    data = make_images(60, seed=6)
    binary = ImageData(np.where(data.pixels > 120, 255, 0).astype(np.uint8), data.labels)
    gen = _fit("image_gmm", binary)
    assert gen.codec_.intensities == (0, 255)
    assert set(np.unique(gen.sample(20, seed=0).pixels)) <= {0, 255}
    codec, _ = ImageCodec.fit(ImageData(np.arange(256, dtype=np.uint8).reshape(4, 8, 8, 1), None))
    assert codec.intensities is None  # 256 distinct values: nothing to snap to
    few, _ = ImageCodec.fit(ImageData(np.array([0, 10, 200], dtype=np.uint8).reshape(1, 1, 3, 1), None))
    assert few.snap(np.array([0, 4, 5, 6, 104, 106, 255], dtype=np.uint8)).tolist() == [0, 0, 0, 10, 10, 200, 200]


def _two_stage_vae(data: ImageData, **params):
    return make_generator("conv_vae", **{**REGISTRY["conv_vae"].test_params, "prior_components": 3,
                                         "codes_per_component": 5, **params}).fit(data)


def test_two_stage_vae_samples_from_its_latent_mixture_and_reloads_bit_identically(tmp_path):
    data = make_images(90, seed=11)
    gen = _two_stage_vae(data)
    plain = _two_stage_vae(data, prior_components=0)
    assert plain.mixtures_ is None and gen.mixtures_.weights.shape == (3, 3)
    # the network is the same (same seed, same training); only the codes drawn at sampling differ
    assert not np.array_equal(gen.sample(20, seed=0).pixels, plain.sample(20, seed=0).pixels)
    assert np.array_equal(gen.sample(20, seed=0).pixels, gen.sample(20, seed=0).pixels)
    for label in ("bar", "square", "cross"):
        s = gen.sample(30, seed=2, conditions={"label": label})
        assert float(np.mean(_nearest_class_mean(data, s.pixels) == label)) >= 0.8
    gen.save(tmp_path / "m")
    loaded = Generator.load(tmp_path / "m")
    assert np.array_equal(loaded.sample(50, seed=4).pixels, gen.sample(50, seed=4).pixels)


@pytest.mark.parametrize("release, params, written", [
    # what each earlier release fitted, and the params its model.json held
    ("one-stage", {"prior_components": 0, "adversarial_weight": 0.0, "match_intensities": False},
     ("epochs", "latent_dim", "base", "batch_size", "learning_rate", "beta", "max_train_images", "num_threads",
      "seed")),
    ("two-stage", {"adversarial_weight": 0.0, "match_intensities": False},
     ("epochs", "latent_dim", "base", "batch_size", "learning_rate", "beta", "max_train_images", "prior_components",
      "codes_per_component", "num_threads", "seed")),
])
def test_a_conv_vae_saved_by_an_earlier_release_still_loads_and_samples_the_same(tmp_path, release, params, written):
    data = make_images(90, seed=11)
    old = _two_stage_vae(data, **params)
    old.save(tmp_path / "m")
    doc = json.loads((tmp_path / "m" / MODEL_FILE).read_text())
    doc["params"] = {k: v for k, v in doc["params"].items() if k in written}
    (tmp_path / "m" / MODEL_FILE).write_text(json.dumps(doc))
    loaded = Generator.load(tmp_path / "m")
    assert (loaded.mixtures_ is None) == (release == "one-stage")
    assert loaded.adversarial_weight == 0.0 and loaded.match_intensities is False and loaded.intensity_map_ is None
    assert np.array_equal(loaded.sample(30, seed=5).pixels, old.sample(30, seed=5).pixels)
    # any other missing param is still refused
    del doc["params"]["beta"]
    (tmp_path / "m" / MODEL_FILE).write_text(json.dumps(doc))
    with pytest.raises(ModelFormatError, match="'beta' is missing"):
        Generator.load(tmp_path / "m")


def test_the_critic_trains_deterministically_and_changes_the_decoder():
    data = make_images(90, seed=11)
    a, b = _two_stage_vae(data, epochs=8), _two_stage_vae(data, epochs=8)
    plain = _two_stage_vae(data, epochs=8, adversarial_weight=0.0)
    assert a.adversarial_weight > 0 and {"adversarial", "critic"} <= set(a.history_[-1])
    assert "adversarial" not in a.history_[1]  # warm-up: the first quarter of the epochs trains without the critic
    assert "adversarial" not in plain.history_[-1]
    assert all(np.isfinite(h["critic"]) for h in a.history_ if "critic" in h)
    assert np.array_equal(a.sample(40, seed=3).pixels, b.sample(40, seed=3).pixels)
    wa, wp = a.net_.state_dict(), plain.net_.state_dict()
    assert not all(np.array_equal(wa[k].numpy(), wp[k].numpy()) for k in wa)


def test_matched_intensities_follow_the_training_images_and_a_tampered_map_is_refused(tmp_path):
    from safetensors.numpy import load_file, save_file

    data = make_images(90, seed=11)
    gen, raw = _two_stage_vae(data), _two_stage_vae(data, match_intensities=False)
    maps = gen.intensity_map_
    assert maps.shape == (3, 256) and maps.dtype == np.uint8 and (np.diff(maps.astype(int), axis=1) >= 0).all()
    black = float(np.mean(data.pixels == 0))
    # the same network and draws; only the map differs, and it brings the share of exact black near the data's
    assert abs(float(np.mean(gen.sample(300, seed=1).pixels == 0)) - black) < abs(
        float(np.mean(raw.sample(300, seed=1).pixels == 0)) - black)
    gen.save(tmp_path / "m")
    arrays = load_file(str(tmp_path / "m" / WEIGHTS_FILE))
    good = dict(arrays)
    for bad, message in [(maps[:, ::-1].copy(), "non-decreasing"), (maps.astype(np.float32), "float32"),
                         (maps[:2].copy(), "shape"), (None, "missing")]:
        arrays = dict(good)
        if bad is None:
            del arrays["intensity_map"]
        else:
            arrays["intensity_map"] = bad
        save_file(arrays, str(tmp_path / "m" / WEIGHTS_FILE))
        with pytest.raises(ModelFormatError, match=message):
            Generator.load(tmp_path / "m")


def test_two_stage_vae_refuses_a_tampered_or_missing_latent_mixture(tmp_path):
    from safetensors.numpy import load_file, save_file

    gen = _two_stage_vae(make_images(60, seed=3))
    gen.save(tmp_path / "m")
    weights, model = tmp_path / "m" / WEIGHTS_FILE, tmp_path / "m" / MODEL_FILE
    arrays, doc = load_file(str(weights)), json.loads(model.read_text())
    cov = arrays["prior.covariances"].copy()
    cov[0, 0] = -np.eye(cov.shape[-1])
    weights_sum = arrays["prior.weights"] * 2
    for key, value, message in (("prior.covariances", cov, "positive definite"),
                                ("prior.weights", weights_sum, "summing to 1"),
                                ("prior.means", arrays["prior.means"][:, :, :2], "prior.means")):
        save_file({**arrays, key: np.ascontiguousarray(value)}, str(weights))
        with pytest.raises(ModelFormatError, match=message):
            Generator.load(tmp_path / "m")
    save_file({k: v for k, v in arrays.items() if k != "prior.weights"}, str(weights))
    with pytest.raises(ModelFormatError, match="prior.weights"):
        Generator.load(tmp_path / "m")
    save_file(arrays, str(weights))
    model.write_text(json.dumps({**doc, "params": {**doc["params"], "prior_components": 0}}))
    with pytest.raises(ModelFormatError, match="no latent mixture"):
        Generator.load(tmp_path / "m")
    model.write_text(json.dumps({**doc, "params": {**doc["params"], "prior_components": -1}}))
    with pytest.raises(ModelFormatError, match="prior_components"):
        Generator.load(tmp_path / "m")
    model.write_text(json.dumps(doc))
    assert np.array_equal(Generator.load(tmp_path / "m").sample(8, seed=1).pixels, gen.sample(8, seed=1).pixels)


def test_pixel_ar_decodes_levels_with_exact_black_and_white():
    rng = np.random.default_rng(0)
    px = np.zeros((40, 6, 6, 1), dtype=np.uint8)
    px[:, 2:4] = rng.integers(1, 255, (40, 2, 6, 1))  # many intensities: samples are not snapped
    px[:, 5] = 255
    gen = make_generator("pixel_ar", **{**REGISTRY["pixel_ar"].test_params, "levels": 8}).fit(
        ImageData(px, np.array(["a", "b"] * 20, dtype=object)))
    s = gen.sample(30, seed=0).pixels
    assert set(np.unique(s)) <= {int(v) for v in np.rint(np.arange(8) * 255 / 7)}
    assert float(np.mean(s[:, :2] == 0)) > 0.8 and float(np.mean(s[:, 5] == 255)) > 0.8


def _gan(data: ImageData, **params):
    return make_generator("image_gan", **{**REGISTRY["image_gan"].test_params, **params}).fit(data)


def test_gan_trains_deterministically_samples_without_batch_statistics_and_reloads_bit_identically(tmp_path):
    import torch

    data = make_images(90, seed=11)
    a, b = _gan(data, epochs=10), _gan(data, epochs=10)
    assert np.array_equal(a.sample(40, seed=3).pixels, b.sample(40, seed=3).pixels)
    assert all(np.isfinite([h["generator"], h["critic"]]).all() for h in a.history_) and len(a.history_) == 10
    # no transposed convolutions (no checkerboard) and no batch statistics: one image alone or in a batch is the same
    assert not any(isinstance(m, (torch.nn.ConvTranspose2d, torch.nn.BatchNorm2d)) for m in a.net_.modules())
    z, y = torch.randn(6, a.latent_dim), torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        together = a.net_(z, y).numpy()
        alone = np.concatenate([a.net_(z[i:i + 1], y[i:i + 1]).numpy() for i in range(6)])
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-5)
    # the saved generator is a moving average of the weights (warmed up: at most (1 + step) / (10 + step)), so a
    # faster average saves a different generator
    fast = _gan(data, epochs=10, ema_decay=0.5)
    assert not np.array_equal(fast.sample(40, seed=3).pixels, a.sample(40, seed=3).pixels)
    a.save(tmp_path / "m")
    assert np.array_equal(Generator.load(tmp_path / "m").sample(50, seed=4).pixels, a.sample(50, seed=4).pixels)


def test_gan_matches_intensities_and_refuses_tampered_weights_and_params(tmp_path):
    from safetensors.numpy import load_file, save_file

    data = make_images(90, seed=11)
    gen, raw = _gan(data), _gan(data, match_intensities=False)
    black = float(np.mean(data.pixels == 0))
    assert abs(float(np.mean(gen.sample(300, seed=1).pixels == 0)) - black) < abs(
        float(np.mean(raw.sample(300, seed=1).pixels == 0)) - black)
    gen.save(tmp_path / "m")
    weights, model = tmp_path / "m" / WEIGHTS_FILE, tmp_path / "m" / MODEL_FILE
    arrays, doc = load_file(str(weights)), json.loads(model.read_text())
    key = next(k for k in arrays if k.startswith("net.") and k.endswith("weight"))
    for bad, message in [({**arrays, key: arrays[key][..., :1].copy()}, key),
                         ({**arrays, "intensity_map": arrays["intensity_map"][:, ::-1].copy()}, "non-decreasing"),
                         ({k: v for k, v in arrays.items() if k != "intensity_map"}, "missing")]:
        save_file(bad, str(weights))
        with pytest.raises(ModelFormatError, match=message):
            Generator.load(tmp_path / "m")
    save_file(arrays, str(weights))
    for params, message in [({"ema_decay": 1.0}, "ema_decay"), ({"base": 0}, "base"),
                            ({"match_intensities": False}, "unexpected array 'intensity_map'")]:
        model.write_text(json.dumps({**doc, "params": {**doc["params"], **params}}))
        with pytest.raises(ModelFormatError, match=message):
            Generator.load(tmp_path / "m")
    model.write_text(json.dumps(doc))
    assert np.array_equal(Generator.load(tmp_path / "m").sample(8, seed=1).pixels, gen.sample(8, seed=1).pixels)


def test_conv_vae_refuses_tampered_critic_and_prior_params(tmp_path):
    gen = _two_stage_vae(make_images(60, seed=5))
    gen.save(tmp_path / "m")
    model = tmp_path / "m" / MODEL_FILE
    doc = json.loads(model.read_text())
    for params, message in [({"prior_scale": -1.0}, "prior_scale"), ({"prior_scale": "inf"}, "prior_scale"),
                            ({"adversarial_weight": -0.5}, "adversarial_weight"),
                            ({"adversarial_warmup": 2.0}, "adversarial_warmup"),
                            ({"match_intensities": "yes"}, "match_intensities")]:
        model.write_text(json.dumps({**doc, "params": {**doc["params"], **params}}))
        with pytest.raises(ModelFormatError, match=message):
            Generator.load(tmp_path / "m")
    model.write_text(json.dumps(doc))
    assert np.array_equal(Generator.load(tmp_path / "m").sample(6, seed=4).pixels, gen.sample(6, seed=4).pixels)

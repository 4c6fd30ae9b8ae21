"""The image gate: real samples pass, copies and broken samples fail, thresholds and inputs are checked."""

from __future__ import annotations

import numpy as np
import pytest

import quality
from quality.errors import InvalidInputError, SchemaMismatchError, UnknownThresholdError
from quality.image import DEFAULT_IMAGE_THRESHOLDS, evaluate_images, frechet_distance, prdc
from quality.image_report import render_image_report

FAST = {"extractor_steps": 60}


def draw_images(n: int, seed: int, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """8x8 images of three shapes (bar, square, cross), shifted by up to one pixel, with varying contrast and noise."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(np.array(["bar", "square", "cross"], dtype=object), n)
    px = rng.normal(20, 12, (n, 10, 10, channels))
    for i, lab in enumerate(labels):
        level = rng.uniform(140, 230)
        if lab == "bar":
            px[i, :, 4:6] += level
        elif lab == "square":
            px[i, 3:7, 3:7] += level
        else:
            px[i, 4:6, :] += level * 0.8
            px[i, :, 4:6] += level * 0.8
    dy, dx = rng.integers(0, 3, n), rng.integers(0, 3, n)
    out = np.stack([px[i, dy[i]:dy[i] + 8, dx[i]:dx[i] + 8] for i in range(n)])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), labels


@pytest.fixture(scope="module")
def sets():
    """(train, holdout, independent real sample): 300, 150 and 150 images."""
    return draw_images(300, 1), draw_images(150, 2), draw_images(150, 3)


@pytest.fixture(scope="module")
def real_report(sets):
    (tx, ty), (hx, hy), (sx, sy) = sets
    return evaluate_images(tx, ty, sx, sy, hx, hy, **FAST)


def test_an_independent_real_sample_passes_every_check(real_report):
    assert real_report.passed, [(c.name, c.value, c.threshold) for c in real_report if not c.passed]
    names = {c.name for c in real_report}
    assert {"frechet_ratio", "coverage", "discriminator_auc", "label_fidelity", "memorisation_pixels",
            "memorisation_features", "exact_copy_rate"} <= names
    assert real_report["label_fidelity"].value > 0.9  # the toy shapes are easy to classify
    assert all(c.threshold is not None for c in real_report if c.name in
               ("frechet_ratio", "coverage", "discriminator_auc", "label_fidelity", "memorisation_pixels"))


def test_copies_and_noised_copies_of_training_images_fail(sets):
    (tx, ty), (hx, hy), _ = sets
    copies = evaluate_images(tx, ty, tx[:150], ty[:150], hx, hy, **FAST)
    assert not copies.passed
    assert {"memorisation_pixels", "memorisation_features", "exact_copy_rate"} <= set(copies.failing)
    assert copies["exact_copy_rate"].value == 1.0
    rng = np.random.default_rng(0)
    noised = np.clip(tx[:150].astype(int) + rng.integers(-3, 4, tx[:150].shape), 0, 255).astype(np.uint8)
    near = evaluate_images(tx, ty, noised, ty[:150], hx, hy, **FAST)
    assert near["exact_copy_rate"].passed  # not byte-identical ...
    assert "memorisation_pixels" in near.failing  # ... but far closer to training images than holdout images are


def test_wrong_labels_and_collapsed_samples_fail(sets):
    (tx, ty), (hx, hy), (sx, sy) = sets
    shuffled = evaluate_images(tx, ty, sx, np.roll(sy, 1), hx, hy, **FAST)
    assert "label_fidelity" in shuffled.failing
    collapsed = np.repeat(sx[:1], 150, axis=0)  # one image over and over: mode collapse
    report = evaluate_images(tx, ty, collapsed, np.repeat(sy[:1], 150), hx, hy, **FAST)
    assert {"coverage", "frechet_ratio", "discriminator_auc"} <= set(report.failing)
    blurred = ((sx.astype(float) + np.roll(sx, 1, 1) + np.roll(sx, 1, 2) + np.roll(sx, -1, 1)
                + np.roll(sx, -1, 2)) / 5).astype(np.uint8)
    assert "discriminator_auc" in evaluate_images(tx, ty, blurred, sy, hx, hy, **FAST).failing


def test_same_seed_same_report(sets, real_report):
    (tx, ty), (hx, hy), (sx, sy) = sets
    again = evaluate_images(tx, ty, sx, sy, hx, hy, **FAST)
    assert [c.value for c in again] == [c.value for c in real_report]


def test_unlabelled_colour_images_without_holdout():
    (tx, _), (sx, _) = draw_images(200, 4, channels=3), draw_images(100, 5, channels=3)
    report = evaluate_images(tx, None, sx, None, **FAST)
    assert report.passed, report.failing
    assert report["label_fidelity"].value is None and "frechet_distance" in report
    copies = evaluate_images(tx, None, tx[:100], None, **FAST)
    assert {"memorisation_pixels", "exact_copy_rate"} <= set(copies.failing)


def test_conditioned_sample_is_compared_with_its_label(sets):
    (tx, ty), (hx, hy), (sx, sy) = sets
    keep = sy == "bar"
    report = evaluate_images(tx, ty, sx[keep], sy[keep], hx, hy, label="bar", **FAST)
    assert report.passed, report.failing
    unconditioned = evaluate_images(tx, ty, sx[keep], sy[keep], hx, hy, **FAST)
    assert {"coverage", "frechet_ratio"} <= set(unconditioned.failing)
    with pytest.raises(InvalidInputError, match="circle"):
        evaluate_images(tx, ty, sx, sy, hx, hy, label="circle", **FAST)


def test_thresholds_and_inputs_are_checked(sets):
    (tx, ty), (hx, hy), (sx, sy) = sets
    with pytest.raises(UnknownThresholdError, match="frechet_ration"):
        evaluate_images(tx, ty, sx, sy, hx, hy, thresholds={"frechet_ration": 2.0})
    with pytest.raises(SchemaMismatchError, match="one shape"):
        evaluate_images(tx, ty, sx[:, :7], sy, hx, hy)
    with pytest.raises(InvalidInputError, match="uint8"):
        evaluate_images(tx.astype(np.float32), ty, sx, sy)
    with pytest.raises(InvalidInputError, match="labels"):
        evaluate_images(tx, ty[:5], sx, sy)
    one = evaluate_images(tx, ty, sx[:1], sy[:1], hx, hy, **FAST)  # a one-image sample is judged, not a crash
    # one image could be a copy and still pass the copy test's bound: inconclusive, so it fails
    assert one["exact_copy_rate"].details["inconclusive"] and not one["exact_copy_rate"].passed
    assert one["discriminator_auc"].value is None
    strict = evaluate_images(tx, ty, sx, sy, hx, hy, thresholds={"coverage": 1.0, "sampling_z": None}, **FAST)
    assert "coverage" in strict.failing and strict["coverage"].threshold == 1.0
    assert set(DEFAULT_IMAGE_THRESHOLDS) >= {"frechet_ratio", "coverage", "discriminator_auc", "label_fidelity",
                                             "memorisation_pixels", "memorisation_features", "exact_copy_rate"}
    assert quality.evaluate_images is evaluate_images and quality.DEFAULT_IMAGE_THRESHOLDS is DEFAULT_IMAGE_THRESHOLDS


def test_measures_on_known_answers():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4000, 3)), rng.normal(size=(4000, 3))
    assert frechet_distance(a, b) < 0.02
    assert abs(frechet_distance(a, b + 2.0) - 12.0) < 0.2  # |mean shift|^2 = 3 * 4
    same = prdc(a[:500], b[:500])
    assert same["precision"] > 0.9 and same["coverage"] > 0.9 and 0.8 < same["density"] < 1.2
    apart = prdc(a[:500], b[:500] + 10.0)
    assert apart["precision"] == 0.0 and apart["coverage"] == 0.0


def test_report_shows_checks_grids_and_nearest_neighbours(sets, real_report, tmp_path):
    (tx, ty), _, (sx, sy) = sets
    page = render_image_report(real_report, tx, ty, sx, sy, title="toy <shapes>", path=tmp_path / "r.html")
    assert (tmp_path / "r.html").read_text(encoding="utf-8") == page
    assert "toy &lt;shapes&gt;" in page and 'id="checks"' in page
    assert "memorisation_pixels" in page and "nearest training" in page.lower()
    assert page.count("data:image/png;base64,") == 2  # the grid per label and the neighbour pairs
    assert quality.render_image_report is render_image_report

"""Bad input and bad use raise typed errors that name the problem and the way out."""

import json

import numpy as np
import pytest

from detectors.autoencoder import Autoencoder
from detectors.base import Detector, DetectorVersionWarning
from detectors.errors import (
    ColumnMismatchError,
    ImageSizeError,
    InvalidDataError,
    MissingValuesError,
    ModelFormatError,
    NotFittedError,
    UnknownDetectorError,
    WindowError,
)
from detectors.iforest import IsolationForest
from detectors.registry import create_detector


def test_not_fitted():
    with pytest.raises(NotFittedError, match="call fit"):
        IsolationForest().score(np.zeros((3, 2)))


def test_unknown_detector_lists_choices():
    with pytest.raises(UnknownDetectorError, match="ganomaly"):
        create_detector("nope")


def test_wrong_columns(make_data):
    train, test, _ = make_data("tabular")
    detector = IsolationForest(n_estimators=10).fit(train)
    with pytest.raises(ColumnMismatchError, match=r"missing \['c'\]"):
        detector.score(test.drop(columns=["c"]))


def test_wrong_shape_array():
    detector = IsolationForest(n_estimators=10).fit(np.random.default_rng(0).normal(size=(50, 3)))
    with pytest.raises(ColumnMismatchError, match="x2"):
        detector.score(np.zeros((4, 2)))
    with pytest.raises(InvalidDataError, match="2-D"):
        detector.score(np.zeros(4))


def test_nans_in_table_and_series(make_data):
    train, test, _ = make_data("tabular")
    with pytest.raises(MissingValuesError, match=r"\['a'\]"):
        IsolationForest(n_estimators=10).fit(train.assign(a=np.where(train.index == 3, np.nan, train["a"])))
    series, _, _ = make_data("timeseries")
    detector = IsolationForest(n_estimators=10, window_length=16).fit(series)
    bad = series.copy()
    bad[5] = np.nan
    with pytest.raises(MissingValuesError, match="NaN"):
        detector.score(bad)


def test_too_few_points_for_window(make_data):
    series, _, _ = make_data("timeseries")
    detector = IsolationForest(n_estimators=10, window_length=16).fit(series)
    with pytest.raises(WindowError, match="fewer than the window length 16"):
        detector.score(series[:10])


def test_wrong_image_size(make_data):
    images, _, _ = make_data("image")
    detector = IsolationForest(n_estimators=10).fit(images)
    with pytest.raises(ImageSizeError, match="resize the images to 16x16"):
        detector.score(np.zeros((2, 20, 20), dtype=np.uint8))


def test_load_refuses_other_format_and_warns_on_other_versions(make_data, tmp_path):
    train, test, _ = make_data("tabular")
    IsolationForest(n_estimators=5).fit(train).save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    meta["versions"]["scikit-learn"] = "0.0.1"
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.warns(DetectorVersionWarning, match="scikit-learn"):
        Detector.load(tmp_path / "m")
    meta["format_version"] = 99
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="retrain"):
        Detector.load(tmp_path / "m")
    with pytest.raises(ModelFormatError, match="not a saved detector"):
        Detector.load(tmp_path / "empty")


def test_load_with_the_wrong_class(make_data, tmp_path):
    train, _, _ = make_data("tabular")
    IsolationForest(n_estimators=5).fit(train).save(tmp_path / "m")
    with pytest.raises(ModelFormatError, match="'iforest' detector"):
        Autoencoder.load(tmp_path / "m")


def test_bad_contamination(make_data):
    train, _, _ = make_data("tabular")
    with pytest.raises(InvalidDataError, match="contamination"):
        IsolationForest(contamination=0.7).fit(train)


def test_library_is_pure_no_flows_duckdb_or_prefect():
    import subprocess
    import sys

    code = ("import sys, detectors.registry as r\n"
            "[r.get_detector_class(n) for n in r.names()]\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('flows', 'duckdb', 'prefect')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name,params,message", [
    ("ganomaly", {"epochs": 0}, "epochs must be a positive integer"),
    ("autoencoder", {"latent_dim": -1}, "latent_dim must be a positive integer"),
    ("anogan", {"batch_size": 2.5}, "batch_size must be a positive integer"),
    ("iforest", {"n_estimators": True}, "n_estimators must be a positive integer"),
    ("ganomaly", {"learning_rate": 0}, "learning_rate must be a positive number"),
    ("ganomaly", {"contextual_loss": "l3"}, "contextual_loss must be 'l1' or 'l2'"),
    ("ganomaly", {"blend_weight": 1.5}, "blend_weight must be in"),
    ("iforest", {"threshold": "high"}, "threshold must be a number"),
])
def test_bad_hyperparameters_are_refused_before_training(name, params, message, make_data):
    train, _, _ = make_data("tabular")
    with pytest.raises(InvalidDataError, match=message):
        create_detector(name, **params).fit(train)

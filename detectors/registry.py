"""Detector registry: short name -> lazily imported class, supported data kinds, test parameters, AUROC floor."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from detectors.errors import UnknownDetectorError

_TINY_DEEP = {"epochs": 3, "batch_size": 32, "width": 8, "latent_dim": 4}


@dataclass(frozen=True)
class DetectorSpec:
    """One registry line: where the class lives and what the shared contract test may expect of it."""

    name: str
    import_path: str
    kinds: tuple[str, ...]
    test_params: dict[str, Any] = field(default_factory=dict)
    # Minimum AUROC of planted outliers vs inliers on the contract test's tiny data, per kind.
    auroc_floor: dict[str, float] = field(default_factory=dict)


REGISTRY: dict[str, DetectorSpec] = {
    spec.name: spec
    for spec in [
        DetectorSpec("ganomaly", "detectors.ganomaly.model:Ganomaly", ("tabular", "timeseries", "image"),
                     dict(_TINY_DEEP, epochs=12, learning_rate=2e-3, window_length=16, window_stride=4),
                     {"tabular": 0.9, "timeseries": 0.9, "image": 0.8}),
        DetectorSpec("anogan", "detectors.anogan.model:AnoGAN", ("tabular", "timeseries", "image"),
                     dict(_TINY_DEEP, epochs=8, encoder_epochs=8, learning_rate=2e-3, window_length=16,
                          window_stride=4),
                     {"tabular": 0.9, "timeseries": 0.9, "image": 0.6}),
        DetectorSpec("autoencoder", "detectors.autoencoder.model:Autoencoder", ("tabular", "timeseries", "image"),
                     dict(_TINY_DEEP, epochs=6, learning_rate=3e-3, window_length=16, window_stride=4),
                     {"tabular": 0.9, "timeseries": 0.9, "image": 0.9}),
        DetectorSpec("iforest", "detectors.iforest:IsolationForest", ("tabular", "timeseries", "image"),
                     {"n_estimators": 50, "window_length": 16, "window_stride": 4},
                     {"tabular": 0.9, "timeseries": 0.9, "image": 0.75}),
    ]
}


def names() -> list[str]:
    return list(REGISTRY)


def get_spec(name: str) -> DetectorSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownDetectorError(f"unknown detector {name!r}; choose one of {names()}") from None


def get_detector_class(name: str) -> type:
    """Import and return the detector class registered under `name`."""
    module_name, class_name = get_spec(name).import_path.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def create_detector(name: str, **params: Any):
    """Instantiate the detector `name` with hyperparameters `params`."""
    return get_detector_class(name)(**params)

"""The Detector protocol: learn normal data, score what is not (higher = more anomalous)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors.errors import (
    DetectorVersionWarning,
    ImageSizeError,
    InvalidDataError,
    LabelError,
    MissingValuesError,
    ModelFormatError,
    NotFittedError,
)
from detectors.features import TabularEncoder
from detectors.persistence import BadState, finite_number, mean_std, number_list, positive_int, require, shape_list
from detectors.windows import point_scores, sliding_windows, window_starts
import modelkit.params as hyperparameters
from modelkit import errors as shared
from modelkit.errors import one_line
from modelkit.files import (MODEL_FILE, WEIGHTS_FILE, canonical, library_versions, read_envelope,
                            read_safetensors_checked, warn_if_versions_differ, write_envelope)

FORMAT_VERSION = 2  # 2: GANomaly stores its score normalisers (error scale, code Gaussian)
KINDS = ("tabular", "timeseries", "image")
VERSIONED_LIBRARIES = ("numpy", "scikit-learn", "safetensors", "synthwatch", "torch")
_ENVELOPE_KEYS = ("detector", "params", "base_state", "state", "versions")


def _recorded_versions() -> dict[str, str]:
    """Versions recorded next to every saved detector (installed libraries only: the file holds strings)."""
    return {k: v for k, v in library_versions(VERSIONED_LIBRARIES).items() if v is not None}


def infer_kind(data: Any) -> str:
    """Guess the data kind: DataFrames and 2-D arrays are tables, 1-D series, 3-D/4-D images."""
    if isinstance(data, pd.DataFrame):
        return "tabular"
    ndim = np.ndim(data)
    if ndim == 1:
        return "timeseries"
    if ndim == 2:
        return "tabular"
    if ndim in (3, 4):
        return "image"
    raise InvalidDataError(f"cannot tell the data kind of an array with {ndim} dimensions; pass kind=...")


def check_labels(labels: Any, n_items: int, what: str = "validation labels", *,
                 both_classes: bool = True) -> np.ndarray:
    """Return labels as a 0/1 int array, or raise LabelError naming the problem."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n_items:
        raise LabelError(f"{what} must be one 0/1 value per item ({n_items}), got shape {labels.shape}")
    if pd.isna(labels).any():
        raise LabelError(f"{what} hold missing values; drop those items or fill their labels")
    values = set(np.unique(labels).tolist())
    if not values <= {0, 1, True, False}:
        raise LabelError(f"{what} must be 0 (normal) or 1 (anomaly), got values {sorted(values)[:5]}")
    if both_classes and len(values) < 2:
        raise LabelError(
            f"{what} hold one class only ({values.pop()}); a threshold or metric needs both normal and "
            "anomalous items — use a contamination rate or a fixed threshold instead"
        )
    return labels.astype(np.int64)


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Threshold t maximising F1 of `scores > t` on labelled data; returns (t, f1)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(labels, scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)[:-1]
    best = int(np.argmax(f1))
    # precision_recall_curve counts score >= t as positive; predict uses score > threshold_.
    return float(np.nextafter(thresholds[best], -np.inf)), float(f1[best])


class Detector(ABC):
    """Base of every detector: validates input, prepares it by kind, thresholds, saves and loads.

    Subclasses implement `_fit(x)` and `_score_prepared(x, mode)` on prepared float32 arrays of shape
    (n, features) for tables, (n_windows, channels, window_length) for series and (n, c, h, w) for images,
    plus `_get_state`/`_set_state` for persistence.
    """

    name: ClassVar[str] = ""
    score_modes: ClassVar[tuple[str, ...]] = ("default",)
    default_score_mode: ClassVar[str] = "default"

    def __init__(self, *, kind: str = "auto", contamination: float = 0.01, threshold: float | None = None,
                 window_length: int = 32, window_stride: int = 1, seed: int = 0):
        self.kind = kind
        self.contamination = contamination
        self.threshold = threshold
        self.window_length = window_length
        self.window_stride = window_stride
        self.seed = seed

    # ------------------------------------------------------------------ parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        return hyperparameters.param_names(cls)

    @classmethod
    def param_types(cls, name: str) -> tuple[type, ...]:
        """The types hyperparameter `name`'s annotation allows (``float | None`` -> (float, NoneType))."""
        return hyperparameters.param_types(cls, name)

    @classmethod
    def accepts(cls, name: str, value: Any) -> bool:
        """Whether `value` has a type hyperparameter `name` takes (an int passes for a float; a bool only for bool)."""
        return hyperparameters.accepts(cls, name, value)

    def get_params(self) -> dict[str, Any]:
        return hyperparameters.get_params(self)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # ------------------------------------------------------------------ public API
    def fit(self, data: Any, *, labels: Any = None, validation_data: Any = None,
            validation_labels: Any = None) -> "Detector":
        """Learn normal behaviour from `data`; set `train_scores_` and `threshold_`.

        `labels` (optional, one 0/1 per item of `data`, 1 = known anomaly) keeps known anomalies out of
        training: anomalous rows and images are dropped, and for a series every window that covers an
        anomalous point. With labelled validation data the score mode (for detectors that offer several) and
        the threshold are chosen on it (best average precision, then best F1); without, the declared default
        mode and the contamination rate (or the fixed `threshold`) are used.
        """
        self._check_hyperparameters()
        kind = infer_kind(data) if self.kind == "auto" else self.kind
        self.kind_ = kind
        normal_items = normal_windows = None
        if labels is not None:
            n_given = len(data) if isinstance(data, pd.DataFrame) else len(np.asarray(data))
            train_labels = check_labels(labels, n_given, "training labels", both_classes=False)
            normal_items = train_labels == 0
            if kind != "timeseries":
                # Rows and images: drop the anomalies before anything (feature scaling included) sees them.
                if not normal_items.any():
                    raise LabelError("every training item is labelled anomalous; pass normal data to fit")
                data = data[normal_items].reset_index(drop=True) if isinstance(data, pd.DataFrame) \
                    else np.asarray(data)[normal_items]
                normal_items = None
        prepared = self._prepare(data, fitting=True, normal_points=normal_items)
        n_items = self._n_items(data, prepared)
        if normal_items is not None:
            normal_windows = self._normal_prepared(normal_items)
            if not normal_windows.any():
                raise LabelError("no window of the series is free of labelled anomalies; pass more normal "
                                 "data or a shorter window")
        fit_data = prepared if normal_windows is None else prepared[normal_windows]
        self.n_train_ = len(fit_data)
        self._fit(fit_data)
        self.score_mode_ = self._resolve_score_mode()
        self.selection_ = {}
        val_scores = val_labels = None
        if validation_data is not None:
            val_prepared = self._prepare(validation_data)
            n_val = self._n_items(validation_data, val_prepared)
            if validation_labels is not None:
                val_labels = check_labels(validation_labels, n_val)
            if val_labels is not None and getattr(self, "score_mode", None) == "auto" and len(self.score_modes) > 1:
                from sklearn.metrics import average_precision_score

                candidates = {m: self._items(self._score_prepared(val_prepared, m), n_val) for m in self.score_modes}
                self.selection_ = {m: float(average_precision_score(val_labels, s)) for m, s in candidates.items()}
                self.score_mode_ = max(self.score_modes, key=lambda m: self.selection_[m])
                val_scores = candidates[self.score_mode_]
            else:
                val_scores = self._items(self._score_prepared(val_prepared, self.score_mode_), n_val)
        train_scores = self._items(self._score_prepared(prepared, self.score_mode_), n_items)
        # The contamination threshold and score statistics describe normal items only.
        self.train_scores_ = canonical(train_scores if normal_items is None else train_scores[normal_items],
                                       np.float64)
        self._fit_threshold(self.train_scores_, val_scores, val_labels)
        return self

    def _normal_prepared(self, normal_items: np.ndarray) -> np.ndarray:
        """Mask over a series' windows: those covering no anomalous point."""
        starts = window_starts(len(normal_items), int(self.window_length), int(self.window_stride))
        anomalous = np.r_[0, np.cumsum(~normal_items)]
        return (anomalous[starts + int(self.window_length)] - anomalous[starts]) == 0

    def score(self, data: Any) -> np.ndarray:
        """Anomaly score per item (row, point or image); pure: the model and the input are unchanged."""
        self._check_fitted()
        prepared = self._prepare(data)
        return self._items(self._score_prepared(prepared, self.score_mode_), self._n_items(data, prepared))

    def predict(self, data: Any) -> np.ndarray:
        """1 where the score exceeds `threshold_`, else 0."""
        return (self.score(data) > self.threshold_).astype(np.int64)

    def calibrate_threshold(self, data: Any, labels: Any) -> float:
        """Set `threshold_` to the value maximising F1 on labelled (validation) data; return it."""
        scores = self.score(data)
        labels = check_labels(labels, len(scores))
        self._fit_threshold(self.train_scores_, scores, labels)
        return self.threshold_

    # ------------------------------------------------------------------ thresholds
    def _fit_threshold(self, train_scores: np.ndarray, val_scores: np.ndarray | None,
                       val_labels: np.ndarray | None) -> None:
        """The one place thresholds come from: fixed value, best F1 on labelled validation, or contamination."""
        if self.threshold is not None:
            self.threshold_ = float(self.threshold)
            self.threshold_source_ = "fixed"
        elif val_scores is not None and val_labels is not None:
            self.threshold_, self.validation_f1_ = best_f1_threshold(val_scores, val_labels)
            self.threshold_source_ = "best_f1"
        else:
            self.threshold_ = float(np.quantile(train_scores, 1.0 - self.contamination))
            self.threshold_source_ = "contamination"

    # ------------------------------------------------------------------ input preparation
    # Hyperparameters that must be whole numbers >= 1 and numbers > 0, wherever a detector declares them.
    POSITIVE_INTS: ClassVar[tuple[str, ...]] = ("window_length", "window_stride", "epochs", "encoder_epochs",
                                                "batch_size", "width", "latent_dim", "n_estimators")
    POSITIVE_NUMBERS: ClassVar[tuple[str, ...]] = ("learning_rate", "search_learning_rate")

    def _check_hyperparameters(self) -> None:
        if self.kind not in ("auto", *KINDS):
            raise InvalidDataError(f"kind must be one of {KINDS} or 'auto', got {self.kind!r}")
        if isinstance(self.contamination, bool) or not isinstance(self.contamination, (int, float)) \
                or not 0.0 < float(self.contamination) < 0.5:
            raise InvalidDataError(f"contamination must be in (0, 0.5), got {self.contamination}")
        params = self.get_params()
        for name in self.POSITIVE_INTS:
            value = params.get(name)
            if name in params and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
                raise InvalidDataError(f"{name} must be a positive integer, got {value!r}")
        for name in self.POSITIVE_NUMBERS:
            value = params.get(name)
            if name in params and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
                raise InvalidDataError(f"{name} must be a positive number, got {value!r}")
        if self.threshold is not None and (isinstance(self.threshold, bool)
                                           or not isinstance(self.threshold, (int, float))
                                           or not np.isfinite(self.threshold)):
            raise InvalidDataError(f"threshold must be a number (finite, or None for a learned one), "
                                   f"got {self.threshold!r}")
        mode = params.get("score_mode", "auto")
        if mode != "auto" and mode not in self.score_modes:
            raise InvalidDataError(f"score_mode must be 'auto' or one of {self.score_modes}, got {mode!r}")

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(normal_data) or load a saved model")

    def _prepare(self, data: Any, fitting: bool = False, normal_points: np.ndarray | None = None) -> np.ndarray:
        kind = self.kind_
        if kind == "tabular":
            if not isinstance(data, pd.DataFrame) and np.ndim(data) != 2:
                raise InvalidDataError(f"table data must be a DataFrame or a 2-D array, got shape {np.shape(data)}")
            if fitting:
                self.encoder_ = TabularEncoder().fit(data)
            x = self.encoder_.transform(data)
            if len(x) == 0:
                raise InvalidDataError("the table has no rows; pass at least one row")
            return x
        if kind == "timeseries":
            series = data.to_numpy() if isinstance(data, (pd.DataFrame, pd.Series)) else np.asarray(data)
            if series.dtype == object or not np.issubdtype(series.dtype, np.number):
                raise InvalidDataError(f"a series must be numeric, got dtype {series.dtype}")
            series = series.astype(np.float64)
            if series.ndim == 1:
                series = series[:, None]
            if series.ndim != 2:
                raise InvalidDataError(f"a series must be 1-D or (points, channels), got shape {series.shape}")
            if not np.isfinite(series).all():
                raise MissingValuesError("the series holds NaN or infinite values; interpolate or drop them first")
            if fitting:
                normal = series if normal_points is None else series[normal_points]
                std = normal.std(axis=0)
                self.series_stats_ = {"mean": normal.mean(axis=0).tolist(),
                                      "std": np.where(std > 1e-12, std, 1.0).tolist()}
            elif series.shape[1] != len(self.series_stats_["mean"]):
                raise InvalidDataError(
                    f"the series has {series.shape[1]} channels, the detector was trained on "
                    f"{len(self.series_stats_['mean'])}; pass the same channels"
                )
            series = (series - np.asarray(self.series_stats_["mean"])) / np.asarray(self.series_stats_["std"])
            return sliding_windows(series, int(self.window_length), int(self.window_stride)).astype(np.float32)
        # images
        images = np.asarray(data)
        if images.ndim == 3:
            images = images[:, None]
        if images.ndim != 4:
            raise InvalidDataError(f"images must be (n, h, w) or (n, c, h, w), got shape {np.shape(data)}")
        if not np.issubdtype(images.dtype, np.number):
            raise InvalidDataError(f"images must be numeric, got dtype {images.dtype}")
        if len(images) == 0:
            raise InvalidDataError("no images given; pass at least one image")
        scale = 255.0 if images.dtype == np.uint8 else 1.0
        images = images.astype(np.float32) / scale
        if not np.isfinite(images).all():
            raise MissingValuesError("the images hold NaN or infinite pixels; fix or drop those images")
        if fitting:
            self.image_shape_ = list(images.shape[1:])
            self.image_stats_ = [float(images.mean()), float(images.std()) or 1.0]
        elif list(images.shape[1:]) != self.image_shape_:
            c, h, w = self.image_shape_
            raise ImageSizeError(
                f"images are {images.shape[2]}x{images.shape[3]} with {images.shape[1]} channel(s), the detector "
                f"was trained on {h}x{w} with {c}; resize the images to {h}x{w}"
            )
        return (images - self.image_stats_[0]) / self.image_stats_[1]

    def _n_items(self, data: Any, prepared: np.ndarray) -> int:
        if self.kind_ == "timeseries":
            return len(data)
        return len(prepared)

    def _items(self, raw_scores: np.ndarray, n_items: int) -> np.ndarray:
        raw_scores = np.asarray(raw_scores, dtype=np.float64)
        if self.kind_ == "timeseries":
            return point_scores(raw_scores, n_items, int(self.window_length), int(self.window_stride))
        return raw_scores

    def _resolve_score_mode(self) -> str:
        mode = getattr(self, "score_mode", None)
        if mode in (None, "auto"):
            return self.default_score_mode
        if mode not in self.score_modes:
            raise InvalidDataError(f"score_mode must be 'auto' or one of {self.score_modes}, got {mode!r}")
        return mode

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _fit(self, x: np.ndarray) -> None:
        """Learn from prepared normal data."""

    @abstractmethod
    def _score_prepared(self, x: np.ndarray, mode: str) -> np.ndarray:
        """Raw score per prepared item (row, window or image); must not change the model."""

    @abstractmethod
    def _get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Fitted state as (JSON-serialisable dict, name -> torch tensor)."""

    @abstractmethod
    def _set_state(self, state: dict[str, Any], tensors: dict[str, Any]) -> None:
        """Restore fitted state saved by `_get_state`."""

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write `model.json` and `weights.safetensors` into directory `path`; no pickle."""
        import torch

        self._check_fitted()
        state, tensors = self._get_state()
        base_state = {
            "kind": self.kind_, "n_train": self.n_train_, "threshold": self.threshold_,
            "threshold_source": self.threshold_source_, "score_mode": self.score_mode_,
            "selection": self.selection_,
            "encoder": self.encoder_.to_json() if hasattr(self, "encoder_") else None,
            "series_stats": getattr(self, "series_stats_", None),
            "image_shape": getattr(self, "image_shape_", None), "image_stats": getattr(self, "image_stats_", None),
        }
        envelope = {
            "format_version": FORMAT_VERSION, "detector": self.name,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "params": self.get_params(), "base_state": base_state, "state": state,
            "versions": _recorded_versions(),
        }
        tensors = dict(tensors, train_scores=torch.from_numpy(self.train_scores_).to(torch.float64))
        return write_envelope(path, envelope, tensors, indent=2, sort_keys=True)

    @classmethod
    def load(cls, path: str | Path) -> "Detector":
        """Load a model saved by `save`; `Detector.load` resolves the class from the registry.

        The files are untrusted input: every value is checked before the model uses it, and anything that fails
        (tampered, truncated, hand-edited) raises a one-line ModelFormatError naming the file.
        """
        path = Path(path)
        if not (path / MODEL_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
            raise ModelFormatError(f"{path} is not a saved detector (needs {MODEL_FILE} and {WEIGHTS_FILE})")
        try:
            return cls._load_checked(path)
        except (ModelFormatError, Warning):
            raise
        except shared.ModelFormatError as exc:  # the envelope's own checks: they name the file and the problem
            raise ModelFormatError(f"cannot load {one_line(exc, 1000)}; retrain the detector and save it "
                                   "again") from None
        except BadState as exc:
            raise ModelFormatError(f"cannot load {path / exc.file}: {one_line(exc)}; retrain the detector and "
                                   "save it again") from None
        except Exception as exc:  # noqa: BLE001 - whatever a tampered file trips must surface as a format error
            raise ModelFormatError(f"cannot load {path / MODEL_FILE} with {WEIGHTS_FILE}: {type(exc).__name__}: "
                                   f"{one_line(exc)}; retrain the detector and save it again") from exc

    @classmethod
    def _load_checked(cls, path: Path) -> "Detector":
        import torch

        envelope = read_envelope(path, format_version=FORMAT_VERSION, keys=_ENVELOPE_KEYS, finite=True)
        name = envelope["detector"]
        if cls is Detector:
            from detectors.registry import REGISTRY, get_detector_class

            if not isinstance(name, str) or name not in REGISTRY:
                raise BadState(f"detector {one_line(name, 40)!r} is not one of {list(REGISTRY)}")
            klass = get_detector_class(name)
        else:
            if name != cls.name:
                raise ModelFormatError(f"{path / MODEL_FILE} holds a {one_line(name, 40)!r} detector, not "
                                       f"{cls.name!r}; load it with Detector.load")
            klass = cls
        params, base, state, saved = (envelope[key] for key in ("params", "base_state", "state", "versions"))
        if not isinstance(saved, dict) or not all(isinstance(v, str) for v in saved.values()):
            raise BadState("'versions' is not an object of version strings")
        model = klass._from_params(params, path / MODEL_FILE)
        model._set_base_state(base)
        if not isinstance(state, dict):
            raise BadState("'state' is not a JSON object")
        tensors = read_safetensors_checked(path / WEIGHTS_FILE, framework="torch")
        train_scores = tensors.pop("train_scores", None)
        if train_scores is None or train_scores.ndim != 1 or len(train_scores) == 0 \
                or train_scores.dtype != torch.float64:
            raise BadState("'train_scores' missing or not a non-empty 1-D float64 tensor", WEIGHTS_FILE)
        model.train_scores_ = canonical(train_scores.numpy(), np.float64)
        if not np.isfinite(model.train_scores_).all():
            raise BadState("NaN or infinite training scores", WEIGHTS_FILE)
        model._set_state(state, tensors)
        warn_if_versions_differ(path, saved, _recorded_versions(), category=DetectorVersionWarning,
                                consequence="scores may differ; retrain if they matter", stacklevel=3)
        return model

    @classmethod
    def _from_params(cls, params: Any, where: Any) -> "Detector":
        """A detector built from saved hyperparameters (read from file `where`): known names, accepted types, values
        `fit` would take; those left out take their defaults."""
        hyperparameters.check_saved_params(cls, params, where, complete=False)
        model = cls(**params)
        try:
            model._check_hyperparameters()
        except InvalidDataError as exc:
            raise BadState(f"bad hyperparameters: {exc}") from None
        return model

    def _set_base_state(self, base: Any) -> None:
        """Restore and check what every detector saves: kind, threshold, score mode and input statistics."""
        where = "base_state"
        kind = require(base, "kind", where)
        if kind not in KINDS:
            raise BadState(f"kind {one_line(kind, 40)!r} is not one of {KINDS}")
        if self.kind not in ("auto", kind):
            raise BadState(f"kind {kind!r} differs from the hyperparameter kind={self.kind!r} it was fitted with")
        self.kind_ = kind
        self.n_train_ = positive_int(require(base, "n_train", where), "n_train")
        self.threshold_ = finite_number(require(base, "threshold", where), "threshold")
        self.threshold_source_ = require(base, "threshold_source", where)
        if self.threshold_source_ not in ("fixed", "best_f1", "contamination"):
            raise BadState(f"unknown threshold source {one_line(self.threshold_source_, 40)!r}")
        mode = require(base, "score_mode", where)
        if mode not in self.score_modes:
            raise BadState(f"score mode {one_line(mode, 40)!r} is not one of {self.name}'s {self.score_modes}")
        self.score_mode_ = mode
        selection = require(base, "selection", where)
        if not isinstance(selection, dict) or not set(selection) <= set(self.score_modes):
            raise BadState(f"'selection' is not an object of {self.name}'s score modes")
        self.selection_ = {m: finite_number(v, f"selection[{m!r}]") for m, v in selection.items()}
        encoder, series_stats, image_shape, image_stats = (
            require(base, key, where) for key in ("encoder", "series_stats", "image_shape", "image_stats"))
        if encoder is not None or kind == "tabular":
            self.encoder_ = TabularEncoder.from_json(encoder)
        if series_stats is not None or kind == "timeseries":
            mean = number_list(require(series_stats, "mean", "series_stats"), "series_stats mean")
            std = number_list(require(series_stats, "std", "series_stats"), "series_stats std", len(mean), True)
            self.series_stats_ = {"mean": mean, "std": std}
        if image_shape is not None or image_stats is not None or kind == "image":
            self.image_shape_ = shape_list(image_shape, "image_shape", 3)
            self.image_stats_ = mean_std(image_stats, "image_stats")

    def _prepared_shape(self) -> list[int]:
        """Shape of one prepared item for the fitted kind: (features,), (channels, window) or (c, h, w)."""
        if self.kind_ == "tabular":
            return [self.encoder_.n_features_]
        if self.kind_ == "timeseries":
            return [len(self.series_stats_["mean"]), int(self.window_length)]
        return list(self.image_shape_)

    def _saved_input_shape(self, state: dict[str, Any]) -> list[int]:
        """The saved `input_shape`, checked against what the saved kind and statistics prepare."""
        shape = shape_list(require(state, "input_shape", "state"), "input_shape")
        if shape != self._prepared_shape():
            raise BadState(f"input_shape {shape} differs from the {self._prepared_shape()} its {self.kind_} "
                           "statistics prepare")
        return shape

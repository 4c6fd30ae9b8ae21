"""The image kind: labelled uint8 images in, class-conditional synthetic images of the same shape out."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np

from generators.base import Generator, check_array_keys, check_count, take_array
from generators.data import ImageData, kind_of
from generators.errors import ConditionError, InvalidDataError, ModelFormatError

MAX_SIDE = 4096          # largest height or width a saved codec may claim
MAX_CLASSES = 10_000     # largest label vocabulary a saved codec may claim
MAX_INTENSITIES = 64     # images using at most this many distinct intensities keep them: samples are snapped
CONDITION_KEYS = ("label",)


def _is_count(value: Any, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


@dataclass(frozen=True)
class ImageCodec:
    """What a generator learned about its images besides the model: shape, label vocabulary and proportions.

    `labels` is the vocabulary in class order (texts, plus None when some images have no label: None is then a
    class of its own); `labelled` is False when the training data had no labels at all (one class, None, and
    samples carry no labels either). `counts` is the number of training images per class. `intensities` lists
    the distinct pixel values of training images that use at most MAX_INTENSITIES of them (binary masks, the 17
    grey levels of scikit-learn's digits), else None; samples are snapped to the nearest of them.
    """

    height: int
    width: int
    channels: int
    labels: tuple[str | None, ...]
    counts: tuple[int, ...]
    labelled: bool
    intensities: tuple[int, ...] | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.height, self.width, self.channels

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def n_train(self) -> int:
        return int(sum(self.counts))

    @property
    def proportions(self) -> np.ndarray:
        counts = np.asarray(self.counts, dtype=np.float64)
        return counts / counts.sum()

    # ---------------------------------------------------------------- learn
    @classmethod
    def fit(cls, data: ImageData) -> tuple["ImageCodec", np.ndarray]:
        """The codec of checked image data and each image's class index (int64)."""
        n, h, w, c = data.pixels.shape
        seen = np.flatnonzero(np.bincount(data.pixels.ravel(), minlength=256))
        intensities = tuple(int(v) for v in seen) if len(seen) <= MAX_INTENSITIES else None
        if data.labels is None:
            return cls(h, w, c, (None,), (n,), False, intensities), np.zeros(n, dtype=np.int64)
        labels = np.asarray(data.labels, dtype=object)
        texts = sorted({v for v in labels if v is not None})
        vocab: list[str | None] = [*texts, *([None] if any(v is None for v in labels) else [])]
        index = {v: i for i, v in enumerate(vocab)}
        classes = np.fromiter((index[v] for v in labels), dtype=np.int64, count=n)
        counts = np.bincount(classes, minlength=len(vocab))
        return cls(h, w, c, tuple(vocab), tuple(int(k) for k in counts), True, intensities), classes

    def snap(self, pixels: np.ndarray) -> np.ndarray:
        """Pixels moved to the nearest training intensity (unchanged when the training images use many)."""
        if self.intensities is None:
            return pixels
        levels = np.asarray(self.intensities, dtype=np.int64)
        upper = np.clip(np.searchsorted(levels, np.arange(256)), 0, len(levels) - 1)
        lower = np.clip(upper - 1, 0, len(levels) - 1)
        values = np.arange(256)
        table = np.where(np.abs(levels[lower] - values) <= np.abs(levels[upper] - values), levels[lower],
                         levels[upper]).astype(np.uint8)
        return table[pixels]

    # ------------------------------------------------------------ sampling
    def check_conditions(self, conditions: Mapping[str, Any] | None) -> int | None:
        """The class index `conditions` asks for ({"label": "3"}), or None; ConditionError naming the way out."""
        if not conditions:
            return None
        if not isinstance(conditions, Mapping):
            raise ConditionError(f"conditions must be a mapping like {{'label': 'cat'}}, got "
                                 f"{type(conditions).__name__}")
        unknown = [k for k in conditions if k not in CONDITION_KEYS]
        if unknown:
            raise ConditionError(f"images can only be conditioned on 'label', not {str(unknown[0])[:50]!r}")
        if not self.labelled:
            raise ConditionError("this model was trained on unlabelled images; it cannot be conditioned on a label")
        value = conditions["label"]
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            value = str(int(value))  # `--where label=3` and a notebook's 3 mean the same text label
        if value not in self.labels or not (value is None or isinstance(value, str)):
            known = ", ".join("<none>" if v is None else repr(v) for v in self.labels[:30])
            more = f" and {len(self.labels) - 30} more" if len(self.labels) > 30 else ""
            raise ConditionError(f"label {str(value)[:50]!r} was not seen in training; known labels: {known}{more}")
        return self.labels.index(value)

    def draw_classes(self, n: int, rng: np.random.Generator, condition: int | None) -> np.ndarray:
        """n class indices in the training proportions, or all `condition`."""
        if condition is not None:
            return np.full(n, condition, dtype=np.int64)
        if self.n_classes == 1:
            return np.zeros(n, dtype=np.int64)
        return rng.choice(self.n_classes, size=n, p=self.proportions).astype(np.int64)

    def label_array(self, classes: np.ndarray) -> np.ndarray | None:
        if not self.labelled:
            return None
        vocab = np.array(self.labels, dtype=object)
        return vocab[classes]

    # --------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        return {"height": self.height, "width": self.width, "channels": self.channels, "labels": list(self.labels),
                "counts": list(self.counts), "labelled": self.labelled,
                "intensities": None if self.intensities is None else list(self.intensities)}

    @classmethod
    def from_dict(cls, doc: Any) -> "ImageCodec":
        """Rebuild a saved codec; hostile input: ModelFormatError naming what is wrong."""
        keys = {"height", "width", "channels", "labels", "counts", "labelled", "intensities"}
        if not isinstance(doc, dict) or set(doc) != keys:
            raise ModelFormatError(f"'codec' must be an object with exactly the keys {sorted(keys)}")
        for key in ("height", "width"):
            if not _is_count(doc[key], 1) or doc[key] > MAX_SIDE:
                raise ModelFormatError(f"codec {key} must be an integer in 1..{MAX_SIDE}, not "
                                       f"{str(doc[key])[:30]!r}")
        if doc["channels"] not in (1, 3, 4) or isinstance(doc["channels"], bool):
            raise ModelFormatError(f"codec channels must be 1, 3 or 4, not {str(doc['channels'])[:30]!r}")
        labels, counts, labelled = doc["labels"], doc["counts"], doc["labelled"]
        if not isinstance(labelled, bool):
            raise ModelFormatError("codec labelled must be true or false")
        if not (isinstance(labels, list) and 1 <= len(labels) <= MAX_CLASSES
                and all(v is None or (isinstance(v, str) and len(v) <= 10_000) for v in labels)):
            raise ModelFormatError(f"codec labels must be a list of 1..{MAX_CLASSES} texts (or null)")
        if len(set(labels)) != len(labels):
            raise ModelFormatError("codec labels repeat a label")
        texts = [v for v in labels if v is not None]
        if texts != sorted(texts) or (None in labels and labels[-1] is not None):
            raise ModelFormatError("codec labels must be sorted texts, with null (if any) last")
        if not labelled and labels != [None]:
            raise ModelFormatError("an unlabelled codec has exactly one class, null")
        if not (isinstance(counts, list) and len(counts) == len(labels) and all(_is_count(k, 1) for k in counts)):
            raise ModelFormatError("codec counts must hold one positive integer per label")
        intensities = doc["intensities"]
        if intensities is not None and not (
                isinstance(intensities, list) and 1 <= len(intensities) <= MAX_INTENSITIES
                and all(_is_count(v) and v <= 255 for v in intensities)
                and all(a < b for a, b in zip(intensities, intensities[1:]))):
            raise ModelFormatError(f"codec intensities must be null or 1..{MAX_INTENSITIES} increasing integers in "
                                   "0..255")
        return cls(doc["height"], doc["width"], doc["channels"], tuple(labels), tuple(counts), labelled,
                   None if intensities is None else tuple(intensities))



def to_unit(pixels: np.ndarray) -> np.ndarray:
    """uint8 (n, h, w, c) -> float32 in [0, 1], same layout."""
    return np.ascontiguousarray(pixels, dtype=np.float32) / np.float32(255.0)


def from_unit(x: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8 (rounded, clipped)."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


class ImageGenerator(Generator):
    """Learns labelled images of one size and samples class-conditional images like them.

    Subclasses implement `_fit(pixels, classes)` (uint8 (n, h, w, c) and int64 class indices into
    `codec.labels`; `self.shape_` and `self.n_classes_` are set before) and `_sample(classes, rng)`, returning
    uint8 images of `self.shape_`, one per requested class, plus the state hooks of `Generator` (checked against
    `shape_` and `n_classes_`, which `_restore` sets before `_set_state` runs).
    """

    kind: ClassVar[str] = "image"
    _DOC_KEYS: ClassVar[tuple[str, ...]] = ("codec",)
    min_images: ClassVar[int] = 2

    # --------------------------------------------------------------- fit
    def fit(self, data: ImageData) -> "ImageGenerator":
        """Learn `data` (not modified): uint8 images of one size with one label (text or None) per image."""
        if not isinstance(data, ImageData):
            got = kind_of(data)
            raise InvalidDataError(f"{type(self).__name__} learns image data, not {got} data; use a generator for "
                                   f"{got} data")
        data = ImageData(data.pixels, None if data.labels is None else np.array(data.labels, dtype=object),
                         data.meta).check()
        if len(data) < self.min_images:
            raise InvalidDataError(f"{len(data)} image(s) is too few to learn from; give at least {self.min_images}")
        codec, classes = ImageCodec.fit(data)
        self.shape_ = codec.shape
        self.n_classes_ = codec.n_classes
        self._fit(np.ascontiguousarray(data.pixels), classes)
        self._canonicalise()
        self.codec_ = codec  # last: marks the generator fitted
        return self

    def _fit(self, pixels: np.ndarray, classes: np.ndarray) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ sample
    def sample(self, n: int, *, seed: int | None = None, conditions: Mapping[str, Any] | None = None) -> ImageData:
        """Draw n images of the training shape; labels in the training proportions unless conditioned
        ({"label": "3"}: all of that label). Same fitted model + same seed => same images and labels."""
        self._require_fitted()
        n = check_count(n, "images")
        condition = self.codec_.check_conditions(conditions)
        rng = np.random.default_rng(seed)
        classes = self.codec_.draw_classes(n, rng, condition)
        pixels = self._sample(classes, rng)
        if not (isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8 and pixels.shape == (n, *self.shape_)):
            raise AssertionError(f"{type(self).__name__}._sample returned {getattr(pixels, 'dtype', None)} "
                                 f"{getattr(pixels, 'shape', None)}, not uint8 {(n, *self.shape_)}")
        return ImageData(np.ascontiguousarray(self.codec_.snap(pixels)), self.codec_.label_array(classes),
                         {"generator": self.name})

    def _sample(self, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------- persistence
    def _describe(self) -> dict[str, Any]:
        return {"codec": self.codec_.to_dict()}

    def _restore(self, doc: Mapping[str, Any], where: Path) -> ImageCodec:
        try:
            codec = ImageCodec.from_dict(doc["codec"])
        except ModelFormatError as exc:
            raise ModelFormatError(f"{where}: {exc}") from exc
        self.shape_ = codec.shape
        self.n_classes_ = codec.n_classes
        return codec


def intensity_maps(real: np.ndarray, real_classes: np.ndarray, decoded: np.ndarray, n_classes: int) -> np.ndarray:
    """Per class, the monotone table (uint8 (n_classes, 256)) that maps decoded intensities to training ones by
    matching their distributions (quantile mapping): a decoder of mean images never reaches the exact black
    backgrounds and saturated whites that real images hold in quantity. `decoded` are uint8 images drawn per
    class as `real_classes` says (one per training image); a class absent from either side maps to itself."""
    maps = np.tile(np.arange(256, dtype=np.uint8), (n_classes, 1))
    for c in range(n_classes):
        r, d = real[real_classes == c], decoded[real_classes == c]
        if r.size == 0 or d.size == 0:
            continue
        real_cdf = np.cumsum(np.bincount(r.ravel(), minlength=256)) / r.size
        share = np.bincount(d.ravel(), minlength=256) / d.size
        middle = np.cumsum(share) - share / 2.0  # each decoded level's mid-quantile
        maps[c] = np.searchsorted(real_cdf, np.clip(middle, 0.0, 1.0 - 1e-12), side="right").clip(0, 255)
    return np.ascontiguousarray(maps)


def apply_intensity_maps(pixels: np.ndarray, classes: np.ndarray, maps: np.ndarray | None) -> np.ndarray:
    """uint8 images with each image's intensities passed through its class's row of `maps` (None: unchanged)."""
    if maps is None:
        return pixels
    flat = pixels.reshape(len(pixels), -1)
    return np.ascontiguousarray(np.take_along_axis(maps[classes], flat.astype(np.intp), axis=1).reshape(pixels.shape))


def training_subset(pixels: np.ndarray, classes: np.ndarray, max_images: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_images` training images (and their classes), drawn with `rng` in their original order."""
    if len(pixels) <= max_images:
        return pixels, classes
    keep = np.sort(rng.permutation(len(pixels))[:max_images])
    return pixels[keep], classes[keep]


def padded_side(side: int) -> int:
    """The side the convolutional networks work at: the image side rounded up to a multiple of 4 (two stride-2
    layers)."""
    return -(-side // 4) * 4


def epoch_batches(n: int, batch_size: int, generator) -> list:
    """One epoch's minibatches: index tensors cut in order from a fresh permutation of range(n) drawn (now) from
    `generator`."""
    import torch

    order = torch.randperm(n, generator=generator)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def ema_update(ema, net, step: int, decay: float) -> None:
    """Move the moving-average copy `ema` towards `net` after update `step` (1-based); the decay warms up as
    (1 + step) / (10 + step) until it reaches `decay`, so early weights do not linger."""
    import torch

    rate = min(float(decay), (1.0 + step) / (10.0 + step))
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), net.parameters()):
            pe.mul_(rate).add_(p, alpha=1.0 - rate)


def padded_unit_tensors(pixels: np.ndarray):
    """(images, mask) as float32 tensors (n, c, H4, W4): [0, 1] intensities, zero padding right and below to
    `padded_side`, and a mask that is 1 on the real pixels."""
    import torch

    n, h, w, c = pixels.shape
    x = np.zeros((n, c, padded_side(h), padded_side(w)), dtype=np.float32)
    x[:, :, :h, :w] = to_unit(pixels).transpose(0, 3, 1, 2)
    mask = np.zeros((1, c, padded_side(h), padded_side(w)), dtype=np.float32)
    mask[:, :, :h, :w] = 1.0
    return torch.from_numpy(x), torch.from_numpy(mask)


def check_intensity_maps(maps: Any, n_classes: int) -> np.ndarray:
    """A saved intensity map checked: uint8 (n_classes, 256), non-decreasing along each row."""
    if maps is None:
        raise ModelFormatError("array 'intensity_map' is missing from the weights")
    maps = take_array({"intensity_map": maps}, "intensity_map", np.uint8, (n_classes, 256))
    if (np.diff(maps.astype(np.int16), axis=1) < 0).any():
        raise ModelFormatError("array 'intensity_map' must be non-decreasing along each class's row")
    return maps


def take_intensity_map(arrays: Mapping[str, np.ndarray], match: bool, n_classes: int
                       ) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """(the checked 'intensity_map' of saved arrays, or None when the model does not match intensities; the other
    arrays). A map the params do not call for is refused, as a missing one is."""
    rest = dict(arrays)
    if match:
        return check_intensity_maps(rest.pop("intensity_map", None), n_classes), rest
    if "intensity_map" in rest:
        raise ModelFormatError("the weights hold unexpected array 'intensity_map': this model does not match "
                               "intensities (match_intensities false)")
    return None, rest


def check_positive(owner: str, **params: Any) -> None:
    """ModelFormatError unless every named hyperparameter is a positive finite number (guards loaded params)."""
    for key, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ModelFormatError(f"{owner}: param {key}={str(value)[:30]} must be a positive number")


class TorchImageNet:
    """The state hooks of an image generator whose fitted state is one torch network (`net_`, built by `_build`
    from the class and arguments `_network` names) and its training history: saved as float32 arrays `net.<name>`,
    rebuilt only from arrays of exactly the shapes a network built on the meta device (no memory) has, so a forged
    file cannot make it allocate."""

    def _build(self, device=None):
        import torch

        network, args = self._network()
        if device is None:
            return network(*args)
        with torch.device(device):
            return network(*args)

    def _get_state(self):
        arrays = {f"net.{k}": np.ascontiguousarray(v.detach().cpu().numpy()) for k, v in self.net_.state_dict().items()}
        return {"history": self.history_}, arrays

    def _set_state(self, state, arrays):
        import torch

        self._check_params()
        history = state.get("history") if isinstance(state, dict) else None
        if not (isinstance(state, dict) and set(state) == {"history"} and isinstance(history, list)
                and all(isinstance(h, dict) for h in history)):
            raise ModelFormatError("state must be {'history': [epoch records]}")
        expected = {f"net.{k}": (tuple(t.shape), t.dtype) for k, t in self._build("meta").state_dict().items()}
        check_array_keys(arrays, expected)
        loaded = {}
        for key, (shape, dtype) in expected.items():
            if dtype != torch.float32:
                raise ModelFormatError(f"array {key!r}: unexpected dtype {dtype}")
            loaded[key.removeprefix("net.")] = torch.from_numpy(take_array(arrays, key, np.float32, shape).copy())
        net = self._build()
        net.load_state_dict(loaded)
        net.eval()
        self.history_ = history
        self.net_ = net

"""Typed errors of the detectors library: each message names the input and the way out."""

from modelkit import errors as shared


class DetectorError(Exception):
    """Base of every error raised by `detectors` for bad input or bad use."""


class NotFittedError(DetectorError, shared.NotFittedError):
    """A detector used before `fit`."""


class InvalidDataError(DetectorError):
    """Data of the wrong type, shape or dimensionality for this detector."""


class ColumnMismatchError(InvalidDataError):
    """A table whose columns differ from the table the detector was fitted on."""

    def __init__(self, message: str, missing: list[str] | None = None, extra: list[str] | None = None):
        super().__init__(message)
        self.missing = list(missing or [])
        self.extra = list(extra or [])


class MissingValuesError(InvalidDataError):
    """Data holding NaN or infinite values."""


class WindowError(InvalidDataError):
    """A series shorter than the window length, or a bad window/stride setting."""


class ImageSizeError(InvalidDataError):
    """Images whose size or channel count differs from the training images."""


class LabelError(DetectorError):
    """Labels that cannot calibrate a threshold (wrong length, one class only)."""


class UnknownDetectorError(DetectorError):
    """A detector name that is not in the registry."""


class ModelFormatError(DetectorError, shared.ModelFormatError):
    """A saved model directory that is missing files, of another format version or detector, or damaged/tampered."""


class DetectorVersionWarning(shared.VersionMismatchWarning):
    """A detector saved with other library versions than the ones loading it."""

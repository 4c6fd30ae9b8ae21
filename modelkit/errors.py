"""Typed errors of saved models, shared by generators and detectors.

Each library subclasses these together with its own base class (`GeneratorError`, `DetectorError`), so callers
may catch either the library's error or the shared one.
"""

from __future__ import annotations


class ModelError(Exception):
    """Base of the errors every model library raises about a model."""


class ModelFormatError(ModelError):
    """A saved model directory that is missing, corrupt, tampered or written by an incompatible format."""


class UnsafeModelError(ModelFormatError):
    """A saved model that asks to rebuild an object outside the allow-list (refused, never unpickled)."""


class NotFittedError(ModelError):
    """A model used (sampled, scored, saved) before it was fitted."""


class VersionMismatchWarning(UserWarning):
    """A model saved with other library versions than the running ones."""


def one_line(text: object, limit: int = 300) -> str:
    """`text` on one line, shortened: messages quoting a tampered file must not spill over the terminal."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."

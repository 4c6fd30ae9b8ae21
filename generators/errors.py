"""Typed errors of the generators library; every message names the input and the way out."""

from __future__ import annotations

from modelkit import errors as shared


class GeneratorError(Exception):
    """Base of every error raised by `generators` (the CLI catches this one)."""


class UnknownGeneratorError(GeneratorError, KeyError):
    """A generator name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InvalidDataError(GeneratorError, ValueError):
    """Training data a generator cannot learn from (not a DataFrame, no rows, an all-null column...)."""


class SchemaError(GeneratorError, ValueError):
    """A table schema that is malformed or does not match the data."""


class NotFittedError(GeneratorError, shared.NotFittedError, RuntimeError):
    """`sample` or `save` called on a generator that has not been fitted."""


class InvalidSampleSizeError(GeneratorError, ValueError):
    """A number of rows to sample that is not a positive integer."""


class ConditionError(GeneratorError, ValueError):
    """A sampling condition naming a missing column or a value the model never saw."""


class ConditionUnreachableError(ConditionError):
    """Rejection sampling could not reach the requested number of rows matching the conditions."""


class RejectionSamplingWarning(UserWarning):
    """Conditional sampling fell back to rejection: the model cannot condition natively on these columns."""


class ModelFormatError(GeneratorError, shared.ModelFormatError, ValueError):
    """A saved model directory that is missing, corrupt, or written by an incompatible format."""


class UnsafeModelError(ModelFormatError, shared.UnsafeModelError):
    """A saved model that asks to rebuild an object outside the allow-list (refused, never unpickled)."""


class VersionMismatchWarning(shared.VersionMismatchWarning):
    """A generator saved with other library versions than the running ones."""

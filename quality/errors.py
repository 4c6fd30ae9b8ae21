"""Typed errors of the quality library; every message names the input and the way out."""

from __future__ import annotations


class QualityError(Exception):
    """Base of every error raised by `quality` (the CLI catches this one)."""


class InvalidInputError(QualityError, ValueError):
    """A table the checks cannot read: not a DataFrame, no rows, or no usable columns."""


class SchemaMismatchError(QualityError, ValueError):
    """Real, synthetic and holdout tables that do not share the same columns."""


class UnknownThresholdError(QualityError, KeyError):
    """A threshold name that no check reads (usually a typo in the pipeline config)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class TargetError(QualityError, ValueError):
    """A utility target column that is missing or cannot be learned (one class only, all null...)."""

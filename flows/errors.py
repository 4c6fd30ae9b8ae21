"""User-facing errors of the pipeline layer: one line that names the input and the way out."""


class SynthwatchError(Exception):
    """Base of every error the CLI reports as a one-line message."""

    exit_code = 2


class WarehouseBusy(SynthwatchError):
    """Another process holds the warehouse's write lock for longer than the busy timeout."""


class InvalidTableName(SynthwatchError):
    """A table name that is not a plain SQL identifier."""


class TableNotFound(SynthwatchError):
    """A table that does not exist in the warehouse."""


class IngestError(SynthwatchError):
    """A source that cannot be read: missing, empty, malformed, or of the wrong kind."""


class ValidationFailed(SynthwatchError):
    """Data that failed its expectation suite before it was written."""

    def __init__(self, message: str, failures: list[dict] | None = None):
        super().__init__(message)
        self.failures = failures or []


class ConfigError(SynthwatchError):
    """A pipeline config file that is missing, malformed or names unknown stages."""


class DatasetError(SynthwatchError):
    """A data set that is unknown or cannot be fetched."""


class ServerError(SynthwatchError):
    """The local Prefect server cannot be started, stopped or reached."""


class GateFailed(SynthwatchError):
    """A synthetic table failed its quality gate and was quarantined; `result` holds the gate's checks."""

    exit_code = 1

    def __init__(self, message: str, result: dict | None = None):
        super().__init__(message)
        self.result = result


class TableExists(SynthwatchError):
    """A write would replace a table the user did not ask this command to replace."""


class ModelNotFound(SynthwatchError):
    """A generator model id that is not in `_models`."""


class DetectFlowError(SynthwatchError):
    """A detect train/score request that cannot run: unknown model, bad label column, unusable table."""


def user_error_types() -> tuple[type[BaseException], ...]:
    """Every error that means bad input (one line, exit 2) rather than a bug, across the three libraries.

    Only libraries already imported are looked at: an error of a library that was never imported cannot have been
    raised, and importing one here would cost every command its import time (numpy, pandas).
    """
    import sys

    errors: list[type[BaseException]] = [SynthwatchError]
    for module, name in (("generators.errors", "GeneratorError"), ("detectors.errors", "DetectorError"),
                         ("quality.errors", "QualityError")):
        error = getattr(sys.modules.get(module), name, None)
        if error is not None:
            errors.append(error)
    return tuple(errors)

"""Plain-data results shared by the gate, the CLI, the flows and the HTML report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import pandas as pd


def _plain(value: Any) -> Any:
    """A JSON-serialisable copy of a metric value (numpy scalars, NaN -> None, nested containers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    if value is None or isinstance(value, (str, int)):
        return value
    if value is pd.NaT or value is pd.NA:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True)
class CheckResult:
    """One gated or informational check.

    `threshold` is the bound `value` is compared against with `direction` ("max": value must be <= threshold,
    "min": value must be >= threshold); `None` threshold means informational (always passes).
    """

    name: str
    value: float | None
    threshold: float | None
    passed: bool
    explanation: str
    kind: str = "fidelity"  # fidelity | privacy | utility | expectation
    direction: str = "max"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def gated(self) -> bool:
        return self.threshold is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "value": _plain(self.value),
            "threshold": _plain(self.threshold),
            "direction": self.direction,
            "passed": bool(self.passed),
            "explanation": self.explanation,
            "details": _plain(self.details),
        }


def bounded_check(name: str, value: float | None, threshold: float | None, *, direction: str, kind: str,
                  explanation: str, details: dict[str, Any] | None = None, reach: float | None = None,
                  enlarge: str = "the holdout") -> CheckResult:
    """A check that passes when `value` is on the right side of `threshold` (NaN value fails a gated check).

    `reach` is the most damning value the statistic can take (1.0 for a share or an AUROC that a copy of the
    training data drives up): a size-aware bound at or beyond it could pass anything, a copy included, so the check
    is inconclusive and fails, naming `enlarge` as the way out (a null threshold accepts the risk knowingly).
    """
    if threshold is not None and reach is not None and (threshold >= reach if direction == "max"
                                                        else threshold <= reach):
        why = (f"inconclusive: at these sizes chance alone allows {threshold:.3g}, beyond any value the check can "
               f"take ({reach:g}), so even a copy of the training data would pass; enlarge {enlarge} (or set this "
               "threshold to null to publish without it)")
        return CheckResult(name=name, value=value, threshold=threshold, passed=False, kind=kind, direction=direction,
                           explanation=f"{explanation}; {why}", details={**(details or {}), "inconclusive": True})
    if threshold is None:
        passed = True
    elif value is None or (isinstance(value, float) and math.isnan(value)):
        passed = False
    elif direction == "max":
        passed = value <= threshold
    elif direction == "min":
        passed = value >= threshold
    else:
        raise ValueError(f"direction must be 'max' or 'min', got {direction!r}")
    return CheckResult(name=name, value=value, threshold=threshold, passed=bool(passed), kind=kind,
                       direction=direction, explanation=explanation, details=details or {})


@dataclass
class QualityReport:
    """Every check of one evaluation, plus the raw metrics the report plots.

    `metrics` holds JSON-able tables (per column, per pair); `arrays` holds large arrays (DCR distances)
    that only the HTML report reads and that `to_dict` leaves out.
    """

    checks: list[CheckResult]
    metrics: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failing(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    def __iter__(self) -> Iterator[CheckResult]:
        return iter(self.checks)

    def __len__(self) -> int:
        return len(self.checks)

    def __getitem__(self, name: str) -> CheckResult:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"no check named {name!r}; checks: {[c.name for c in self.checks]}")

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failing": self.failing,
            "checks": [c.to_dict() for c in self.checks],
            "metrics": _plain(self.metrics),
            "timings": _plain(self.timings),
        }


def overlay_thresholds(defaults: dict[str, Any], thresholds: dict[str, Any] | None, what: str) -> dict[str, Any]:
    """`defaults` overlaid with `thresholds`; an unknown name raises UnknownThresholdError, so a config typo cannot
    silently loosen a gate. `what` names the gate in the message ("quality", "sequence quality"...)."""
    from quality.errors import UnknownThresholdError

    merged = dict(defaults)
    for key, value in (thresholds or {}).items():
        if key not in defaults:
            raise UnknownThresholdError(f"unknown {what} threshold {key!r}; known: {sorted(defaults)}")
        merged[key] = None if value is None else float(value)
    return merged

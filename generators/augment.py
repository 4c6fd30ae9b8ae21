"""Augment a rare class: real rows plus synthetic rows of the rare value, flagged, never copies of a real row.

The generator learns the frame with the target column moved to the front of its column order, so conditioning
on the target is a prefix of the order: the autoregressive and cart models then sample it natively and exactly
(no importance resampling, no rejection), whatever the model was trained on before.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from generators.base import check_count
from generators.errors import ConditionError, InvalidDataError

FLAG_COLUMN = "synthetic"


def rare_value(frame: pd.DataFrame, target: str) -> Any:
    """The least frequent non-null value of `target` (the first of them in value order on a tie)."""
    _check_target(frame, target)
    counts = frame[target].dropna().value_counts()
    if counts.empty:
        raise InvalidDataError(f"target column {target!r} holds only nulls; pick another target")
    return counts[counts == counts.min()].sort_index().index[0]


def fit_for_augmentation(frame: pd.DataFrame, target: str, generator: Any = "autoregressive", *,
                         params: Mapping[str, Any] | None = None, seed: int = 0, schema: Any = None):
    """A generator (registry name or unfitted instance) fitted on `frame` with `target` first in its column order."""
    from generators.registry import make_generator

    _check_target(frame, target)
    if isinstance(generator, str):
        generator = make_generator(generator, **{"seed": seed, **dict(params or {})})
    order = [target] + [c for c in frame.columns if c != target]
    return generator.fit(frame[order], schema)


def synthesize_rare(gen, target: str, value: Any, n_rows: int, *, seed: int = 0,
                    real: pd.DataFrame | None = None, max_rounds: int = 5) -> pd.DataFrame:
    """n_rows synthetic rows with `target` == value; with `real`, rows equal to a real row are drawn again
    (ConditionError after `max_rounds` if copies remain) and the columns follow `real`'s order."""
    n_rows = check_count(n_rows, "synthetic rows")
    rng = np.random.default_rng(seed)
    rows = gen.sample(n_rows, seed=int(rng.integers(2**31)), conditions={target: value})
    if real is not None:
        for _ in range(max_rounds):
            copies = copied_rows(rows, real)
            if not copies.any():
                break
            redraw = gen.sample(int(copies.sum()), seed=int(rng.integers(2**31)), conditions={target: value})
            rows = pd.concat([rows[~copies], redraw], ignore_index=True)
        else:
            if copied_rows(rows, real).any():
                raise ConditionError(f"synthetic rows for {target}={value!r} keep copying real rows after "
                                     f"{max_rounds} redraws; use a generator that does not reuse real values "
                                     "(autoregressive) or larger cart leaves (min_samples_leaf)")
        rows = rows[list(real.columns)]
    return rows.reset_index(drop=True)


def augment_frame(frame: pd.DataFrame, target: str, value: Any = None, n_rows: int | None = None,
                  generator: Any = "autoregressive", seed: int = 0, *, ratio: float | None = None,
                  params: Mapping[str, Any] | None = None, flag: str = FLAG_COLUMN) -> pd.DataFrame:
    """`frame` (unchanged) plus synthetic rows of `target` == value (default: the rarest value), with a boolean
    `flag` column that is True on synthetic rows only.

    `n_rows` synthetic rows, or `ratio` times the number of real rows of that value. The generator (registry
    name or unfitted instance) is fitted on the frame itself; no synthetic row equals a real one.
    """
    _check_target(frame, target)
    if flag in frame.columns:
        raise InvalidDataError(f"the frame already has a column {flag!r}; pass another flag name")
    if (n_rows is None) == (ratio is None):
        raise InvalidDataError("give exactly one of n_rows and ratio")
    if ratio is not None and not ratio > 0:
        raise InvalidDataError(f"ratio must be positive, got {ratio!r}")
    gen = fit_for_augmentation(frame, target, generator, params=params, seed=seed)
    # typed by the model (a value typed on a command line arrives as text); unseen values fail here
    value = gen.check_conditions({target: rare_value(frame, target) if value is None else value})[target]
    if n_rows is None:
        n_rows = max(int(round(ratio * int((frame[target] == value).sum()))), 1)
    synthetic = synthesize_rare(gen, target, value, n_rows, seed=seed, real=frame)
    out = pd.concat([frame.assign(**{flag: False}), synthetic.assign(**{flag: True})], ignore_index=True)
    return out


def copied_rows(synthetic: pd.DataFrame, real: pd.DataFrame) -> np.ndarray:
    """Boolean mask of synthetic rows equal, in every shared column, to some real row (nulls equal nulls)."""
    columns = [c for c in real.columns if c in synthetic.columns]
    def key(f: pd.DataFrame) -> pd.Series:  # every kind of null (None, NaN, NA, NaT) as one token
        v = f[columns].astype(object)
        return pd.util.hash_pandas_object(v.where(v.notna(), "<null>").astype(str), index=False)

    return np.asarray(key(synthetic).isin(set(key(real))), dtype=bool)


def _check_target(frame: pd.DataFrame, target: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise InvalidDataError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    if target not in frame.columns:
        raise InvalidDataError(f"target column {target!r} is not in the frame; columns are {list(frame.columns)}")

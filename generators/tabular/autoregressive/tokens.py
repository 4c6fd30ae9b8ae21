"""Columns <-> tokens: categoricals are their codes; numerics are frequent exact values or quantile bins."""

from __future__ import annotations

import numpy as np


def fit_numeric_tokens(x: np.ndarray, max_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Atoms (values frequent enough to be a token of their own) and bin edges for the rest."""
    vals, counts = np.unique(x, return_counts=True)
    if len(vals) <= max_bins:
        return vals.astype(float), np.zeros(0)
    atoms = vals[counts >= len(x) / max_bins]
    rest = x[~np.isin(x, atoms)]
    n_bins = max(max_bins - len(atoms), 1)
    edges = np.unique(np.quantile(rest, np.linspace(0, 1, n_bins + 1)))
    if len(edges) < 2:  # the rest is one value: make it an atom
        return np.union1d(atoms, np.unique(rest)).astype(float), np.zeros(0)
    return atoms.astype(float), edges.astype(float)


def numeric_to_tokens(x: np.ndarray, atoms: np.ndarray, edges: np.ndarray) -> np.ndarray:
    tok = np.empty(len(x), dtype=np.int64)
    is_atom = np.isin(x, atoms)
    tok[is_atom] = np.searchsorted(atoms, x[is_atom])
    if len(edges):
        b = np.clip(np.searchsorted(edges, x[~is_atom], side="right") - 1, 0, len(edges) - 2)
        tok[~is_atom] = len(atoms) + b
    return tok


def _integer_limits(edges: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half-open whole-number spans [lo, hi) of bins b (the last bin includes its upper edge)."""
    lo, hi = edges[b], edges[b + 1]
    last = b == len(edges) - 2
    lo_i, hi_i = np.ceil(lo), np.where(last, np.floor(hi) + 1, np.ceil(hi))
    return lo_i, np.maximum(hi_i, lo_i + 1)


def _integer_bounds(low: float | None, high: float | None, low_inclusive: bool, high_inclusive: bool
                    ) -> tuple[float, float]:
    """The whole numbers of a range as a half-open span [a, b)."""
    a = -np.inf if low is None else np.ceil(low) + (1 if not low_inclusive and low == np.ceil(low) else 0)
    b = np.inf if high is None else np.floor(high) + (0 if not high_inclusive and high == np.floor(high) else 1)
    return a, b


def range_token_weights(atoms: np.ndarray, edges: np.ndarray, integral: bool, low: float | None,
                        high: float | None, low_inclusive: bool = True, high_inclusive: bool = True) -> np.ndarray:
    """Per token, the share of its values inside the range (atoms 0 or 1; a bin its covered share, values being
    uniform inside a bin), so that token probabilities times these weights give the range's token distribution."""
    inside = np.ones(len(atoms), bool)
    if low is not None:
        inside &= (atoms >= low) if low_inclusive else (atoms > low)
    if high is not None:
        inside &= (atoms <= high) if high_inclusive else (atoms < high)
    w = [inside.astype(float)]
    if len(edges):
        b = np.arange(len(edges) - 1)
        if integral:
            lo, hi = _integer_limits(edges, b)
            a, z = _integer_bounds(low, high, low_inclusive, high_inclusive)
        else:
            lo, hi = edges[b], edges[b + 1]
            a, z = (-np.inf if low is None else low), (np.inf if high is None else high)
        covered = np.clip(np.minimum(hi, z) - np.maximum(lo, a), 0, None)
        w.append(np.where(hi > lo, covered / np.maximum(hi - lo, 1e-300), (lo >= a) & (lo <= z)))
    return np.concatenate(w)


def tokens_to_numeric(tok: np.ndarray, atoms: np.ndarray, edges: np.ndarray, rng: np.random.Generator,
                      integral: bool = False, bounds: tuple | None = None) -> np.ndarray:
    """Atoms map to their value; a bin token to a uniform draw inside the bin (inside its part within `bounds`,
    (low, high, low_inclusive, high_inclusive), when given).

    For a column of whole numbers the draw is a uniform whole number of the bin that is not an atom (atoms have
    their own tokens), so rounding does not pile extra mass onto the atoms or across bin edges.
    """
    out = np.empty(len(tok))
    a = tok < len(atoms)
    out[a] = atoms[tok[a]]
    if len(edges):
        b = tok[~a] - len(atoms)
        lo, hi = edges[b], edges[b + 1]
        if not integral:
            if bounds is not None:
                lo = lo if bounds[0] is None else np.maximum(lo, bounds[0])
                hi = hi if bounds[1] is None else np.minimum(hi, bounds[1])
            out[~a] = lo + rng.random(len(b)) * (hi - lo)
        else:
            lo_i, hi_i = _integer_limits(edges, b)
            if bounds is not None:
                lo_b, hi_b = _integer_bounds(*bounds)
                lo_i, hi_i = np.maximum(lo_i, lo_b), np.minimum(hi_i, hi_b)
                hi_i = np.maximum(hi_i, lo_i + 1)
            draw = lo_i + np.floor(rng.random(len(b)) * (hi_i - lo_i))
            for _ in range(20):
                bad = np.isin(draw, atoms)
                if not bad.any():
                    break
                draw[bad] = lo_i[bad] + np.floor(rng.random(int(bad.sum())) * (hi_i[bad] - lo_i[bad]))
            out[~a] = draw
    return out

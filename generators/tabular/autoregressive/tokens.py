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


def tokens_to_numeric(tok: np.ndarray, atoms: np.ndarray, edges: np.ndarray, rng: np.random.Generator,
                      integral: bool = False) -> np.ndarray:
    """Atoms map to their value; a bin token to a uniform draw inside the bin.

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
            out[~a] = lo + rng.random(len(b)) * (hi - lo)
        else:
            last = b == len(edges) - 2  # the last bin includes its upper edge
            lo_i, hi_i = np.ceil(lo), np.where(last, np.floor(hi) + 1, np.ceil(hi))
            hi_i = np.maximum(hi_i, lo_i + 1)
            draw = lo_i + np.floor(rng.random(len(b)) * (hi_i - lo_i))
            for _ in range(20):
                bad = np.isin(draw, atoms)
                if not bad.any():
                    break
                draw[bad] = lo_i[bad] + np.floor(rng.random(int(bad.sum())) * (hi_i[bad] - lo_i[bad]))
            out[~a] = draw
    return out

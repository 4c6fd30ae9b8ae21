"""Gaussian-mixture generator: numerics to normal scores, categoricals one-hot, components chosen by BIC."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from generators.base import check_array_keys, take_array
from generators.codec import ModelColumn
from generators.errors import ModelFormatError
from generators.tabular.base import TableGenerator

_N_QUANTILES = 256


class GMMGenerator(TableGenerator):
    """A full-covariance Gaussian mixture over transformed columns; fast and dependable on small tables.

    Numeric columns go through their empirical quantiles to standard normal scores; categoricals become
    one-hot blocks decoded by argmax. The number of components is the BIC minimum over 1..max_components,
    chosen on a subsample of at most `bic_rows` rows.
    """

    name = "gmm"

    def __init__(self, *, max_components: int = 10, bic_rows: int = 3000, max_fit_rows: int = 10000,
                 seed: int = 0):
        self.max_components = max_components
        self.bic_rows = bic_rows
        self.max_fit_rows = max_fit_rows
        self.seed = seed

    def _encode(self, frame: pd.DataFrame) -> np.ndarray:
        parts = []
        for j, c in enumerate(self.model_columns_):
            x = frame[c.name].to_numpy()
            if c.type == "categorical":
                parts.append(np.eye(c.n_categories)[x.astype(np.int64)])
            else:
                q = self.quantiles_[j]
                z = np.interp(x, q, self._levels)
                parts.append(z[:, None])
        return np.hstack(parts)

    @property
    def _levels(self) -> np.ndarray:
        p = np.linspace(0, 1, _N_QUANTILES)
        return ndtri(np.clip(p, 1e-3, 1 - 1e-3))

    def _fit(self, frame: pd.DataFrame, columns: list[ModelColumn]) -> None:
        from sklearn.mixture import GaussianMixture

        self.model_columns_ = columns
        rng = np.random.default_rng(self.seed)
        levels = np.linspace(0, 1, _N_QUANTILES)
        self.quantiles_ = {j: np.ascontiguousarray(np.quantile(frame[c.name].to_numpy(), levels), dtype=np.float64)
                           for j, c in enumerate(columns) if c.type == "numeric"}
        Z = self._encode(frame)
        sub = Z[rng.permutation(len(Z))[: self.bic_rows]]
        candidates = sorted({k for k in (1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 25, 30) if k <= self.max_components}
                            | {self.max_components})
        best_k, best_bic = 1, np.inf
        for k in candidates:
            if k > max(1, len(sub) // 5):
                break
            gm = GaussianMixture(k, covariance_type="full", reg_covar=1e-3, random_state=self.seed,
                                 max_iter=100).fit(sub)
            bic = gm.bic(sub)
            if bic < best_bic:
                best_k, best_bic = k, bic
        fit_rows = Z[rng.permutation(len(Z))[: self.max_fit_rows]]
        gm = GaussianMixture(best_k, covariance_type="full", reg_covar=1e-3, random_state=self.seed,
                             max_iter=200).fit(fit_rows)
        self.n_components_ = best_k
        # canonical: C-contiguous float64, as `load` rebuilds them (the layout picks the BLAS path in `_sample`)
        self.weights_ = np.ascontiguousarray(gm.weights_ / gm.weights_.sum(), dtype=np.float64)
        self.means_ = np.ascontiguousarray(gm.means_, dtype=np.float64)
        self.cholesky_ = np.ascontiguousarray(np.linalg.cholesky(gm.covariances_), dtype=np.float64)

    def _sample(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        comp = rng.choice(len(self.weights_), size=n, p=self.weights_)
        eps = rng.standard_normal((n, self.means_.shape[1]))
        Z = np.empty_like(eps)
        for k in range(len(self.weights_)):
            idx = comp == k
            Z[idx] = self.means_[k] + eps[idx] @ self.cholesky_[k].T
        return self._decode(Z)

    def _blocks(self) -> list[slice]:
        out, pos = [], 0
        for c in self.model_columns_:
            width = c.n_categories if c.type == "categorical" else 1
            out.append(slice(pos, pos + width))
            pos += width
        return out

    def _can_condition(self, constraints: dict) -> bool:
        # categorical values restrict the components; at most one range (a truncated normal, or checked per draw)
        return sum(not isinstance(v, int) for v in constraints.values()) <= 1

    def _z_event(self, constraints: dict) -> tuple[dict[int, int], tuple | None]:
        """The conditions in z-space: {model column: code} for categoricals, (coordinate, za, zb) for the range."""
        blocks = self._blocks()
        codes, span = {}, None
        for j, c in enumerate(self.model_columns_):
            cond = constraints.get(c.name)
            if cond is None:
                continue
            if isinstance(cond, int):
                codes[j] = cond
                continue
            za, zb = self._z_span(self.quantiles_[j], cond)
            span = (blocks[j].start, za, zb)
        return codes, span

    def _z_span(self, q: np.ndarray, cond) -> tuple[float, float]:
        """The normal scores [za, zb] whose decoded value (np.interp(z, levels, q), flat over repeated quantiles
        and clamped beyond them) lies in the range."""
        levels = self._levels
        za, zb = -np.inf, np.inf
        if cond.low is not None:
            i = int(np.searchsorted(q, cond.low, side="left" if cond.low_inclusive else "right"))
            if i >= len(q):
                za = np.inf
            elif i > 0:
                za = levels[i - 1] + (cond.low - q[i - 1]) / (q[i] - q[i - 1]) * (levels[i] - levels[i - 1])
        if cond.high is not None:
            i = int(np.searchsorted(q, cond.high, side="right" if cond.high_inclusive else "left")) - 1
            if i < 0:
                zb = -np.inf
            elif i < len(q) - 1:
                zb = levels[i] + (cond.high - q[i]) / (q[i + 1] - q[i]) * (levels[i + 1] - levels[i])
        return float(za), float(zb)

    def _meets(self, Z: np.ndarray, codes: dict[int, int], span: tuple | None) -> np.ndarray:
        blocks = self._blocks()
        ok = np.ones(len(Z), dtype=bool)
        for j, code in codes.items():
            ok &= Z[:, blocks[j]].argmax(axis=1) == code
        if span is not None:
            ok &= (Z[:, span[0]] >= span[1]) & (Z[:, span[0]] <= span[2])
        return ok

    def _sample_conditioned(self, n: int, rng: np.random.Generator, constraints: dict) -> pd.DataFrame:
        """The mixture restricted to the conditions: each component weighted by the chance its draws meet them,
        then draws from the chosen components that meet them. A category is the argmax of its one-hot block, so
        a component's chance is estimated from 4,096 of its draws; a lone range is exact (a truncated normal)."""
        codes, span = self._z_event(constraints)
        k_all, d = self.means_.shape
        if not codes:
            return self._decode(self._truncated(n, rng, *span))
        chance = np.empty(k_all)
        for k in range(k_all):
            probe = self.means_[k] + rng.standard_normal((4096, d)) @ self.cholesky_[k].T
            chance[k] = self._meets(probe, codes, span).mean()
        post = self.weights_ * chance
        if post.sum() == 0:
            return self._decode(np.zeros((0, d)))
        comp = rng.choice(k_all, size=n, p=post / post.sum())
        Z = np.empty((n, d))
        filled = np.zeros(n, dtype=bool)
        for k in np.unique(comp):
            idx = np.flatnonzero(comp == k)
            size = int(len(idx) / chance[k] * 1.3) + 16
            draws = self.means_[k] + rng.standard_normal((size, d)) @ self.cholesky_[k].T
            hits = draws[self._meets(draws, codes, span)][: len(idx)]
            Z[idx[: len(hits)]] = hits
            filled[idx[: len(hits)]] = True
        return self._decode(Z[filled])  # the few rows short are drawn again by the caller

    def _truncated(self, n: int, rng: np.random.Generator, coord: int, za: float, zb: float) -> np.ndarray:
        """Draws of the mixture given one coordinate in [za, zb]: components weighted by their mass there, the
        coordinate from its truncated normal, the others from their Gaussian given it."""
        k_all, d = self.means_.shape
        covs = [self.cholesky_[k] @ self.cholesky_[k].T for k in range(k_all)]
        sd = np.sqrt([c[coord, coord] for c in covs])
        mu = self.means_[:, coord]
        mass = ndtr((zb - mu) / sd) - ndtr((za - mu) / sd)
        post = self.weights_ * mass
        if not post.sum() > 0:
            return np.zeros((0, d))
        comp = rng.choice(k_all, size=n, p=post / post.sum())
        Z = np.empty((n, d))
        other = np.delete(np.arange(d), coord)
        for k in np.unique(comp):
            idx = np.flatnonzero(comp == k)
            lo, hi = ndtr((za - mu[k]) / sd[k]), ndtr((zb - mu[k]) / sd[k])
            u = lo + rng.random(len(idx)) * (hi - lo)
            z = np.clip(mu[k] + sd[k] * ndtri(np.clip(u, 1e-300, 1 - 1e-16)), za, zb)
            Z[idx, coord] = z
            if not len(other):
                continue
            c = covs[k]
            gain = c[other, coord] / c[coord, coord]
            cov = c[np.ix_(other, other)] - np.outer(gain, c[coord, other])
            chol = np.linalg.cholesky((cov + cov.T) / 2 + 1e-9 * np.eye(len(other)))
            Z[np.ix_(idx, other)] = (self.means_[k, other] + np.outer(z - mu[k], gain)
                                     + rng.standard_normal((len(idx), len(other))) @ chol.T)
        return Z

    def _decode(self, Z: np.ndarray) -> pd.DataFrame:
        out, pos = {}, 0
        for j, c in enumerate(self.model_columns_):
            if c.type == "categorical":
                out[c.name] = Z[:, pos:pos + c.n_categories].argmax(axis=1).astype(np.int64)
                pos += c.n_categories
            else:
                out[c.name] = np.interp(Z[:, pos], self._levels, self.quantiles_[j])
                pos += 1
        return pd.DataFrame(out)

    def _get_state(self):
        arrays = {"weights": self.weights_, "means": self.means_, "cholesky": self.cholesky_}
        arrays.update({f"quantiles{j}": q for j, q in self.quantiles_.items()})
        return {"n_components": self.n_components_, "numeric": sorted(self.quantiles_)}, arrays

    def _set_state(self, state, arrays):
        k = state.get("n_components")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ModelFormatError(f"n_components must be a positive integer, not {str(k)[:20]!r}")
        numeric = [j for j, c in enumerate(self.model_columns_) if c.type == "numeric"]
        if state.get("numeric") != numeric:
            raise ModelFormatError(f"state lists numeric columns {str(state.get('numeric'))[:50]}, "
                                   f"the model has {numeric}")
        check_array_keys(arrays, ["weights", "means", "cholesky", *(f"quantiles{j}" for j in numeric)])
        d = sum(c.n_categories if c.type == "categorical" else 1 for c in self.model_columns_)
        weights = take_array(arrays, "weights", np.float64, (k,))
        if (weights < 0).any() or abs(weights.sum() - 1) > 1e-8:
            raise ModelFormatError("array 'weights' is not a probability distribution")
        self.n_components_ = k
        self.weights_ = weights
        self.means_ = take_array(arrays, "means", np.float64, (k, d))
        self.cholesky_ = take_array(arrays, "cholesky", np.float64, (k, d, d))
        self.quantiles_ = {}
        for j in numeric:
            q = take_array(arrays, f"quantiles{j}", np.float64, (_N_QUANTILES,))
            if (np.diff(q) < 0).any():
                raise ModelFormatError(f"array 'quantiles{j}' is not sorted")
            self.quantiles_[j] = q

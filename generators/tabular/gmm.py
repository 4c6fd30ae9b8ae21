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
        # categorical values fix their one-hot block (Gaussian conditioning); one range is a truncated normal
        return sum(not isinstance(v, int) for v in constraints.values()) <= 1

    def _sample_conditioned(self, n: int, rng: np.random.Generator, constraints: dict) -> pd.DataFrame:
        """The mixture conditioned analytically: component weights by how well each explains the fixed one-hot
        blocks (and the range's mass), the other coordinates from each component's conditional Gaussian; a
        range is drawn from the conditional normal truncated to it, the rest conditioned on that draw."""
        blocks = self._blocks()
        d = self.means_.shape[1]
        z_fixed = np.full(d, np.nan)
        r_coord, za, zb = None, -np.inf, np.inf
        for j, c in enumerate(self.model_columns_):
            cond = constraints.get(c.name)
            if cond is None:
                continue
            if isinstance(cond, int):
                z_fixed[blocks[j]] = np.eye(c.n_categories)[cond]
            else:
                r_coord = blocks[j].start
                q = self.quantiles_[j]
                low, high = cond.low, cond.high
                if np.all(q == np.round(q)):  # whole numbers: the values that round into the range
                    if low is not None:
                        low = np.ceil(low) + (1 if not cond.low_inclusive and low == np.ceil(low) else 0) - 0.5
                    if high is not None:
                        high = np.floor(high) - (1 if not cond.high_inclusive and high == np.floor(high) else 0) + 0.5
                if low is not None:
                    za = float(np.interp(low, q, self._levels, left=-np.inf, right=np.inf))
                if high is not None:
                    zb = float(np.interp(high, q, self._levels, left=-np.inf, right=np.inf))
        fixed = np.flatnonzero(~np.isnan(z_fixed))
        rest = np.flatnonzero(np.isnan(z_fixed))
        k_all = len(self.weights_)
        log_post = np.log(np.maximum(self.weights_, 1e-300))
        cond_mean, cond_cov = [], []
        for k in range(k_all):
            cov = self.cholesky_[k] @ self.cholesky_[k].T
            mu = self.means_[k]
            if len(fixed):
                s_ff = cov[np.ix_(fixed, fixed)]
                s_rf = cov[np.ix_(rest, fixed)]
                diff = z_fixed[fixed] - mu[fixed]
                chol = np.linalg.cholesky(s_ff)
                sol = np.linalg.solve(chol, diff)
                log_post[k] += -0.5 * sol @ sol - np.log(np.diag(chol)).sum()
                gain = np.linalg.solve(s_ff, s_rf.T).T
                m_k = mu[rest] + gain @ diff
                c_k = cov[np.ix_(rest, rest)] - gain @ s_rf.T
            else:
                m_k, c_k = mu[rest], cov[np.ix_(rest, rest)]
            if r_coord is not None:
                i = int(np.searchsorted(rest, r_coord))
                sd = np.sqrt(c_k[i, i])
                mass = ndtr((zb - m_k[i]) / sd) - ndtr((za - m_k[i]) / sd)
                log_post[k] += np.log(max(mass, 1e-300))
            cond_mean.append(m_k)
            cond_cov.append((c_k + c_k.T) / 2)
        post = np.exp(log_post - log_post.max())
        comp = rng.choice(k_all, size=n, p=post / post.sum())
        Z = np.tile(np.where(np.isnan(z_fixed), 0.0, z_fixed), (n, 1))
        for k in range(k_all):
            idx = np.flatnonzero(comp == k)
            if not len(idx):
                continue
            m_k, c_k = cond_mean[k], cond_cov[k]
            if r_coord is None:
                eps = rng.standard_normal((len(idx), len(rest)))
                Z[np.ix_(idx, rest)] = m_k + eps @ np.linalg.cholesky(c_k + 1e-9 * np.eye(len(rest))).T
                continue
            i = int(np.searchsorted(rest, r_coord))
            sd = np.sqrt(c_k[i, i])
            lo, hi = ndtr((za - m_k[i]) / sd), ndtr((zb - m_k[i]) / sd)
            u = lo + rng.random(len(idx)) * (hi - lo)
            z_r = m_k[i] + sd * ndtri(np.clip(u, 1e-300, 1 - 1e-16))
            Z[idx, r_coord] = z_r
            other = np.delete(np.arange(len(rest)), i)
            if len(other):
                g = c_k[other, i] / c_k[i, i]
                mean = m_k[other] + np.outer(z_r - m_k[i], g)
                cov = c_k[np.ix_(other, other)] - np.outer(g, c_k[i, other])
                eps = rng.standard_normal((len(idx), len(other)))
                chol = np.linalg.cholesky((cov + cov.T) / 2 + 1e-9 * np.eye(len(other)))
                Z[np.ix_(idx, rest[other])] = mean + eps @ chol.T
        return self._decode(Z)

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

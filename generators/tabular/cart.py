"""Sequential decision-tree generator in the manner of R's synthpop."""

from __future__ import annotations

import numpy as np
import pandas as pd

from generators.base import check_array_keys, take_array
from generators.codec import ModelColumn
from generators.errors import ModelFormatError
from generators.tabular.base import TableGenerator

_KEYS = ("left", "right", "feature", "threshold", "start", "count", "values")


def tree_leaves(X: np.ndarray, left: np.ndarray, right: np.ndarray, feature: np.ndarray,
                threshold: np.ndarray) -> np.ndarray:
    """Leaf node index of every row of X in a tree stored as sklearn-style arrays."""
    rows = np.arange(len(X))
    node = np.zeros(len(X), dtype=np.int64)
    while True:
        inner = left[node] != -1
        if not inner.any():
            return node
        f = np.maximum(feature[node], 0)
        go_left = X[rows, f] <= threshold[node]
        node = np.where(inner, np.where(go_left, left[node], right[node]), node)


class CARTGenerator(TableGenerator):
    """Each column is drawn from the training values in the leaf of a tree fitted on the columns before it.

    The first column is drawn from its observed values. `min_samples_leaf` is the privacy knob: a larger leaf
    mixes more real rows into each draw.
    """

    name = "cart"

    def __init__(self, *, min_samples_leaf: int = 5, max_depth: int | None = None, seed: int = 0):
        self.min_samples_leaf = min_samples_leaf
        self.max_depth = max_depth
        self.seed = seed

    def _fit(self, frame: pd.DataFrame, columns: list[ModelColumn]) -> None:
        from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

        X = frame.to_numpy(dtype=np.float64)
        self.trees_: list[dict[str, np.ndarray]] = []
        for j, col in enumerate(columns):
            y = X[:, j]
            if j == 0:
                t = {"left": np.array([-1]), "right": np.array([-1]), "feature": np.array([-2]),
                     "threshold": np.array([0.0])}
            else:
                Model = DecisionTreeClassifier if col.type == "categorical" else DecisionTreeRegressor
                tree = Model(min_samples_leaf=self.min_samples_leaf, max_depth=self.max_depth,
                             random_state=self.seed).fit(X[:, :j], y).tree_
                t = {"left": tree.children_left.astype(np.int64), "right": tree.children_right.astype(np.int64),
                     "feature": tree.feature.astype(np.int64), "threshold": tree.threshold.astype(np.float64)}
            leaves = tree_leaves(X[:, :max(j, 1)], t["left"], t["right"], t["feature"], t["threshold"])
            order = np.argsort(leaves, kind="stable")
            count = np.bincount(leaves, minlength=len(t["left"])).astype(np.int64)
            t["start"] = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
            t["count"] = count
            t["values"] = y[order]
            self.trees_.append({k: np.ascontiguousarray(v) for k, v in t.items()})

    def _sample(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        m = len(self.model_columns_)
        X = np.zeros((n, m))
        for j, t in enumerate(self.trees_):
            leaves = tree_leaves(X[:, :max(j, 1)], t["left"], t["right"], t["feature"], t["threshold"])
            pick = t["start"][leaves] + np.floor(rng.random(n) * t["count"][leaves]).astype(np.int64)
            X[:, j] = t["values"][pick]
        return pd.DataFrame({c.name: (X[:, j].astype(np.int64) if c.type == "categorical" else X[:, j])
                             for j, c in enumerate(self.model_columns_)})

    def _can_condition(self, constraints: dict) -> bool:
        # trees of later columns split on earlier ones only: conditions on a prefix of the column order are exact
        index = [j for j, c in enumerate(self.model_columns_) if c.name in constraints]
        return index == list(range(len(index)))

    def _sample_conditioned(self, n: int, rng: np.random.Generator, constraints: dict) -> pd.DataFrame:
        """Conditioned columns (a prefix of the order) drawn from the leaf values that meet them, each row
        weighted by the share of its leaf that does; the rest drawn as usual; rows resampled by weight."""
        m = len(self.model_columns_)
        X = np.zeros((n, m))
        log_w = np.zeros(n)
        for j, t in enumerate(self.trees_):
            leaves = tree_leaves(X[:, :max(j, 1)], t["left"], t["right"], t["feature"], t["threshold"])
            start, count = t["start"][leaves], t["count"][leaves]
            cond = constraints.get(self.model_columns_[j].name)
            if cond is None:
                pick = start + np.floor(rng.random(n) * count).astype(np.int64)
            else:
                v = t["values"]
                ok = (v == cond) if isinstance(cond, int) else np.asarray(cond.contains(v), dtype=bool)
                ranks = np.concatenate([[0], np.cumsum(ok)])
                hits = ranks[start + count] - ranks[start]
                with np.errstate(divide="ignore"):
                    log_w += np.log(hits / count)
                r = ranks[start] + np.floor(rng.random(n) * np.maximum(hits, 1)).astype(np.int64)
                pick = np.clip(np.searchsorted(ranks, r + 1, side="left") - 1, 0, len(v) - 1)
            X[:, j] = t["values"][pick]
        if (log_w != log_w[0]).any():
            if not np.isfinite(log_w).any():
                return pd.DataFrame({c.name: np.zeros(0) for c in self.model_columns_})
            w = np.exp(log_w - log_w.max())
            cum = np.cumsum(w / w.sum())
            X = X[rng.permutation(np.minimum(np.searchsorted(cum, (rng.random() + np.arange(n)) / n), n - 1))]
        return pd.DataFrame({c.name: (X[:, j].astype(np.int64) if c.type == "categorical" else X[:, j])
                             for j, c in enumerate(self.model_columns_)})

    def _get_state(self):
        arrays = {f"tree{j}.{k}": v for j, t in enumerate(self.trees_) for k, v in t.items()}
        return {"n_trees": len(self.trees_)}, arrays

    def _set_state(self, state, arrays):
        m = len(self.model_columns_)
        if state.get("n_trees") != m:
            raise ModelFormatError(f"state has {str(state.get('n_trees'))[:20]} trees for {m} model columns")
        check_array_keys(arrays, [f"tree{j}.{k}" for j in range(m) for k in _KEYS])
        self.trees_ = [self._checked_tree(j, c, arrays) for j, c in enumerate(self.model_columns_)]

    @staticmethod
    def _checked_tree(j: int, col: ModelColumn, arrays) -> dict[str, np.ndarray]:
        """Tree j's arrays, refused unless every row walks down to a leaf holding values of column j's type."""
        t = {k: take_array(arrays, f"tree{j}.{k}", np.float64 if k in ("threshold", "values") else np.int64, ndim=1)
             for k in _KEYS}
        n_nodes, n_values = len(t["left"]), len(t["values"])
        for k in ("right", "feature", "threshold", "start", "count"):
            if len(t[k]) != n_nodes:
                raise ModelFormatError(f"tree {j}: array {k!r} has {len(t[k])} entries for {n_nodes} nodes")
        nodes = np.arange(n_nodes)
        leaf = t["left"] == -1
        inner = ~leaf
        # children come after their parent (sklearn's depth-first order), so every walk ends at a leaf
        if (n_nodes == 0 or (t["right"][leaf] != -1).any() or (t["left"][inner] <= nodes[inner]).any()
                or (t["right"][inner] <= nodes[inner]).any() or (t["left"] >= n_nodes).any()
                or (t["right"] >= n_nodes).any()):
            raise ModelFormatError(f"tree {j}: child links are not a tree")
        if ((t["feature"][inner] < 0) | (t["feature"][inner] >= max(j, 1))).any() or (t["feature"][leaf] != -2).any():
            raise ModelFormatError(f"tree {j}: split features must name one of the {j} earlier columns")
        start, count = t["start"][leaf], t["count"][leaf]
        if (count < 1).any() or (start < 0).any() or (start + count > n_values).any() or (t["count"][inner] != 0).any():
            raise ModelFormatError(f"tree {j}: leaf value ranges (start, count) are negative, empty or beyond the "
                                   f"{n_values} values")
        v = t["values"]
        if col.type == "categorical" and ((v != np.round(v)) | (v < 0) | (v >= col.n_categories)).any():
            raise ModelFormatError(f"tree {j}: values are not category codes of {col.name!r} "
                                   f"(0..{col.n_categories - 1})")
        return t

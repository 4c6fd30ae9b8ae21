"""Sequential decision-tree generator in the manner of R's synthpop."""

from __future__ import annotations

import numpy as np
import pandas as pd

from generators.base import Generator
from generators.codec import ModelColumn


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


class CARTGenerator(Generator):
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
            self.trees_.append(t)

    def _sample(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        m = len(self.model_columns_)
        X = np.zeros((n, m))
        for j, t in enumerate(self.trees_):
            leaves = tree_leaves(X[:, :max(j, 1)], t["left"], t["right"], t["feature"], t["threshold"])
            pick = t["start"][leaves] + np.floor(rng.random(n) * t["count"][leaves]).astype(np.int64)
            X[:, j] = t["values"][pick]
        return pd.DataFrame({c.name: (X[:, j].astype(np.int64) if c.type == "categorical" else X[:, j])
                             for j, c in enumerate(self.model_columns_)})

    def _get_state(self):
        arrays = {f"tree{j}.{k}": v for j, t in enumerate(self.trees_) for k, v in t.items()}
        return {"n_trees": len(self.trees_)}, arrays

    def _set_state(self, state, arrays):
        keys = ("left", "right", "feature", "threshold", "start", "count", "values")
        self.trees_ = [{k: arrays[f"tree{j}.{k}"] for k in keys} for j in range(state["n_trees"])]

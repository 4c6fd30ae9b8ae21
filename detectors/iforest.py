"""IsolationForest behind the Detector protocol, saved as tree arrays (no pickle) and scored from them."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from detectors.base import Detector
from detectors.persistence import BadState, positive_int, require
from modelkit.files import WEIGHTS_FILE, canonical

_EULER_GAMMA = 0.5772156649015329


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): average path length of an unsuccessful search in a binary search tree of n items."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + _EULER_GAMMA) - 2.0 * (n[big] - 1.0) / n[big]
    return out


class IsolationForest(Detector):
    """scikit-learn's IsolationForest; score = 2^(-E[h(x)] / c(max_samples)), higher = more anomalous.

    After fitting, each tree is kept as flat arrays (children, split feature and threshold, node sizes) and scoring
    walks those arrays, so a saved model is plain tensors and a loaded one scores exactly like the fitted one.
    """

    name = "iforest"
    score_modes = ("isolation",)
    default_score_mode = "isolation"

    def __init__(self, *, n_estimators: int = 100, max_samples: int | str = "auto", max_features: float = 1.0,
                 kind: str = "auto", contamination: float = 0.01, threshold: float | None = None,
                 window_length: int = 32, window_stride: int = 1, seed: int = 0):
        super().__init__(kind=kind, contamination=contamination, threshold=threshold,
                         window_length=window_length, window_stride=window_stride, seed=seed)
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features

    def _fit(self, x: np.ndarray) -> None:
        from sklearn.ensemble import IsolationForest as SkIsolationForest

        flat = x.reshape(len(x), -1)
        forest = SkIsolationForest(n_estimators=int(self.n_estimators), max_samples=self.max_samples,
                                   max_features=self.max_features, random_state=int(self.seed), n_jobs=1)
        forest.fit(flat)
        self.max_samples_ = int(forest.max_samples_)
        self.n_features_in_ = flat.shape[1]
        subsample = forest._max_features != flat.shape[1]
        trees = []
        for estimator, features in zip(forest.estimators_, forest.estimators_features_):
            t = estimator.tree_
            trees.append({
                "children_left": t.children_left.astype(np.int64), "children_right": t.children_right.astype(np.int64),
                "feature": t.feature.astype(np.int64), "threshold": t.threshold.astype(np.float64),
                "n_node_samples": t.n_node_samples.astype(np.int64),
                "features": np.asarray(features, dtype=np.int64) if subsample
                else np.arange(flat.shape[1], dtype=np.int64),
            })
        self._set_trees(trees)

    def _set_trees(self, trees: list[dict[str, np.ndarray]]) -> None:
        trees = [{k: canonical(tree[k], self._DTYPES[k]) for k in self._KEYS} for tree in trees]
        self.trees_ = trees
        for tree in trees:
            depth = np.zeros(len(tree["children_left"]), dtype=np.float64)
            for node in range(len(depth)):  # children always have larger ids than their parent
                left, right = tree["children_left"][node], tree["children_right"][node]
                if left >= 0:
                    depth[left] = depth[right] = depth[node] + 1
            # Path length of an item ending in a leaf: its depth plus c(size) for the items left unsplit there.
            tree["path_length"] = canonical(depth + average_path_length(tree["n_node_samples"]), np.float64)
            # the input column each node splits on (leaves: any valid column, never read)
            tree["split_column"] = canonical(tree["features"][np.maximum(tree["feature"], 0)], np.int64)

    def _score_prepared(self, x: np.ndarray, mode: str) -> np.ndarray:
        # Trees were grown on float32 (sklearn's tree dtype); cast the same way so splits agree exactly.
        flat = np.ascontiguousarray(x.reshape(len(x), -1).astype(np.float32).astype(np.float64))
        depths = np.zeros(len(flat))
        # Rows go through every tree a block at a time, so a block's values stay in cache across the trees; each
        # row still adds its trees' path lengths in tree order (the same sums, bit for bit, at any block size).
        for start in range(0, len(flat), self._SCORE_BLOCK):
            block = flat[start:start + self._SCORE_BLOCK]
            total = depths[start:start + self._SCORE_BLOCK]
            for tree in self.trees_:
                total += tree["path_length"][self._leaves(tree, block)]
        denominator = len(self.trees_) * average_path_length(np.array([self.max_samples_]))[0]
        return 2.0 ** (-depths / denominator)

    _SCORE_BLOCK = 16_384

    @staticmethod
    def _leaves(tree: dict[str, np.ndarray], block: np.ndarray) -> np.ndarray:
        """The leaf each row of `block` ends in: only rows still inside the tree take the next step."""
        left_of, right_of = tree["children_left"], tree["children_right"]
        split_on, threshold = tree["split_column"], tree["threshold"]
        leaf = np.zeros(len(block), dtype=np.int64)
        rows = np.arange(len(block))
        node = leaf.copy()
        # Children have larger ids than their parent (checked at load), so no walk takes more steps.
        for _ in range(len(left_of)):
            left = left_of[node]
            inner = left >= 0
            if not inner.all():
                leaf[rows[~inner]] = node[~inner]
                rows, node, left = rows[inner], node[inner], left[inner]
                if not len(rows):
                    break
            go_left = block[rows, split_on[node]] <= threshold[node]
            node = np.where(go_left, left, right_of[node])
        return leaf

    _KEYS = ("children_left", "children_right", "feature", "threshold", "n_node_samples", "features")
    _DTYPES = {"children_left": np.int64, "children_right": np.int64, "feature": np.int64,
               "threshold": np.float64, "n_node_samples": np.int64, "features": np.int64}

    def _get_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        tensors = {f"tree{i}.{k}": canonical(torch.from_numpy(tree[k]))
                   for i, tree in enumerate(self.trees_) for k in self._KEYS}
        return {"max_samples": self.max_samples_, "n_trees": len(self.trees_),
                "n_features_in": self.n_features_in_}, tensors

    def _set_state(self, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        max_samples = positive_int(require(state, "max_samples", "state"), "max_samples")
        n_trees = positive_int(require(state, "n_trees", "state"), "n_trees")
        n_features = positive_int(require(state, "n_features_in", "state"), "n_features_in")
        if n_features != int(np.prod(self._prepared_shape())):
            raise BadState(f"n_features_in {n_features} differs from the {int(np.prod(self._prepared_shape()))} "
                           f"values per item its {self.kind_} statistics prepare")
        if len(tensors) != n_trees * len(self._KEYS):
            raise BadState(f"{len(tensors)} tree tensors, but {n_trees} trees need {n_trees * len(self._KEYS)}",
                           WEIGHTS_FILE)
        missing = sorted({f"tree{i}.{k}" for i in range(n_trees) for k in self._KEYS} - set(tensors))
        if missing:
            raise BadState(f"missing tensor(s) {missing[:4]}", WEIGHTS_FILE)
        trees = []
        for i in range(n_trees):
            tree = {}
            for k in self._KEYS:
                array = tensors[f"tree{i}.{k}"].numpy()
                if array.dtype != self._DTYPES[k]:
                    raise BadState(f"tensor 'tree{i}.{k}' is {array.dtype}, not {np.dtype(self._DTYPES[k])}",
                                   WEIGHTS_FILE)
                tree[k] = array
            try:
                check_tree(tree, n_features)
            except BadState as exc:
                raise BadState(f"tree {i} is invalid: {exc}", WEIGHTS_FILE) from None
            trees.append(tree)
        self.max_samples_ = max_samples
        self.n_features_in_ = n_features
        self._set_trees(trees)


def check_tree(tree: dict[str, np.ndarray], n_features: int) -> None:
    """Refuse a tree that scoring could loop in or index out of: checks shapes, links, features and node sizes.

    Every child id must exceed its parent's (true of scikit-learn's depth-first trees), which rules out cycles;
    each node but the root has exactly one parent; node sizes are positive and add up.
    """
    left, right, feature = tree["children_left"], tree["children_right"], tree["feature"]
    threshold, sizes, features = tree["threshold"], tree["n_node_samples"], tree["features"]
    n = len(left)
    if n == 0 or any(a.ndim != 1 or len(a) != n for a in (left, right, feature, threshold, sizes)):
        raise BadState("its node arrays are not 1-D arrays of one common, non-zero length")
    if features.ndim != 1 or len(features) == 0 or features.min() < 0 or features.max() >= n_features:
        raise BadState(f"its feature subset is not a list of column ids in [0, {n_features})")
    leaf = left == -1
    if not np.array_equal(leaf, right == -1):
        raise BadState("a node has one child only")
    ids = np.arange(n)
    split = ~leaf
    if not ((left[split] > ids[split]) & (right[split] > ids[split])
            & (left[split] < n) & (right[split] < n)).all():
        raise BadState("a child id is out of range or not larger than its parent's (a cycle?)")
    parents = np.bincount(np.concatenate([left[split], right[split]]), minlength=n)
    if parents[0] != 0 or not (parents[1:] == 1).all():
        raise BadState("a node has no parent or several (the nodes do not form one tree)")
    if not ((feature[split] >= 0).all() and (feature < len(features)).all()):
        raise BadState(f"a split feature is outside the tree's {len(features)} features")
    if not np.isfinite(threshold[split]).all():
        raise BadState("a split threshold is NaN or infinite")
    if not (sizes >= 1).all():
        raise BadState("a node size is not positive")
    if not (sizes[split] == sizes[left[split]] + sizes[right[split]]).all():
        raise BadState("a node's size differs from the sum of its children's")

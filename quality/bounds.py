"""Small-sample bounds: how far an independent real sample may stray from the real table by chance alone.

Every gate check compares a synthetic table with real rows of a given size. A faithful synthetic table is, at
best, one more independent sample of the same population, so each bound below is the value such a sample
exceeds with probability at most `alpha` (one-sided), computed from the sizes involved rather than fixed:

- counts of a rare event (exact copies, nulls, unseen categories): the exact conditional binomial test of two
  rates (`max_count_same_rate`), which works when the reference count is 0;
- values past the real extremes: exchangeability of the pooled sample (`max_count_beyond_range`) and an
  extreme-value (Hill) extrapolation of the real tail for how far past (`tail_limits`);
- shares and AUROCs whose null value is 0.5: their permutation standard errors (`mann_whitney_se`,
  `cluster_share_se`), and a median's order-statistic standard error (`median_se`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def alpha_from_z(z: float) -> float:
    """One-sided tail probability of a standard normal beyond `z` (z = 3 -> 0.00135)."""
    return float(stats.norm.sf(z))


def max_count_same_rate(k_ref: int, n_ref: int, n_new: int, alpha: float) -> int:
    """Largest count of an event among `n_new` rows still consistent with `k_ref` events among `n_ref` rows.

    Exact one-sided conditional test of two binomial (Poisson) rates: given k = k_ref + c events in all, the
    new sample's share is Binomial(k, n_new / (n_ref + n_new)) when both rates are equal. Returns the largest c
    whose p-value P(X >= c) is at least `alpha`; with k_ref = 0 and equal sizes that is floor(log2(1/alpha)).
    """
    if n_new <= 0:
        return 0
    if n_ref <= 0:
        return n_new
    share = n_new / (n_ref + n_new)
    counts = np.arange(0, n_new + 1)
    p_values = stats.binom.sf(counts - 1, k_ref + counts, share)
    ok = np.flatnonzero(p_values >= alpha)
    # p-values fall as c grows; the first failing count ends the consistent run
    failing = np.flatnonzero(p_values < alpha)
    if len(failing):
        ok = ok[ok < failing[0]]
    return int(ok[-1]) if len(ok) else 0


def max_count_beyond_range(n_ref: int, n_new: int, alpha: float) -> int:
    """Largest number of `n_new` new values that may fall outside the [min, max] of `n_ref` real values.

    Under exchangeability (both samples from one continuous distribution), the c most extreme values of the
    pooled sample are all new with probability C(n_new, c) / C(n_ref + n_new, c); c values past either end
    happen with probability at most (c + 1) times that. Ties with the real extremes only make this conservative.
    """
    if n_new <= 0:
        return 0
    if n_ref <= 0:
        return n_new
    counts = np.arange(0, n_new + 1)
    log_p = (np.log(counts + 1.0) + _log_choose(n_new, counts) - _log_choose(n_ref + n_new, counts))
    ok = np.flatnonzero(log_p >= math.log(alpha))
    failing = np.flatnonzero(log_p < math.log(alpha))
    if len(failing):
        ok = ok[ok < failing[0]]
    return int(ok[-1]) if len(ok) else 0


def _log_choose(n: int, k: np.ndarray) -> np.ndarray:
    from scipy.special import gammaln

    return gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)


def tail_limits(values: np.ndarray, n_new: int, alpha: float) -> tuple[float, float]:
    """(low, high): bounds the min and max of `n_new` new draws cross with probability about `alpha` each.

    Each tail is extrapolated from the real sample by the Hill estimator on its excesses over the median
    (k = max(10, sqrt(n)) largest ones): the quantile exceeded with probability alpha / n_new is
    X_(k+1) * (k * n_new / (n * alpha)) ** gamma. A light or bounded tail gives gamma near 0 and a bound near
    the real extreme; a heavy tail (amounts, sensor spikes) a wide one. NaN when a tail has too few excesses to
    estimate: fewer than 6 values past the median on that side.
    """
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    n = len(finite)
    if n < 20 or n_new <= 0:
        return float("nan"), float("nan")
    median = float(np.median(finite))
    out = []
    for excess in (median - finite, finite - median):
        positive = np.sort(excess[excess > 0])[::-1]
        k = min(max(10, int(math.sqrt(n))), len(positive) - 1)
        if k < 5 or positive[k] <= 0:
            out.append(float("nan"))
            continue
        gamma = float(np.mean(np.log(positive[:k] / positive[k])))
        out.append(float(positive[k] * (k * n_new / (n * alpha)) ** gamma))
    low, high = out
    return median - low, median + high


def mann_whitney_se(n1: int, n2: int, pooled: np.ndarray | None = None) -> float:
    """Standard error of an AUROC between two groups of n1 and n2 exchangeable scores (permutation null).

    With `pooled` (all n1 + n2 scores) the tie correction is applied, so a heavily tied score is not judged
    as if it were continuous.
    """
    if n1 <= 0 or n2 <= 0:
        return float("nan")
    total = n1 + n2
    correction = 0.0
    if pooled is not None and total > 1:
        _, counts = np.unique(pooled, return_counts=True)
        correction = float(((counts.astype(np.float64) ** 3) - counts).sum()) / (total * (total - 1))
    variance_u = n1 * n2 / 12.0 * ((total + 1) - correction)
    return float(math.sqrt(max(variance_u, 0.0)) / (n1 * n2))


def cluster_share_se(cluster: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Standard error of a mean of fair coin flips shared within clusters (each cluster flips once).

    The DCR share under the null: a synthetic row is closer to a training row when its nearest row of the
    pooled training + holdout sample happens to be a training row, a fair coin per pooled row shared by every
    synthetic row whose nearest it is. `cluster` names that pooled row per synthetic row; `weight` is each
    row's stake in the coin (1, or 0 for rows tied between both sides, which count 0.5 whatever the split).
    """
    n = len(cluster)
    if n == 0:
        return float("nan")
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
    _, inverse = np.unique(cluster, return_inverse=True)
    per_cluster = np.bincount(inverse, weights=w)
    return float(math.sqrt(0.25 * float((per_cluster ** 2).sum())) / n)


def median_se(values: np.ndarray) -> float:
    """Distribution-free standard error of a sample median: half the spread of the order statistics
    n/2 -+ sqrt(n)/2 (the ranks of a ~68% confidence interval for the median)."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = len(x)
    if n < 2:
        return float("nan")
    half = math.sqrt(n) / 2.0
    lo = int(max(0, math.floor(n / 2.0 - half)))
    hi = int(min(n - 1, math.ceil(n / 2.0 + half)))
    return float((x[hi] - x[lo]) / 2.0)

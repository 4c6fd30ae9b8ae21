"""The mixed-type distance: a hand-computed value, exact neighbours, chunking invariance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quality.columns import infer_columns
from quality.errors import InvalidInputError
from quality.privacy import MixedTypeDistance, chunked_nearest


def test_distance_matches_hand_computation():
    # age: 1st-99th percentile of 0..100 is 1..99 -> range 98; city categorical
    real = pd.DataFrame({"age": np.arange(101, dtype=float), "city": ["a", "b"] * 50 + ["a"]})
    d = MixedTypeDistance(infer_columns(real)).fit(real)
    a = pd.DataFrame({"age": [30.0, 30.0, np.nan], "city": ["a", "a", "a"]})
    b = pd.DataFrame({"age": [79.0, 30.0, 50.0], "city": ["b", "zzz", "a"]})
    got = d.pairwise(a, b)
    # (30, a) vs (79, b): ((49/98)^2 + 1) / 2 = (0.25 + 1) / 2
    assert got[0, 0] == pytest.approx(np.sqrt((0.25 + 1.0) / 2))
    # unseen category counts as a plain mismatch
    assert got[1, 1] == pytest.approx(np.sqrt(1.0 / 2))
    # missing numeric: imputed with the median (50) plus 1 for the missing flag mismatch
    assert got[2, 2] == pytest.approx(np.sqrt(1.0 / 2))
    assert got[0, 2] == pytest.approx(np.sqrt(((20 / 98) ** 2 + 0) / 2))
    assert d.pairwise(a, a).diagonal() == pytest.approx(0.0)


def test_constant_numeric_column_does_not_divide_by_zero():
    real = pd.DataFrame({"k": [5.0] * 10, "c": list("ababababab")})
    d = MixedTypeDistance(infer_columns(real)).fit(real)
    assert d.scales_["k"] == 1.0
    assert np.isfinite(d.pairwise(real, real)).all()


def _brute(q, r, k):
    full = np.sqrt(((q[:, None, :] - r[None, :, :]) ** 2).sum(-1))
    order = np.argsort(full, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(full, order, axis=1), full.min(axis=0)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_chunked_nearest_equals_brute_force_and_is_chunk_invariant(k):
    rng = np.random.default_rng(0)
    q, r = rng.normal(size=(157, 9)), rng.normal(size=(211, 9))
    want_d, want_ref_min = _brute(q, r, k)
    results = [chunked_nearest(q, r, k=k, chunk_rows=c) for c in (1, 7, 64, 10_000)]
    for dist, idx, ref_min in results:
        np.testing.assert_allclose(dist, want_d, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ref_min, want_ref_min, rtol=1e-4, atol=1e-4)
        # the returned indices point at rows at the returned distances
        np.testing.assert_allclose(np.sqrt(((q[:, None, :] - r[idx]) ** 2).sum(-1)), dist, atol=1e-9)
    for dist, idx, _ in results[1:]:
        np.testing.assert_array_equal(idx, results[0][1])
    untracked = chunked_nearest(q, r, k=k, chunk_rows=7, track_reference=False)
    assert untracked[2] is None
    np.testing.assert_array_equal(untracked[1], results[0][1])


def test_exact_copies_have_distance_exactly_zero():
    rng = np.random.default_rng(1)
    r = rng.normal(loc=1e3, size=(300, 20))  # large offset: float32 cancellation would show here
    dist, idx, _ = chunked_nearest(r[::3], r, k=1, chunk_rows=17)
    assert (dist[:, 0] == 0.0).all()
    np.testing.assert_array_equal(idx[:, 0], np.arange(0, 300, 3))


def test_memory_budget_sets_chunk_size_without_changing_answers():
    rng = np.random.default_rng(2)
    q, r = rng.normal(size=(500, 4)), rng.normal(size=(400, 4))
    tiny = chunked_nearest(q, r, k=2, memory_mb=0.01)
    big = chunked_nearest(q, r, k=2, memory_mb=512)
    np.testing.assert_allclose(tiny[0], big[0])


def test_k_larger_than_reference_is_refused():
    with pytest.raises(InvalidInputError, match="k=3"):
        chunked_nearest(np.zeros((2, 2)), np.zeros((2, 2)), k=3)

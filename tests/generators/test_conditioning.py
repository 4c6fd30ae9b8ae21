"""Conditional sampling: the condition language, its one-line errors, and native conditioning checked against a table
whose conditional distributions are known by construction."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from generators.base import MODEL_FILE, Generator
from generators.conditions import Range, format_conditions, parse_conditions
from generators.errors import ConditionError, RejectionSamplingWarning
from generators.registry import make_generator

# The known table: a -> b -> x, and a rare label y (about 3%) last in the column order, set by a and b.
P_A = np.array([0.4, 0.3, 0.2, 0.1])
P_B_GIVEN_A = np.array([[0.7, 0.2, 0.1], [0.2, 0.6, 0.2], [0.1, 0.3, 0.6], [0.3, 0.3, 0.4]])
MEAN_X_GIVEN_B = np.array([0.0, 1.0, 2.5])


def p_y_given_ab(a, b):
    return 1 / (1 + np.exp(-(-4.5 + 2.0 * (a == 3) + 1.5 * (b == 2))))


def make_known(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.choice(4, n, p=P_A)
    b = (rng.random(n)[:, None] > np.cumsum(P_B_GIVEN_A[a], axis=1)).sum(axis=1)
    x = rng.normal(MEAN_X_GIVEN_B[b], 1.0)
    y = np.where(rng.random(n) < p_y_given_ab(a, b), "yes", "no")
    # a 1% category of its own, late in the order
    tier = np.where(rng.random(n) < 0.01, "platinum", "basic")
    return pd.DataFrame({"a": [f"a{i}" for i in a], "b": [f"b{i}" for i in b], "x": x, "tier": tier, "y": y})


def true_ab(y: bool = False, a: int | None = None, x_above: float | None = None) -> np.ndarray:
    """P(a, b | conditions) from the construction, as a 4 x 3 table."""
    p = P_A[:, None] * P_B_GIVEN_A
    A, B = np.meshgrid(range(4), range(3), indexing="ij")
    if y:
        p = p * p_y_given_ab(A, B)
    if a is not None:
        p = p * (A == a)
    if x_above is not None:
        p = p * norm.sf(x_above - MEAN_X_GIVEN_B[B])
    return p / p.sum()


def sampled_ab(s: pd.DataFrame) -> np.ndarray:
    p = np.zeros((4, 3))
    for (a, b), count in s.groupby(["a", "b"]).size().items():
        p[int(a[1]), int(b[1])] = count
    return p / p.sum()


def tvd(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.abs(p - q).sum())


@pytest.fixture(scope="module")
def known():
    return make_known(20_000, seed=0)


@pytest.fixture(scope="module")
def autoregressive(known):
    return make_generator("autoregressive", seed=0).fit(known)


# ------------------------------------------------------------------ the language
def test_parse_conditions_reads_equalities_and_ranges():
    c = parse_conditions("Class=1, Amount>100,age<=40,age>18,sex=Male")
    assert c == {"Class": "1", "Amount": Range("100", None, False), "age": Range("18", "40", False, True),
                 "sex": "Male"}
    assert parse_conditions("") == {} and parse_conditions(None) == {}
    # the first operator wins, so a value may start with one: Adult's labels
    assert parse_conditions("income=>50K,other=<=50K") == {"income": ">50K", "other": "<=50K"}
    assert parse_conditions(format_conditions(c)) == c


@pytest.mark.parametrize("text", ["Class", "Class=", "age>1,age>=2", "a=1,a=2", "a!=1", "Class=1,,b=2"])
def test_parse_conditions_refuses_unreadable_text_in_one_line(text):
    with pytest.raises(ConditionError) as err:
        parse_conditions(text)
    assert "\n" not in str(err.value)


def test_range_contains_honours_inclusive_ends():
    r = Range(1, 3, low_inclusive=False, high_inclusive=True)
    assert list(r.contains(np.array([1, 2, 3, 4]))) == [False, True, True, False]
    assert Range(2, 2, True, False).is_empty() and not Range(2, 2).is_empty()
    with pytest.raises(ConditionError):
        Range()


@pytest.mark.parametrize("conditions, says", [
    ({"nope": "1"}, "columns are"),
    ({"b": "b7"}, "known values include"),
    ({"x": Range(100.0, None)}, "overlaps"),
    ({"x": Range(2.0, 1.0)}, "widen"),
    ({"b": Range("b0", None)}, "condition on one of its values"),
    ({"x": 1.5}, "give a range"),
])
def test_impossible_conditions_are_one_line_errors_naming_the_way_out(autoregressive, conditions, says):
    with pytest.raises(ConditionError, match=says) as err:
        autoregressive.sample(10, seed=0, conditions=conditions)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------ autoregressive, native
def test_autoregressive_conditions_natively_and_exactly(autoregressive):
    for text in ("y=yes", "a=a3,y=yes", "x>2", "x>=0,x<0.5,b=b1"):
        cond = parse_conditions(text)
        assert autoregressive.conditioning_method(cond) == "native"
    s = autoregressive.sample(500, seed=1, conditions=parse_conditions("a=a3,y=yes"))
    assert len(s) == 500 and (s["a"] == "a3").all() and (s["y"] == "yes").all()
    s = autoregressive.sample(500, seed=1, conditions=parse_conditions("x>=0,x<0.5,b=b1"))
    assert len(s) == 500 and s["x"].between(0, 0.5, inclusive="left").all() and (s["b"] == "b1").all()


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_autoregressive_conditional_joint_matches_the_known_one(autoregressive, known, mode):
    """The rare label is the last column: forcing its token alone would leave (a, b) at their marginal, which is
    `naive` away from the truth; native conditioning must land within a third of that (and within 0.12)."""
    cases = [({"y": "yes"}, true_ab(y=True)), ({"a": "a3", "y": "yes"}, true_ab(y=True, a=3)),
             ({"x": Range(2.0, None, low_inclusive=False)}, true_ab(x_above=2.0))]
    autoregressive.conditioning = mode
    try:
        for cond, truth in cases:
            s = autoregressive.sample(20_000, seed=1, conditions=cond)
            met = (s["y"] == "yes") if "y" in cond else (s["x"] > 2.0)
            assert len(s) == 20_000 and met.all()
            naive = tvd(true_ab(), truth) if "a" not in cond else tvd(true_ab(a=3), truth)
            got = tvd(sampled_ab(s), truth)
            assert got < min(0.12, naive / 3), (cond, got, naive)
    finally:
        del autoregressive.conditioning


def count_proposals(gen, monkeypatch) -> list[int]:
    """Records the size of every batch of proposals `gen` draws."""
    sizes: list[int] = []
    propose = type(gen)._propose

    def counted(self, n, *args, **kwargs):
        sizes.append(n)
        return propose(self, n, *args, **kwargs)

    monkeypatch.setattr(type(gen), "_propose", counted)
    return sizes


def test_fast_conditioning_on_the_last_column_draws_n_proposals_and_resamples_them(autoregressive, monkeypatch):
    """The default costs one pass of n rows (p is read while proposing); "exact" draws rounds of 2n until its
    effective sample size reaches n; both importance-resample, so their (a, b) agree with the truth."""
    sizes = count_proposals(autoregressive, monkeypatch)
    s = autoregressive.sample(3_000, seed=2, conditions={"y": "yes"})
    assert sizes == [3_000] and (s["y"] == "yes").all()
    sizes.clear()
    autoregressive.conditioning = "exact"
    try:
        autoregressive.sample(3_000, seed=2, conditions={"y": "yes"})
    finally:
        del autoregressive.conditioning
    assert sizes[0] == 6_000 and sum(sizes) <= autoregressive.max_proposals_per_row * 3_000
    sizes.clear()
    autoregressive.sample(3_000, seed=2, conditions={"a": "a2"})  # a prefix of the order: no weights needed
    assert sizes == [3_000]


def test_proposal_mode_is_q_alone_and_an_unknown_mode_is_a_one_line_error(autoregressive):
    """"proposal" keeps the given-first rows uncorrected: the conditions hold, the joint drifts from the truth."""
    autoregressive.conditioning = "proposal"
    try:
        s = autoregressive.sample(2_000, seed=1, conditions={"a": "a3", "y": "yes"})
        assert (s["a"] == "a3").all() and (s["y"] == "yes").all()
        autoregressive.conditioning = "quick"
        with pytest.raises(ConditionError, match="fast") as err:
            autoregressive.sample(10, seed=1, conditions={"y": "yes"})
        assert "\n" not in str(err.value)
    finally:
        del autoregressive.conditioning


def test_autoregressive_samples_a_rare_value_without_rejection(autoregressive, monkeypatch):
    """`tier=platinum` is 1% of rows: rejection would need ~200,000 draws for 2,000 rows; the cap forbids that,
    and the native path draws 2,000 proposals, no more."""
    autoregressive.max_rejection_draws = 5_000
    sizes = count_proposals(autoregressive, monkeypatch)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RejectionSamplingWarning)
            s = autoregressive.sample(2_000, seed=3, conditions={"tier": "platinum"})
    finally:
        del autoregressive.max_rejection_draws
    assert (s["tier"] == "platinum").all() and len(s) == 2_000 and sizes == [2_000]


def test_autoregressive_conditioned_sample_survives_save_and_load(autoregressive, tmp_path):
    autoregressive.save(tmp_path / "m")
    loaded = Generator.load(tmp_path / "m")
    cond = parse_conditions("y=yes,x>1")
    pd.testing.assert_frame_equal(loaded.sample(300, seed=4, conditions=cond),
                                  autoregressive.sample(300, seed=4, conditions=cond), check_exact=True)
    pd.testing.assert_frame_equal(autoregressive.sample(300, seed=4, conditions=cond),
                                  autoregressive.sample(300, seed=4, conditions=cond), check_exact=True)


def test_a_model_saved_before_conditioned_training_falls_back_to_rejection(tmp_path):
    """Without the given-column training only a prefix of the column order is exact; the rest says rejection."""
    data = make_known(2_000, seed=1)
    make_generator("autoregressive", epochs=2, seed=0).fit(data).save(tmp_path / "m")
    doc = json.loads((tmp_path / "m" / MODEL_FILE).read_text())
    del doc["state"]["condition_share"]
    (tmp_path / "m" / MODEL_FILE).write_text(json.dumps(doc))
    old = Generator.load(tmp_path / "m")
    assert old.conditioning_method({"a": "a1"}) == "native"
    assert old.conditioning_method({"y": "yes"}) == "rejection"
    with pytest.warns(RejectionSamplingWarning, match="rejection"):
        assert (old.sample(20, seed=0, conditions={"y": "yes"})["y"] == "yes").all()


# ------------------------------------------------------------------- cart and gmm
def test_cart_is_native_on_a_prefix_of_the_order_and_says_when_it_is_not(known):
    reordered = known[["y", "a", "b", "x", "tier"]]
    cart = make_generator("cart", min_samples_leaf=20, seed=0).fit(reordered)
    assert cart.conditioning_method({"y": "yes", "a": "a3"}) == "native"
    s = cart.sample(20_000, seed=1, conditions={"y": "yes"})
    assert (s["y"] == "yes").all()
    assert tvd(sampled_ab(s), true_ab(y=True)) < 0.1
    assert cart.conditioning_method({"b": "b1"}) == "rejection"
    with pytest.warns(RejectionSamplingWarning):
        assert (cart.sample(20, seed=0, conditions={"b": "b1"})["b"] == "b1").all()


def test_gmm_conditions_analytically_like_its_own_rejection(known):
    """GMM's native conditional is its own joint restricted to the condition (what rejection returns)."""
    gmm = make_generator("gmm", seed=0).fit(known.drop(columns=["tier"]))
    cond = {"a": "a3", "x": Range(1.0, None)}
    assert gmm.conditioning_method(cond) == "native"
    native = gmm.sample(20_000, seed=1, conditions=cond)
    assert (native["a"] == "a3").all() and (native["x"] >= 1.0).all()
    gmm._can_condition = lambda constraints: False
    with pytest.warns(RejectionSamplingWarning):
        rejected = gmm.sample(5_000, seed=2, conditions=cond)
    b_native = native["b"].value_counts(normalize=True)
    b_rejected = rejected["b"].value_counts(normalize=True)
    assert 0.5 * b_native.sub(b_rejected, fill_value=0).abs().sum() < 0.05
    assert abs(native["x"].mean() - rejected["x"].mean()) < 0.1

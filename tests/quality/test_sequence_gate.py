"""The sequence gate: an independent real sample passes, copies and broken dynamics fail, thresholds are checked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quality import DEFAULT_SEQUENCE_THRESHOLDS, evaluate_sequences, render_sequence_report, segment_series
from quality.errors import InvalidInputError, UnknownThresholdError


def draw_panel(n: int, seed: int, first_id: int = 0) -> pd.DataFrame:
    """AR(1) sequences of 6-20 daily steps: a context `group` sets the level, a `state` category, 5% gaps."""
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(n):
        group = "a" if rng.random() < 0.6 else "b"
        length = int(rng.integers(6, 21))
        start = pd.Timestamp("2023-01-01") + pd.Timedelta(days=int(rng.integers(0, 60)))
        x = rng.normal(0, 1)
        for t in range(length):
            x = 0.85 * x + rng.normal(0, 0.5)
            rows.append({"id": f"e{first_id + e}", "day": start + pd.Timedelta(days=t), "group": group,
                         "value": np.nan if rng.random() < 0.05 else (3.0 if group == "a" else 6.0) + x,
                         "state": "up" if x > 0 else "down"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def panels():
    return draw_panel(150, 1, 0), draw_panel(150, 2, 1000), draw_panel(150, 3, 2000)


def _gate(real, synth, hold, **kw):
    return evaluate_sequences(real, synth, hold, time="day", entity="id", **kw)


def test_an_independent_real_sample_passes(panels):
    train, hold, other = panels
    before = train.copy()
    report = _gate(train, other, hold)
    assert report.passed, [(c.name, c.value, c.threshold) for c in report if not c.passed]
    assert report.metrics["roles"]["context"] == ["group"]
    assert {"step_marginal_accuracy", "change_accuracy", "sequence_stat_accuracy", "context_accuracy",
            "discriminator_auc", "forecast_error_ratio", "copied_sequence_rate", "dcr_share",
            "mia_auroc"} <= {c.name for c in report}
    assert all(c.value is not None for c in report)
    assert train.equals(before)


def test_copies_of_the_training_sequences_fail(panels):
    train, hold, _ = panels
    copy = train.assign(id="c" + train["id"], day=train["day"] + pd.Timedelta(days=3))
    report = _gate(train, copy, hold)
    assert not report.passed
    assert {"copied_sequence_rate", "dcr_share", "mia_auroc"} <= set(report.failing)
    assert report["copied_sequence_rate"].value == 1.0


def test_sequences_with_shuffled_steps_fail_on_dynamics(panels):
    train, hold, other = panels
    rng = np.random.default_rng(0)
    shuffled = other.copy()
    shuffled["value"] = shuffled.groupby("id")["value"].transform(lambda v: rng.permutation(v.to_numpy()))
    report = _gate(train, shuffled, hold)
    assert {"sequence_stat_accuracy", "discriminator_auc"} <= set(report.failing)  # lag-1 autocorrelation gone
    assert report["step_marginal_accuracy"].passed  # the values themselves are still real ones
    honest = _gate(train, other, hold)
    changes = report.metrics["change_accuracy"]["tvd"]["value change"]
    assert changes > 3 * honest.metrics["change_accuracy"]["tvd"]["value change"]


def test_unknown_threshold_is_refused_and_known_ones_apply(panels):
    train, hold, other = panels
    with pytest.raises(UnknownThresholdError, match="dcr_shar"):
        _gate(train, other, hold, thresholds={"dcr_shar": 0.6})
    assert "sampling_z" in DEFAULT_SEQUENCE_THRESHOLDS
    strict = _gate(train, other, hold, thresholds={"step_marginal_accuracy": 0.9999, "sampling_z": None})
    assert "step_marginal_accuracy" in strict.failing


def test_without_holdout_the_holdout_checks_are_informational(panels):
    train, _, other = panels
    report = _gate(train, other, None)
    for name in ("dcr_share", "mia_auroc", "forecast_error_ratio"):
        assert report[name].threshold is None and report[name].value is None
    assert report["copied_sequence_rate"].gated


def test_report_plots_sequences_side_by_side(panels, tmp_path):
    train, hold, other = panels
    report = _gate(train, other, hold)
    html = render_sequence_report(report, train, other, time="day", entity="id", title="panel",
                                  path=tmp_path / "r.html")
    assert (tmp_path / "r.html").read_text() == html
    assert "Autocorrelation" in html and 'alt="value sequences"' in html and 'alt="value autocorrelation"' in html
    assert html.count("<img") >= 3 and "change_accuracy" in html


def test_a_long_series_is_cut_into_segments():
    frame = pd.DataFrame({"t": np.arange(105), "x": np.sin(np.arange(105) / 4)})
    seg = segment_series(frame, 20, time="t")
    assert list(seg.columns) == ["segment", "t", "x"] and len(seg) == 100
    assert (seg.groupby("segment").size() == 20).all()
    with pytest.raises(InvalidInputError):
        evaluate_sequences(frame, frame, time="t", entity=None)


def test_a_feature_seen_in_one_sequence_only_is_judged(panels):
    # a column observed every other step has no lag-1 autocorrelation, except in the one synthetic sequence that
    # has it twice in a row: a cross-validation fold then holds none of that feature's values
    train, hold, other = (p.copy() for p in panels)
    for frame in (train, hold, other):
        step = frame.groupby("id").cumcount()
        frame["sparse"] = np.where(step % 2 == 0, frame["value"].fillna(0.0), np.nan)
    first = other["id"] == other["id"].iloc[0]
    other.loc[first, "sparse"] = other.loc[first, "value"].fillna(0.0)
    report = _gate(train, other, hold)
    assert report["discriminator_auc"].value is not None and report["discriminator_auc"].passed


def test_a_privacy_check_too_small_to_fail_is_inconclusive_and_fails(panels):
    train, hold, other = panels
    few = hold[hold["id"].isin(pd.unique(hold["id"])[:3])]
    near_copy = train.assign(id="c" + train["id"],
                             value=train["value"] + np.random.default_rng(0).normal(0, 1e-3, len(train)))
    report = _gate(train, near_copy, few)
    dcr = report["dcr_share"]
    # three holdout sequences: chance alone spreads the share past 1, so a near copy would have passed
    assert dcr.threshold >= 1.0 and not dcr.passed and dcr.details["inconclusive"]
    assert "enlarge the holdout" in dcr.explanation
    full = _gate(train, other, hold)
    assert full["dcr_share"].passed and not full["dcr_share"].details.get("inconclusive")
    assert full["mia_auroc"].passed and not full["mia_auroc"].details.get("inconclusive")
    accepted = _gate(train, other, few, thresholds={"dcr_share": None, "mia_auroc": None})
    assert accepted["dcr_share"].passed and accepted["mia_auroc"].passed

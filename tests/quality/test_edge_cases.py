"""Every column kind the warehouse can hold goes through `evaluate` and the report without special-casing."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from quality import evaluate, render_report
from quality.report import association_matrix


def _mixed(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    visits = pd.array(rng.poisson(3, n), dtype="Int64")
    visits[rng.random(n) < 0.1] = pd.NA
    opened = pd.Series(pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"))
    opened[rng.random(n) < 0.05] = pd.NaT
    return pd.DataFrame({
        "customer_id": np.arange(seed * 10_000, seed * 10_000 + n),
        "age": age,
        "income": np.where(rng.random(n) < 0.1, np.nan, 1000 + 40 * age + rng.normal(0, 300, n)),
        "visits": visits,
        "segment": rng.choice(["retail", "business", "private"], n).astype(object),
        "active": rng.random(n) < 0.7,
        "opened": opened,
        "constant": 1.0,
        "empty": np.full(n, np.nan),
    })


def test_every_column_kind_is_handled(tmp_path):
    real, holdout, synthetic = _mixed(400, 1), _mixed(400, 2), _mixed(400, 3)
    report = evaluate(real, synthetic, holdout)
    assert report.metrics["columns"]["ids"] == ["customer_id"]
    assert set(report.metrics["columns"]["numeric"]) == {"age", "income", "visits", "opened", "constant", "empty"}
    assert set(report.metrics["columns"]["categorical"]) == {"segment", "active"}
    assert report.passed, report.failing
    json.dumps(report.to_dict())
    assert "expect_column_values_to_be_unique[customer_id]" in report
    html = render_report(report, real, synthetic, path=tmp_path / "r.html")
    assert "opened" in html and "active" in html

    broken = synthetic.copy()
    broken["customer_id"] = 7  # ids no longer unique
    broken["segment"] = broken["segment"].astype("category")  # a dtype change alone is fine
    failing = evaluate(real, broken, holdout).failing
    assert failing == ["expect_column_values_to_be_unique[customer_id]"]


def test_association_matrix_sees_dependence():
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    frame = pd.DataFrame({"x": x, "copy": np.where(x > 0, "pos", "neg"), "noise": rng.choice(list("abc"), 2000)})
    m = association_matrix(frame, frame, list(frame.columns), {"x"})
    assert np.allclose(m, m.T) and np.allclose(np.diag(m), 1.0)
    assert m[0, 1] > 0.9 and m[0, 2] < 0.1 and m[1, 2] < 0.1

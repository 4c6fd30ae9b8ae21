"""`synthwatch validate` and the gate helpers end to end: real Prefect flow runs on a real DuckDB file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

CATEGORICAL = ["workclass", "education", "marital_status", "occupation", "relationship", "race", "sex",
               "native_country", "income"]


def write_tables(warehouse, **frames):
    with warehouse.transaction() as con:
        for name, frame in frames.items():
            warehouse.write_frame(con, name, frame)


@pytest.fixture
def adult_split(adult_frame):
    """Three disjoint samples of real Adult rows: real, holdout, and an independent 'synthetic' one restricted
    to the real sample's categories (a faithful sample of the same population, no row of the real one)."""
    rows = adult_frame.sample(2400, random_state=11).reset_index(drop=True)
    real, holdout, fresh = rows.iloc[:800], rows.iloc[800:1600], rows.iloc[1600:]
    seen = np.ones(len(fresh), dtype=bool)
    for column in CATEGORICAL:
        seen &= fresh[column].isin(set(real[column].dropna())) | fresh[column].isna()
    return (real.reset_index(drop=True), holdout.reset_index(drop=True),
            fresh[seen].reset_index(drop=True))


def run_json(cli, *args):
    code, out, err = cli([*args, "--json"])
    return code, json.loads(out.strip().splitlines()[-1]), err


def read_artifact(key: str) -> str | None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read():
        async with get_client() as client:
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
            return found[0].data if found else None

    return asyncio.run(read())


def test_independent_sample_passes_and_is_recorded(cli, warehouse, adult_split):
    real, holdout, fresh = adult_split
    write_tables(warehouse, adult_real=real, adult_holdout=holdout, adult_fresh=fresh)
    code, result, err = run_json(cli, "validate", "--real", "adult_real", "--synthetic", "adult_fresh",
                                 "--holdout", "adult_holdout", "--target", "income")
    assert code == 0, (err[-600:], result.get("failing"))
    assert result["ok"] is True and result["passed"] is True and result["failing"] == []
    names = {c["name"] for c in result["checks"]}
    assert {"accuracy", "discriminator_auc", "dcr_share", "exact_copy_rate", "mia_auroc", "utility_drop"} <= names
    assert any(n.startswith("expect_column_values_to_be_in_set[") for n in names)
    report = Path(result["report_path"])
    assert report.is_file() and report.parent.name == "reports" and 'id="checks"' in report.read_text()
    recorded = warehouse.read_frame("_quality_reports", internal=True)
    assert len(recorded) == 1
    row = recorded.iloc[0]
    assert bool(row["passed"]) and row["table_name"] == "adult_fresh" and row["report_path"] == str(report)
    assert json.loads(row["source"])["holdout"] == "adult_holdout"
    artifact = read_artifact("quality-adult-fresh")
    assert artifact is not None and "PASSED" in artifact


def test_copied_table_fails_with_exit_1_naming_the_checks(cli, warehouse, adult_split, tmp_path):
    real, holdout, _ = adult_split
    write_tables(warehouse, adult_real=real, adult_holdout=holdout, adult_copy=real.sample(frac=1.0, random_state=1))
    code, out, err = cli(["validate", "--real", "adult_real", "--synthetic", "adult_copy", "--holdout",
                          "adult_holdout"])
    assert code == 1
    assert "FAILED" in out and "failing checks:" in out
    failing_line = next(line for line in out.splitlines() if line.startswith("failing checks:"))
    assert "dcr_share" in failing_line and "exact_copy_rate" in failing_line

    config = tmp_path / "pipeline.yaml"
    config.write_text("quality:\n  targets:\n    adult_real: income\n")
    code, result, _ = run_json(cli, "validate", "--real", "adult_real", "--synthetic", "adult_copy",
                               "--holdout", "adult_holdout", "--config", config)
    assert code == 1 and result["ok"] is False and result["passed"] is False
    assert result["target"] == "income" and "utility_drop" in {c["name"] for c in result["checks"]}
    assert {"dcr_share", "exact_copy_rate", "mia_auroc"} <= set(result["failing"])
    checks = {c["name"]: c for c in result["checks"]}
    assert checks["exact_copy_rate"]["value"] == 1.0 and not checks["dcr_share"]["passed"]
    recorded = warehouse.read_frame("_quality_reports", internal=True)
    assert len(recorded) == 2 and not recorded["passed"].any()
    assert "FAILED" in read_artifact("quality-adult-copy")


def test_bad_requests_fail_before_any_flow_runs(cli, warehouse, adult_split):
    real, holdout, fresh = adult_split
    write_tables(warehouse, adult_real=real, adult_fresh=fresh)
    before = warehouse.snapshot()
    code, out, err = cli(["validate", "--real", "adult_real", "--synthetic", "nope"])
    assert code == 2 and "nope" in err and "adult_fresh" in err
    code, out, err = cli(["validate", "--real", "adult_real", "--synthetic", "adult_fresh", "--target", "salary"])
    assert code == 2 and "salary" in err and "income" in err
    code, out, err = cli(["validate", "--real", "adult_real", "--synthetic", "bad name;"])
    assert code == 2
    assert warehouse.snapshot() == before


def test_unknown_threshold_in_config_is_an_error(cli, warehouse, adult_split, tmp_path):
    real, _, fresh = adult_split
    write_tables(warehouse, adult_real=real, adult_fresh=fresh)
    config = tmp_path / "pipeline.yaml"
    config.write_text("quality:\n  thresholds:\n    dcr_shares: 0.6\n")
    code, out, err = cli(["validate", "--config", config, "--real", "adult_real", "--synthetic", "adult_fresh"])
    assert code == 2 and "dcr_shares" in err


def test_quarantine_or_publish_never_writes_a_failed_table_to_main(warehouse, settings, adult_split):
    from flows.gate import quarantine_or_publish, record_gate, run_gate

    real, holdout, fresh = adult_split
    copy = real.copy()
    failed = run_gate(settings, real, copy, holdout, table="adult_synth", thresholds=None, source={"test": 1})
    assert failed["passed"] is False
    with warehouse.transaction() as con:
        schema = quarantine_or_publish(warehouse, con, "adult_synth", copy, failed["passed"])
        record_gate(con, failed, published_schema=schema)
    assert schema == "quarantine"
    assert warehouse.table_exists("adult_synth", schema="quarantine")
    assert not warehouse.table_exists("adult_synth", schema="main")

    passed = run_gate(settings, real, fresh, holdout, table="adult_synth", thresholds=None, source={"test": 2})
    assert passed["passed"] is True, passed["failing"]
    with warehouse.transaction() as con:
        schema = quarantine_or_publish(warehouse, con, "adult_synth", fresh, passed["passed"])
        record_gate(con, passed, published_schema=schema)
    assert schema == "main"
    assert len(warehouse.read_frame("adult_synth")) == len(fresh)
    assert not warehouse.table_exists("adult_synth", schema="quarantine")
    recorded = warehouse.read_frame("_quality_reports", internal=True).sort_values("created_at")
    assert recorded["published_schema"].tolist() == ["quarantine", "main"]
    assert len(list(settings.reports_dir.glob("adult_synth-*.html"))) == 2

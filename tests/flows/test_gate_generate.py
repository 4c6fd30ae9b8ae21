"""The quality gate inside `synthwatch generate`: a passing table is published, a failing one quarantined."""

import json
from pathlib import Path

import pytest
import yaml


def run(cli, *args):
    code, out, err = cli([*args, "--json"])
    lines = out.strip().splitlines()
    return code, (json.loads(lines[-1]) if lines else None), err


@pytest.fixture
def model_id(cli, warehouse, adult_small):
    with warehouse.transaction() as con:
        warehouse.write_frame(con, "adult", adult_small.iloc[:400])
    code, r, err = run(cli, "train", "--table", "adult", "--generator", "cart", "--seed", "0", "--holdout", "0.25")
    assert code == 0, err
    return r["model_id"]


def test_passing_table_is_published_with_report(cli, warehouse, model_id, report_only_config):
    code, r, err = run(cli, "generate", "--model", model_id, "--rows", "120", "--table", "synth", "--seed", "1")
    assert code == 0, err
    assert r["schema"] == "main" and r["published"] and r["quality"]["passed"]
    assert len(warehouse.read_frame("synth")) == 120
    assert not warehouse.table_exists("synth", schema="quarantine")
    report = warehouse.read_frame("_quality_reports").iloc[-1]
    assert report["table_name"] == "synth" and report["passed"] and report["published_schema"] == "main"
    checks = {c["name"] for c in json.loads(report["checks"])}
    assert {"accuracy", "dcr_share", "discriminator_auc"} <= checks  # every check ran, even report-only ones
    html = Path(r["quality"]["report_path"]).read_text()
    assert "<html" in html.lower() and "dcr_share" in html
    assert json.loads(report["source"])["model_id"] == model_id


def test_failing_table_is_quarantined_never_published(cli, warehouse, model_id, use_quality, report_only_config):
    # A good version is published first; the failing run must leave it untouched.
    code, _, err = run(cli, "generate", "--model", model_id, "--rows", "120", "--table", "synth", "--seed", "1")
    assert code == 0, err
    published = warehouse.table_hash("synth")
    strict = yaml.safe_load(report_only_config.read_text())["quality"]
    strict["thresholds"]["accuracy"] = 0.9999  # no 120-row sample of a 300-row table is this faithful
    strict["thresholds"]["sampling_z"] = None  # fixed bounds only: no allowance for small-sample noise
    use_quality(strict)
    code, r, err = run(cli, "generate", "--model", model_id, "--rows", "120", "--table", "synth", "--seed", "2",
                       "--replace")
    assert code == 1
    assert "quality gate failed for synth" in err and "accuracy" in err and "quarantine.synth" in err
    assert "Traceback" not in err
    assert r["ok"] is False
    assert warehouse.table_hash("synth") == published
    assert len(warehouse.read_frame("synth", schema="quarantine")) == 120
    reports = warehouse.read_frame("_quality_reports").sort_values("created_at")
    last = reports.iloc[-1]
    assert not last["passed"] and last["published_schema"] == "quarantine"
    assert "accuracy" in json.loads(last["failing"])


def test_conditional_sample_is_gated_against_matching_rows(cli, warehouse, model_id, report_only_config):
    code, r, err = run(cli, "generate", "--model", model_id, "--rows", "40", "--table", "rich",
                       "--where", "income=>50K", "--seed", "3")
    assert code == 0, err
    report = warehouse.read_frame("_quality_reports").iloc[-1]
    source = json.loads(report["source"])
    assert source["conditions"] == {"income": ">50K"}
    train = warehouse.read_frame(source["real"])
    assert report["n_real"] == int((train["income"] == ">50K").sum())


def test_unknown_threshold_in_config_fails_before_anything_runs(cli, warehouse, model_id, use_quality):
    use_quality({"thresholds": {"acuracy": 0.9}})
    before = warehouse.snapshot()
    code, _, err = run(cli, "generate", "--model", model_id, "--rows", "10", "--table", "synth")
    assert code == 2 and "quality.thresholds.acuracy: unknown threshold; did you mean accuracy?" in err
    assert warehouse.snapshot() == before

"""Issue 10: real data is never overwritten, decisions are made inside the write transaction, failures are Failed,
crashes leave no orphans, configs are checked key by key, detector figures are measured on rows no choice saw."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def run_json(cli, *args):
    code, out, err = cli([*args, "--json"])
    lines = out.strip().splitlines()
    return code, (json.loads(lines[-1]) if lines else None), err


def one_line_error(code, err, expected_code=2):
    assert code == expected_code, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture
def ingested(cli, tmp_path, adult_small):
    """Real Adult rows ingested as `adult` and `people`, and a cart model trained on `adult`."""
    src = tmp_path / "adult.csv"
    adult_small.iloc[:200].to_csv(src, index=False)
    other = tmp_path / "people.csv"
    adult_small.iloc[200:260].to_csv(other, index=False)
    assert cli(["ingest", src, "--kind", "tabular", "--table", "adult"])[0] == 0
    assert cli(["ingest", other, "--kind", "tabular", "--table", "people"])[0] == 0
    code, trained, err = run_json(cli, "train", "--table", "adult", "--generator", "cart")
    assert code == 0, err
    return {"source": src, "model": trained["model_id"]}


# ------------------------------------------------------------------ 3. real data is never overwritten
@pytest.mark.parametrize("target", ["ADULT", "Adult", "people", "PEOPLE", "anomaly_scores", "Alerts", "_models"])
def test_generate_never_writes_over_real_or_bookkeeping_tables(cli, warehouse, ingested, target,
                                                               report_only_config):
    before = warehouse.snapshot()
    code, _, err = cli(["generate", "--model", ingested["model"], "--rows", "20", "--table", target])
    one_line_error(code, err)
    assert warehouse.snapshot() == before


def test_generate_replaces_its_own_table_only_when_asked(cli, warehouse, ingested, report_only_config):
    assert cli(["generate", "--model", ingested["model"], "--rows", "20", "--table", "synth"])[0] == 0
    before = warehouse.snapshot()
    code, _, err = cli(["generate", "--model", ingested["model"], "--rows", "30", "--table", "SYNTH"])
    assert "--replace" in one_line_error(code, err)
    assert warehouse.snapshot() == before
    assert cli(["generate", "--model", ingested["model"], "--rows", "30", "--table", "synth", "--replace"])[0] == 0
    assert len(warehouse.read_frame("synth")) == 30


def test_ingest_never_writes_over_generated_or_foreign_tables(cli, warehouse, ingested, tmp_path,
                                                              report_only_config):
    assert cli(["generate", "--model", ingested["model"], "--rows", "20", "--table", "synth"])[0] == 0
    with warehouse.transaction() as con:
        con.execute("CREATE TABLE main.handmade AS SELECT 1 AS a")
    before = warehouse.snapshot()
    for target in ("synth", "Synth", "handmade", "anomaly_scores", "alerts"):
        code, _, err = cli(["ingest", ingested["source"], "--kind", "tabular", "--table", target])
        one_line_error(code, err)
    assert warehouse.snapshot() == before


def test_same_content_is_written_again_once_the_table_changed(cli, warehouse, ingested):
    code, again, _ = run_json(cli, "ingest", ingested["source"], "--kind", "tabular", "--table", "adult")
    assert code == 0 and again["written"] is False
    with warehouse.transaction() as con:
        con.execute("DELETE FROM main.adult WHERE rowid < 50")
    code, again, err = run_json(cli, "ingest", ingested["source"], "--kind", "tabular", "--table", "adult")
    assert code == 0 and again["written"] is True, err
    assert len(warehouse.read_frame("adult")) == 200


def test_append_idempotence_is_decided_inside_the_transaction(warehouse, tmp_path, monkeypatch):
    """A second writer that commits the same content while the first is still reading: the first writes nothing."""
    from flows import ingest

    src = tmp_path / "batch.csv"
    src.write_text("id,amount\n1,10.5\n2,3.25\n3,7.0\n")
    real_read = ingest.read_and_validate
    raced = []

    def read_while_another_process_commits(*args, **kwargs):
        staged = real_read(*args, **kwargs)
        if not raced:
            raced.append(True)
            ingest.ingest_source(warehouse, src, kind="tabular", table="batches", mode="append")
        return staged

    monkeypatch.setattr(ingest, "read_and_validate", read_while_another_process_commits)
    first = ingest.ingest_source(warehouse, src, kind="tabular", table="batches", mode="append")
    assert first["written"] is False and first["already_ingested"] is True
    assert len(warehouse.read_frame("batches")) == 3
    with warehouse.read() as con:
        assert con.execute("SELECT count(*) FROM main._ingestions").fetchone()[0] == 1


# ------------------------------------------------------------------ 3. crashes leave no orphan model folders
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_folders_a_crash_left_are_removed_by_the_next_writer_of_their_warehouse(cli, settings, ingested):
    models = settings.models_dir
    staged = models / f".adult_cart_deadbeef.staging-{_dead_pid()}"
    staged.mkdir()
    (staged / "model.json").write_text("{}")
    unrecorded = models / "adult_cart_0badc0de"  # renamed into place, then killed before COMMIT
    unrecorded.mkdir()
    (unrecorded / ".warehouse").write_text(str(settings.db_path.resolve()))
    foreign = models / "other_cart_12345678"  # recorded by another warehouse that shares the models dir
    foreign.mkdir()
    (foreign / ".warehouse").write_text(str(settings.db_path.parent / "other.duckdb"))
    legacy = models / "legacy_without_marker"
    legacy.mkdir()
    live = models / f".adult_cart_feedface.staging-{os.getpid()}"  # a writer still saving
    live.mkdir()

    code, trained, err = run_json(cli, "train", "--table", "adult", "--generator", "cart")
    assert code == 0, err
    assert not staged.exists() and not unrecorded.exists()
    assert foreign.is_dir() and legacy.is_dir() and live.is_dir()
    assert (models / ingested["model"]).is_dir() and (models / trained["model_id"]).is_dir()


def test_a_delete_that_died_midway_is_undone_or_finished(cli, settings, ingested):
    models = settings.models_dir
    recorded = models / ingested["model"]
    dead = _dead_pid()
    recorded.rename(models / f".{ingested['model']}.deleting-{dead}")  # set aside, then killed before COMMIT
    retired = models / f".adult_cart_0ddba11.deleting-{dead}"  # committed, then killed before removing files
    retired.mkdir()
    (retired / ".warehouse").write_text(str(settings.db_path.resolve()))
    code, _, err = run_json(cli, "train", "--table", "adult", "--generator", "cart")
    assert code == 0, err
    assert (recorded / "model.json").is_file() and not retired.exists()


def test_a_failed_record_leaves_no_model_folder(settings, warehouse, ingested, monkeypatch):
    from flows import train
    from flows.warehouse import Warehouse

    before = sorted(p.name for p in settings.models_dir.iterdir())

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Warehouse, "write_frame", staticmethod(broken))
    with pytest.raises(RuntimeError):
        train.train_model(str(settings.db_path), str(settings.models_dir), "adult", "cart", {}, 0, 0.2)
    assert sorted(p.name for p in settings.models_dir.iterdir()) == before


# ------------------------------------------------------------------ 6. failures are Failed, one line, exit 2
def _latest_run_states(flow_name: str) -> tuple[str, list[str]]:
    """(state of the latest run of `flow_name`, states of its task runs)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    async def read():
        async with get_client() as client:
            runs = await client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                                               sort=FlowRunSort.START_TIME_DESC, limit=1)
            tasks = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[runs[0].id])))
            return runs[0].state.type.value, [t.state.type.value for t in tasks]

    return asyncio.run(read())


def _latest_flow_run_state(flow_name: str) -> str:
    return _latest_run_states(flow_name)[0]


def test_a_failing_task_is_failed_to_prefect(cli, warehouse, tmp_path):
    bad = tmp_path / "ragged.csv"
    bad.write_text("a,b\n1,2\n3,4,5\n")
    code, _, err = cli(["ingest", bad, "--kind", "tabular", "--table", "ragged"])
    one_line_error(code, err)
    # The task itself failed (retries and notifications see it), not only the flow that looked at its result.
    assert _latest_run_states("ingest") == ("FAILED", ["FAILED"])


def test_quality_errors_in_generate_are_one_line(cli, warehouse, ingested, monkeypatch, report_only_config):
    from flows import generate
    from quality.errors import QualityError

    def refuse(*args, **kwargs):
        raise QualityError("the synthetic table has no comparable columns")

    monkeypatch.setattr(generate, "gate_synthetic", refuse)
    before = warehouse.snapshot()
    code, _, err = cli(["generate", "--model", ingested["model"], "--rows", "20", "--table", "synth"])
    assert "no comparable columns" in one_line_error(code, err)
    assert warehouse.snapshot() == before
    assert _latest_flow_run_state("generate") == "FAILED"


@pytest.mark.parametrize("args,expected", [
    (["--rows", "1000000000000"], "more than one generate may write"),
    (["--rows", "20", "--where", "age=1e400"], "age"),
])
def test_absurd_generate_requests_are_refused_up_front(cli, warehouse, ingested, args, expected):
    before = warehouse.snapshot()
    code, _, err = cli(["generate", "--model", ingested["model"], "--table", "synth", *args])
    assert expected in one_line_error(code, err)
    assert warehouse.snapshot() == before


CONFIG_CASES = {
    "typo in detect.params": ({"detect": {"params": {"epocs": 2}}}, "detect.params.epocs", "did you mean epochs"),
    "typo in a section": ({"detect": {"epocs": 2}}, "detect.epocs: unknown key", "did you mean epochs"),
    "typo in an ingest entry": ({"ingest": [{"source": "x.csv", "kind": "tabular", "table": "t", "mod": "append"}]},
                                "ingest.0.mod: unknown key", "did you mean mode"),
    "text for a number": ({"quality": {"thresholds": {"accuracy": "high"}}}, "quality.thresholds.accuracy",
                          "valid number"),
    "text for a seed": ({"quality": {"seed": "abc"}}, "quality.seed", "valid integer"),
    "list for a mapping": ({"quality": {"thresholds": [1, 2]}}, "quality.thresholds", "dictionary"),
    "unknown threshold": ({"quality": {"thresholds": {"dcr_shar": 0.5}}}, "quality.thresholds.dcr_shar",
                          "did you mean dcr_share"),
    "unknown generator parameter": ({"train": {"models": [{"table": "adult", "generator": "cart",
                                                           "params": {"depth": 3}}]}}, "train.models.0", "depth"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_every_config_key_is_checked_before_anything_runs(case, cli, warehouse, tmp_path):
    import yaml

    section, where, hint = CONFIG_CASES[case]
    config = {"stages": ["detect", "train", "generate"], **section}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    code, _, err = cli(["run", "--config", path])
    line = one_line_error(code, err)
    assert where in line and hint in line, line
    assert not warehouse.path.exists() or warehouse.snapshot() == {}


# ------------------------------------------------------------------ 5. detector figures on held-out rows
def test_split_validation_keeps_choosing_and_reporting_apart():
    from flows.detect_inputs import split_validation

    val_idx = np.arange(100, 180)
    labels = np.zeros(200, dtype=int)
    labels[[101, 120, 150, 170, 171]] = 1
    select, report = split_validation(val_idx, labels, "tabular", seed=0)
    assert not set(select) & set(report) and sorted([*select, *report]) == list(val_idx)
    assert labels[select].sum() == 2 and labels[report].sum() == 3  # an odd anomaly goes to the report part
    select, report = split_validation(val_idx, None, "timeseries", seed=0)
    assert select.max() < report.min()


def test_detect_train_records_figures_of_the_part_no_choice_saw(cli, warehouse, creditcard_small):
    from sklearn.metrics import roc_auc_score

    from detectors.base import Detector
    from flows.detect_inputs import split_rows, split_validation

    with warehouse.transaction() as con:
        warehouse.write_frame(con, "cc", creditcard_small)
    code, trained, err = run_json(cli, "detect", "train", "--table", "cc", "--detector", "iforest",
                                  "--label-column", "Class", "--seed", "0")
    assert code == 0, err
    assert trained["n_selection"] + trained["n_report"] == trained["n_validation"] == 400
    record = warehouse.read_frame("_detectors").set_index("model_id").loc[trained["model_id"]]
    assert record["selection_auroc"] is not None and 0 <= record["selection_auroc"] <= 1
    # The recorded AUROC is the report part's, recomputed here from the saved model.
    labels = (creditcard_small["Class"] != 0).to_numpy().astype(int)
    _, val_idx = split_rows(len(creditcard_small), "tabular", 0)
    _, report = split_validation(val_idx, labels, "tabular", 0)
    model = Detector.load(Path(trained["path"]))
    features = creditcard_small.drop(columns=["Class"]).iloc[report].reset_index(drop=True)
    assert record["auroc"] == pytest.approx(roc_auc_score(labels[report], model.score(features)))
    code, listed, _ = run_json(cli, "detect", "list")
    assert listed["detectors"][0]["selection_auroc"] == pytest.approx(record["selection_auroc"])

"""Commands that only read start fast: none of them imports Prefect, pandas or a model library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Each costs 0.3-2.5 s to import; a read-only command needs none of them.
HEAVY = ("prefect", "pandas", "torch", "sklearn", "scipy", "great_expectations", "sdv", "detectors", "generators",
         "quality")
READ_ONLY = (["tables"], ["models"], ["models", "list"], ["detect", "list"], ["server", "status"],
             ["datasets", "list"])

PROBE = """
import json, sys
from flows.cli import main
code = main(sys.argv[1:])
heavy = sorted(name for name in sys.modules if name.split(".")[0] in {heavy!r})
print("PROBE " + json.dumps({{"code": code, "heavy": heavy}}))
"""


@pytest.fixture
def filled_warehouse(warehouse, settings):
    """A warehouse holding a data table, an ingest record, a generator model and a detector."""
    import pandas as pd

    from flows.bookkeeping import insert_row, record_table

    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with warehouse.transaction() as con:
        warehouse.write_frame(con, "people", pd.DataFrame({"age": [30, 40], "name": ["a", "b"]}))
        record_table(con, "people", kind="tabular", origin="ingested", detail={})
        insert_row(con, "_ingestions", {
            "run_id": "r1", "source": "people.csv", "sha256": "0" * 64, "kind": "tabular", "table_name": "people",
            "mode": "replace", "rows": 2, "columns": 2, "status": "ok", "summary": "{}", "started_at": now,
            "finished_at": now})
        insert_row(con, "_models", {
            "model_id": "people_cart_0001", "generator": "cart", "params": "{}", "source_table": "people",
            "source_hash": "h", "train_table": "_train_people_cart_0001", "holdout_table": None, "train_rows": 2,
            "holdout_rows": 0, "seed": 0, "fit_seconds": 0.1, "path": str(settings.models_dir / "m"),
            "created_at": now})
        insert_row(con, "_detectors", {
            "model_id": "people_iforest_0001", "detector": "iforest", "table_name": "people", "kind": "tabular",
            "path": str(settings.models_dir / "d"), "feature_columns": "[]", "params": "{}", "n_train": 2,
            "n_validation": 0, "threshold": 0.5, "threshold_source": "train", "score_mode": "default",
            "source_hash": "h", "run_id": "r2", "created_at": now})
    return warehouse


@pytest.mark.parametrize("argv", READ_ONLY, ids=" ".join)
def test_read_only_command_imports_no_heavy_library(argv, filled_warehouse, settings):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "SYNTHWATCH_DB": str(settings.db_path), "SYNTHWATCH_DATA_DIR": str(settings.data_dir)}
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv, "--json"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    probe = json.loads(done.stdout.strip().splitlines()[-1].removeprefix("PROBE "))
    assert probe["code"] == 0, done.stderr
    assert probe["heavy"] == [], f"{' '.join(argv)} imported {probe['heavy']}"
    result = json.loads(done.stdout.strip().splitlines()[-2])
    if argv[0] == "tables":
        assert "people" in [t["table"] for t in result["tables"]]
    elif argv[0] == "models":
        assert [m["model_id"] for m in result["models"]] == ["people_cart_0001"]
    elif argv[0] == "detect":
        assert [m["model_id"] for m in result["detectors"]] == ["people_iforest_0001"]


def test_feedback_labels_a_scored_item_at_once_and_refuses_unknown_items(filled_warehouse, settings, cli):
    import pandas as pd

    now = datetime.now(timezone.utc).replace(tzinfo=None)
    scores = pd.DataFrame({"model_id": "people_iforest_0001", "table_name": "people", "item_key": ["0", "1"],
                           "score": [0.9, 0.1], "threshold": 0.5, "is_alert": [True, False], "scored_at": now,
                           "run_id": "r2", "batch_id": pd.array([None, None], dtype="string")})
    with filled_warehouse.transaction() as con:
        filled_warehouse.write_frame(con, "anomaly_scores", scores, mode="append", internal=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "SYNTHWATCH_DATA_DIR": str(settings.data_dir)}
    probe = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), "feedback", "--alert", "0",
                            "--label", "fraud", "--note", "confirmed by phone", "--json"],
                           capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    result = json.loads(probe.stdout.split("PROBE ")[-1])
    assert result["code"] == 0, probe.stderr
    assert result["heavy"] == [], result["heavy"]  # a label is stored without loading pandas, Prefect or models
    with filled_warehouse.read() as con:
        assert con.execute("SELECT table_name, item_key, model_id, label, note, source FROM main._feedback"
                           ).fetchall() == [("people", "0", "people_iforest_0001", "fraud", "confirmed by phone",
                                             "cli")]
    code, out, err = cli(["feedback", "--alert", "0", "--label", "normal", "--json"])  # relabelling replaces it
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["precision"]["p@10"] == 0.0
    code, _, err = cli(["feedback", "--alert", "nope", "--label", "fraud"])
    assert code == 2 and "never scored" in err and len(err.strip().splitlines()) == 1
    with filled_warehouse.read() as con:
        assert con.execute("SELECT count(*), min(label) FROM main._feedback").fetchall()[0] == (1, "normal")

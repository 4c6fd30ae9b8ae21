"""Lifecycle: `models delete` retires generator models in one transaction, `gc` collects what the records make
unambiguous, and the pipeline retires its own earlier models and detectors by who made them, never by their id."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

FIXTURE_V2 = Path(__file__).parent / "data" / "warehouse_v2"


def run_json(cli, *args):
    code, out, err = cli([*args, "--json"])
    lines = out.strip().splitlines()
    return code, (json.loads(lines[-1]) if lines else None), err


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def catalog(warehouse, name, schema="main"):
    from flows.bookkeeping import catalog_entry

    with warehouse.read() as con:
        return catalog_entry(con, name, schema)


@pytest.fixture
def adult(warehouse, adult_small, report_only_config):
    """200 real Adult rows as table `adult`; the gate reports without failing (these tests are about lifecycle)."""
    with warehouse.transaction() as con:
        warehouse.write_frame(con, "adult", adult_small.iloc[:200].reset_index(drop=True))
    return "adult"


def train_cart(cli, table="adult"):
    code, trained, err = run_json(cli, "train", "--table", table, "--generator", "cart")
    assert code == 0, err
    return trained


# ------------------------------------------------------------------ models delete
def test_delete_retires_a_model_with_its_splits_and_files_and_marks_what_it_generated(cli, warehouse, settings,
                                                                                        adult):
    old, kept = train_cart(cli), train_cart(cli)
    code, _, err = run_json(cli, "generate", "--model", old["model_id"], "--rows", "40", "--table", "synth")
    assert code == 0, err

    code, out, err = run_json(cli, "models", "delete", "--model", old["model_id"])
    assert code == 0, err
    [deleted] = out["deleted"]
    assert sorted(deleted["tables_dropped"]) == sorted([old["train_table"], old["holdout_table"]])
    assert deleted["generated_kept"] == ["synth"]
    assert warehouse.read_frame("_models")["model_id"].tolist() == [kept["model_id"]]
    tables = set(warehouse.list_tables(include_internal=True))
    assert old["train_table"] not in tables and old["holdout_table"] not in tables
    assert kept["train_table"] in tables and kept["holdout_table"] in tables
    assert catalog(warehouse, old["train_table"]) is None and catalog(warehouse, old["holdout_table"]) is None
    assert sorted(p.name for p in settings.models_dir.iterdir()) == [kept["model_id"]]
    # The published table stays, its lineage says its model is gone.
    assert len(warehouse.read_frame("synth")) == 40
    detail = catalog(warehouse, "synth")["detail"]
    assert detail["model_id"] == old["model_id"] and detail["model_deleted"] is True and detail["model_deleted_at"]
    # `models` still lists (bare and as `models list`); the deleted id is unknown now.
    for args in (["models"], ["models", "list"]):
        code, listed, err = run_json(cli, *args)
        assert code == 0 and [m["model_id"] for m in listed["models"]] == [kept["model_id"]], err
    code, out, err = cli(["models"])
    assert code == 0 and kept["model_id"] in out
    code, _, err = cli(["generate", "--model", old["model_id"], "--rows", "5", "--table", "again"])
    assert code == 2 and f"unknown model id {old['model_id']!r}" in err


def test_deleting_an_unknown_model_names_the_known_ones_and_changes_nothing(cli, warehouse, settings, adult):
    model = train_cart(cli)
    before, files = warehouse.snapshot(), files_under(settings.models_dir)
    code, out, err = cli(["models", "delete", "--model", model["model_id"], "--model", "nope"])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "unknown model id 'nope'" in lines[0] and model["model_id"] in lines[0]
    assert warehouse.snapshot() == before and files_under(settings.models_dir) == files


def test_a_failed_delete_leaves_warehouse_and_files_as_they_were(cli, warehouse, settings, adult, monkeypatch):
    from flows import train

    first, second = train_cart(cli), train_cart(cli)
    assert run_json(cli, "generate", "--model", first["model_id"], "--rows", "30", "--table", "synth")[0] == 0
    before, files = warehouse.snapshot(), files_under(settings.models_dir)
    calls = []

    def failing_forget(con, name, **kwargs):
        calls.append(name)
        if len(calls) == 3:  # the first model's splits are dropped by now, and both folders are set aside
            raise RuntimeError("disk full while deleting")
        return forget(con, name, **kwargs)

    forget = train.forget_table
    monkeypatch.setattr(train, "forget_table", failing_forget)
    with pytest.raises(RuntimeError, match="deleting"):
        train.delete_models(settings, [first["model_id"], second["model_id"]])
    assert len(calls) == 3
    assert warehouse.snapshot() == before
    assert files_under(settings.models_dir) == files
    assert "model_deleted" not in catalog(warehouse, "synth")["detail"]


# ------------------------------------------------------------------ gc
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_gc_collects_each_kind_of_orphan_and_nothing_else(cli, warehouse, settings, adult):
    from flows.bookkeeping import insert_row, now_utc, record_table

    kept, lost = train_cart(cli), train_cart(cli)
    assert run_json(cli, "generate", "--model", kept["model_id"], "--rows", "30", "--table", "synth")[0] == 0
    models, this_db = settings.models_dir, str(settings.db_path.resolve())
    dead = _dead_pid()
    staged = models / f".adult_cart_deadbeef.staging-{dead}"  # a train killed while saving
    staged.mkdir()
    aside = models / f".adult_cart_0ddba11.deleting-{dead}"  # a delete killed after its COMMIT
    aside.mkdir()
    (aside / ".warehouse").write_text(this_db)
    foreign = models / "other_cart_12345678"  # another warehouse's model, sharing the models dir
    foreign.mkdir()
    (foreign / ".warehouse").write_text(str(settings.db_path.parent / "other.duckdb"))
    unmarked = models / "legacy_without_marker"
    unmarked.mkdir()
    with warehouse.transaction() as con:
        # A model row removed by hand: its folder and its splits are left without a model.
        con.execute("DELETE FROM main._models WHERE model_id = ?", [lost["model_id"]])
        # A table dropped by hand: its catalog row is stale.
        con.execute("CREATE TABLE main.gone AS SELECT * FROM main.adult LIMIT 5")
        record_table(con, "gone", kind="tabular", origin="generated", detail={"model_id": kept["model_id"]})
        con.execute("DROP TABLE main.gone")
        # A quarantined copy that a later generate of the same name published over.
        con.execute("CREATE TABLE quarantine.synth AS SELECT * FROM main.synth LIMIT 3")
        record_table(con, "synth", schema="quarantine", kind="tabular", origin="generated",
                     detail={"model_id": kept["model_id"], "passed_gate": False})
        insert_row(con, "_generations", {"table_name": "synth", "model_id": kept["model_id"], "rows": 3,
                                         "published_schema": "quarantine",
                                         "created_at": now_utc().replace(year=2000)})
        # Tables made by hand, even with a split-like name, are nobody's garbage.
        con.execute(f"CREATE TABLE main._train_{lost['model_id']}_copy AS SELECT 1 AS a")
        con.execute("CREATE TABLE main.handmade AS SELECT 1 AS a")

    before, files = warehouse.snapshot(), files_under(models)
    code, report, err = run_json(cli, "gc", "--dry-run")
    assert code == 0, err
    found = report["found"]
    assert report["dry_run"] and all(not v for v in report["removed"].values())
    assert sorted(f["name"] for f in found["model_folders"]) == sorted([staged.name, lost["model_id"]])
    assert [(f["name"], f["action"]) for f in found["aside_folders"]] == [(aside.name, "remove")]
    assert sorted(t["table"] for t in found["orphan_tables"]) == sorted([lost["train_table"], lost["holdout_table"]])
    assert [(t["schema"], t["table"]) for t in found["stale_catalog"]] == [("main", "gone")]
    assert [(t["schema"], t["table"]) for t in found["superseded_quarantine"]] == [("quarantine", "synth")]
    assert warehouse.snapshot() == before and files_under(models) == files
    code, text, err = cli(["gc", "--dry-run"])
    assert code == 0 and "would remove" in text and lost["train_table"] in text

    code, report, err = run_json(cli, "gc")
    assert code == 0 and not report["dry_run"] and report["removed"] == found, err
    tables = set(warehouse.list_tables(include_internal=True))
    assert lost["train_table"] not in tables and lost["holdout_table"] not in tables
    assert {kept["train_table"], kept["holdout_table"], "synth", "handmade", "adult",
            f"_train_{lost['model_id']}_copy"} <= tables
    assert not warehouse.table_exists("synth", schema="quarantine")
    assert catalog(warehouse, "gone") is None and catalog(warehouse, "synth")["origin"] == "generated"
    assert sorted(p.name for p in models.iterdir()) == sorted([kept["model_id"], foreign.name, unmarked.name])
    # Nothing is left to collect, and the kept model still generates.
    code, report, err = run_json(cli, "gc")
    assert code == 0 and all(not v for v in report["found"].values())
    assert cli(["gc"])[1].strip() == "nothing to collect"
    assert run_json(cli, "generate", "--model", kept["model_id"], "--rows", "20", "--table", "synth2")[0] == 0


def test_gc_on_a_missing_warehouse_creates_nothing(cli, settings):
    code, report, err = run_json(cli, "gc")
    assert code == 0 and all(not v for v in report["found"].values()), err
    assert not settings.db_path.exists()


# ------------------------------------------------------------------ the pipeline retires its own, by record
def test_two_pipeline_runs_leave_one_pipeline_model_and_detector_and_spare_hand_made_ones(
        cli, warehouse, settings, adult, creditcard_small, tmp_path, report_only_config):
    with warehouse.transaction() as con:
        warehouse.write_frame(con, "cc", creditcard_small)
    mine = train_cart(cli)
    code, detector, err = run_json(cli, "detect", "train", "--table", "cc", "--detector", "iforest")
    assert code == 0, err
    # A hand-trained detector whose id looks like the pipeline's is still the user's.
    code, lookalike, err = run_json(cli, "detect", "train", "--table", "cc", "--detector", "iforest", "--seed", "1")
    assert code == 0, err
    fake_id = "pipeline-cc-iforest-0000beef"
    with warehouse.transaction() as con:
        con.execute("UPDATE main._detectors SET model_id = ?, path = ? WHERE model_id = ?",
                    [fake_id, str(settings.models_dir / fake_id), lookalike["model_id"]])
    (settings.models_dir / lookalike["model_id"]).rename(settings.models_dir / fake_id)

    config = tmp_path / "p.yaml"
    config.write_text(yaml.safe_dump({
        "stages": ["train", "generate", "detect"],
        "train": {"models": [{"table": "adult", "generator": "cart", "seed": 1}]},
        "generate": {"tables": [{"source_table": "adult", "generator": "cart", "rows": 40, "table": "synth"}]},
        "detect": {"table": "cc", "detector": "iforest", "label_column": "Class", "normal_value": 0},
        "quality": yaml.safe_load(report_only_config.read_text())["quality"]}))
    runs = []
    for _ in range(2):
        code, out, err = run_json(cli, "run", "--config", config)
        assert code == 0, err
        runs.append(out["stages"])
    first_model = runs[0]["train"]["models"][0]["model_id"]
    second_model = runs[1]["train"]["models"][0]["model_id"]
    assert runs[1]["train"]["models"][0]["retired"] == [first_model]
    assert runs[1]["detect"]["retired"] == [runs[0]["detect"]["model_id"]]

    models = warehouse.read_frame("_models").set_index("model_id")["made_by"].to_dict()
    assert models == {mine["model_id"]: "cli", second_model: "pipeline"}
    detectors = warehouse.read_frame("_detectors").set_index("model_id")["made_by"].to_dict()
    assert detectors == {detector["model_id"]: "cli", fake_id: "cli", runs[1]["detect"]["model_id"]: "pipeline"}
    tables = set(warehouse.list_tables(include_internal=True))
    assert f"_train_{first_model}" not in tables and f"_holdout_{first_model}" not in tables
    assert {mine["train_table"], f"_train_{second_model}"} <= tables
    assert sorted(p.name for p in settings.models_dir.iterdir()) == sorted(
        [mine["model_id"], second_model, detector["model_id"], fake_id, runs[1]["detect"]["model_id"]])
    assert catalog(warehouse, "synth")["detail"]["model_id"] == second_model

    # replace_previous: false keeps every run's model.
    raw = yaml.safe_load(config.read_text())
    raw["train"]["replace_previous"] = False
    raw["stages"] = ["train"]
    config.write_text(yaml.safe_dump(raw))
    code, out, err = run_json(cli, "run", "--config", config)
    assert code == 0 and out["stages"]["train"]["models"][0]["retired"] == [], err
    assert (warehouse.read_frame("_models")["made_by"] == "pipeline").sum() == 2


# ------------------------------------------------------------------ schema version 3
def test_a_version_2_warehouse_learns_who_made_each_model(settings, warehouse, restore_export):
    from flows.bookkeeping import SCHEMA_VERSION, stored_version

    con = restore_export(FIXTURE_V2, settings.db_path)
    assert stored_version(con) == 2
    con.close()
    with warehouse.read() as con:
        assert stored_version(con) == SCHEMA_VERSION
        detectors = dict(con.execute("SELECT model_id, made_by FROM main._detectors").fetchall())
        models = dict(con.execute("SELECT model_id, made_by FROM main._models").fetchall())
    # The detect stage of version 2 named its detectors; version 2 recorded nothing about generator models.
    assert detectors == {"cc-iforest-276aca96": "cli", "pipeline-cc-iforest-065ee803": "pipeline"}
    assert models == {"adult_cart_0e2ebc2c": "cli"}

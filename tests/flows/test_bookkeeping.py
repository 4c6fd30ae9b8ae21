"""The versioned warehouse: one place for the bookkeeping DDL, a schema version in the file, migrations from the
previous release, a catalog of every data table's kind and origin, and readers that never write."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

FIXTURE = Path(__file__).parent / "data" / "warehouse_v1"


def run_json(cli, *args):
    code, out, err = cli([*args, "--json"])
    lines = out.strip().splitlines()
    return code, (json.loads(lines[-1]) if lines else None), err


@pytest.fixture
def v1_warehouse(settings):
    """The warehouse file the previous release wrote (see tests/flows/data/warehouse_v1/README.md)."""
    con = duckdb.connect(str(settings.db_path))
    for script in ("schema.sql", "load.sql"):
        sql = (FIXTURE / script).read_text().replace("'export_v1/", f"'{FIXTURE}/")
        for statement in filter(str.strip, sql.split(";\n")):
            con.execute(statement)
    con.close()
    return settings.db_path


def raw_snapshot(path) -> dict[str, str]:
    """Fingerprints of every table, read without synthwatch's Warehouse (which would upgrade the file)."""
    from flows.warehouse import Warehouse

    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute("SELECT table_schema, table_name FROM information_schema.tables "
                           "WHERE table_type = 'BASE TABLE'").fetchall()
        return {f"{s}.{n}": Warehouse.hash_table(con, n, s) for s, n in rows}
    finally:
        con.close()


def test_a_warehouse_of_the_previous_release_is_migrated_once(v1_warehouse, warehouse):
    from flows.bookkeeping import SCHEMA_VERSION, catalog_entry, stored_version

    before = raw_snapshot(v1_warehouse)
    with warehouse.read() as con:  # the first read upgrades the file (through one write transaction)
        assert stored_version(con) == SCHEMA_VERSION
        kinds = {n: (catalog_entry(con, n)["kind"], catalog_entry(con, n)["origin"])
                 for n in ("adult", "ecg", "cc2", "imgs", "handmade", "anomaly_scores",
                           "_train_adult_cart_ab4c7689")}
        synth = catalog_entry(con, "adult_synth", "quarantine")
        ecg = catalog_entry(con, "ecg")
        columns = {r[0] for r in con.execute("DESCRIBE main._detectors").fetchall()}
    assert kinds == {"adult": ("tabular", "ingested"), "ecg": ("timeseries", "ingested"),
                     "cc2": ("tabular", "ingested"), "imgs": ("image", "ingested"), "handmade": ("tabular", "user"),
                     "anomaly_scores": ("tabular", "pipeline"),
                     "_train_adult_cart_ab4c7689": ("tabular", "pipeline")}
    assert (synth["kind"], synth["origin"]) == ("tabular", "generated")
    assert ecg["detail"]["time_column"] == "t"
    assert {"n_selection", "n_report", "selection_auroc", "selection_auprc"} <= columns
    after = raw_snapshot(v1_warehouse)
    # Every data table is unchanged; only bookkeeping was added or widened (version 3 adds `made_by` to both,
    # version 4 the batch of each score).
    widened = {"main._detectors", "main._models", "main.anomaly_scores"}
    assert {k: v for k, v in after.items() if k in before and k not in widened} == {
        k: v for k, v in before.items() if k not in widened}
    assert set(after) - set(before) == {"main._meta", "main._catalog", "main._batches", "main._monitor_batches",
                                        "main._drift", "main.monitoring_events", "main._feedback",
                                        "main._champions", "main._retrain_decisions"}
    with warehouse.read() as con:
        assert stored_version(con) == SCHEMA_VERSION


def test_the_previous_release_s_data_works_after_the_upgrade(cli, v1_warehouse, warehouse, tmp_path):
    code, listed, err = run_json(cli, "detect", "list")
    assert code == 0 and listed["detectors"][0]["model_id"] == "cc2-iforest-af4a6222", err
    code, models, err = run_json(cli, "models")
    assert code == 0 and models["models"][0]["model_id"] == "adult_cart_ab4c7689", err
    # Ingested by the old release: still the ingest command's; made by hand: nobody's.
    (tmp_path / "more.csv").write_text("a\n7\n")
    assert cli(["ingest", tmp_path / "more.csv", "--kind", "tabular", "--table", "handmade"])[0] == 2
    code, tables, err = run_json(cli, "tables")
    by_name = {t["table"]: t for t in tables["tables"]}
    assert by_name["imgs"]["kind"] == "image" and by_name["handmade"]["origin"] == "user"


def test_readers_never_write(settings, warehouse, tmp_path):
    from flows.pipeline import warehouse_summary

    assert not settings.db_path.exists()
    summary = warehouse_summary(settings)  # a missing warehouse reads as empty...
    assert summary["tables"] == [] and not settings.db_path.exists()  # ...and is not created
    with warehouse.transaction() as con:
        con.execute("CREATE TABLE main.t AS SELECT 1 AS a")
    with warehouse.read() as con:
        with pytest.raises(duckdb.Error):
            con.execute("CREATE TABLE main.u AS SELECT 1 AS a")
    # Two readers at once (a dashboard and a command) do not lock each other out.
    with warehouse.read() as first, warehouse.read() as second:
        assert first.execute("SELECT count(*) FROM main.t").fetchall() == second.execute(
            "SELECT count(*) FROM main.t").fetchall()


def test_a_newer_schema_is_refused(settings, warehouse):
    from flows.errors import SynthwatchError

    with warehouse.transaction() as con:
        con.execute("UPDATE main._meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SynthwatchError, match="newer synthwatch"):
        with warehouse.transaction():
            pass


def test_every_table_a_command_writes_is_catalogued(cli, warehouse, tmp_path, adult_small, report_only_config):
    from flows.bookkeeping import catalog_entry

    adult_small.iloc[:200].to_csv(tmp_path / "adult.csv", index=False)
    (tmp_path / "ecg.csv").write_text("t,value\n" + "".join(f"{i},{i % 7}\n" for i in range(100)))
    assert cli(["ingest", tmp_path / "adult.csv", "--kind", "tabular", "--table", "adult"])[0] == 0
    assert cli(["ingest", tmp_path / "ecg.csv", "--kind", "timeseries", "--table", "ecg"])[0] == 0
    code, trained, err = run_json(cli, "train", "--table", "adult", "--generator", "cart")
    assert code == 0, err
    assert cli(["generate", "--model", trained["model_id"], "--rows", "20", "--table", "synth"])[0] == 0
    with warehouse.read() as con:
        from flows.bookkeeping import BOOKKEEPING

        data_tables = [(s, n) for s, n in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        ).fetchall() if not (s == "main" and n in BOOKKEEPING)]
        entries = {n: catalog_entry(con, n, s) for s, n in data_tables}
    assert all(entries.values()), [n for n, e in entries.items() if e is None]
    assert entries["ecg"]["kind"] == "timeseries" and entries["synth"]["origin"] == "generated"
    assert entries[trained["train_table"]]["origin"] == "pipeline"


def test_train_refuses_a_table_of_another_kind(cli, warehouse, tmp_path):
    (tmp_path / "ecg.csv").write_text("t,value\n" + "".join(f"{i},{i % 7}\n" for i in range(100)))
    assert cli(["ingest", tmp_path / "ecg.csv", "--kind", "timeseries", "--table", "ecg"])[0] == 0
    before = warehouse.snapshot()
    code, _, err = cli(["train", "--table", "ecg", "--generator", "cart"])
    assert code == 2 and "holds timeseries data" in err and "learns tabular data" in err, err
    assert warehouse.snapshot() == before


FIXTURE_V3 = Path(__file__).parent / "data" / "warehouse_v3"


def test_a_version_3_warehouse_is_migrated_to_monitoring(settings, warehouse, cli, restore_export):
    """A file the previous release wrote (schema 3) opens: scores gain a batch column, monitoring tables appear,
    and everything it held is still there and usable."""
    from flows.bookkeeping import SCHEMA_VERSION, catalog_entry, stored_version

    con = restore_export(FIXTURE_V3, settings.db_path)
    assert stored_version(con) == 3
    n_scores = con.execute("SELECT count(*) FROM anomaly_scores").fetchall()[0][0]
    con.close()
    with warehouse.read() as con:
        assert stored_version(con) == SCHEMA_VERSION == 4
        columns = [r[0] for r in con.execute("DESCRIBE main.anomaly_scores").fetchall()]
        assert "batch_id" in columns
        assert con.execute("SELECT count(*), count(batch_id) FROM main.anomaly_scores").fetchall()[0] == (n_scores, 0)
        assert "batch_id" in [r[0] for r in con.execute("DESCRIBE main.alerts").fetchall()]
        for table in ("_batches", "_monitor_batches", "_drift", "monitoring_events", "_feedback", "_champions",
                      "_retrain_decisions"):
            assert con.execute(f"SELECT count(*) FROM main.{table}").fetchall()[0][0] == 0
        assert catalog_entry(con, "monitoring_events")["origin"] == "pipeline"
        assert catalog_entry(con, "series")["kind"] == "timeseries"
    # what version 3 held is still usable: a detector it trained scores again, now with the batch column
    code, out, err = cli(["detect", "list", "--json"])
    assert code == 0, err
    detectors = json.loads(out.strip().splitlines()[-1])["detectors"]
    assert len(detectors) == 2

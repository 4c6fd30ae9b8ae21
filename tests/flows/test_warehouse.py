"""The warehouse: names, quoting, transactions, busy handling."""

import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from flows.errors import InvalidTableName, TableNotFound, WarehouseBusy
from flows.warehouse import Warehouse, quote_ident, validate_table_name


@pytest.mark.parametrize("name", ['x"; DROP TABLE y; --', "../etc", "a b", "1abc", "", "é", "a" * 64, "_ingestions",
                                  "t;", "x'y"])
def test_hostile_or_reserved_names_are_refused(name):
    with pytest.raises(InvalidTableName, match="invalid table name"):
        validate_table_name(name)


def test_plain_names_pass_and_quotes_are_doubled():
    assert validate_table_name("adult_2024") == "adult_2024"
    assert quote_ident('we"ird') == '"we""ird"'


def test_bookkeeping_created_on_first_write_never_by_a_read(warehouse):
    from flows.bookkeeping import SCHEMA_VERSION, stored_version

    assert warehouse.list_tables(include_internal=True) == []
    assert not warehouse.path.exists()
    with warehouse.transaction():
        pass
    assert warehouse.list_tables() == ["alerts", "anomaly_scores", "monitoring_events"]
    assert {"_ingestions", "_catalog", "_meta"} <= set(warehouse.list_tables(include_internal=True))
    with warehouse.read() as con:
        assert stored_version(con) == SCHEMA_VERSION


def test_failed_transaction_leaves_warehouse_unchanged(warehouse):
    with warehouse.transaction() as con:
        warehouse.write_frame(con, "t", pd.DataFrame({"a": [1, 2, 3]}))
    before = warehouse.snapshot()
    with pytest.raises(RuntimeError):
        with warehouse.transaction() as con:
            warehouse.write_frame(con, "t", pd.DataFrame({"a": [9]}), mode="append")
            warehouse.write_frame(con, "u", pd.DataFrame({"b": [1]}))
            raise RuntimeError("boom")
    assert warehouse.snapshot() == before
    assert warehouse.read_frame("t")["a"].tolist() == [1, 2, 3]


def test_append_with_other_columns_is_refused(warehouse):
    with warehouse.transaction() as con:
        warehouse.write_frame(con, "t", pd.DataFrame({"a": [1]}))
    with pytest.raises(Exception, match="differ"):
        with warehouse.transaction() as con:
            warehouse.write_frame(con, "t", pd.DataFrame({"zzz": [1]}), mode="append")
    assert list(warehouse.read_frame("t").columns) == ["a"]


def test_missing_table_names_what_exists(warehouse):
    with warehouse.transaction() as con:
        warehouse.write_frame(con, "present", pd.DataFrame({"a": [1]}))
    with pytest.raises(TableNotFound, match="present"):
        warehouse.read_frame("absent")


def test_table_hash_ignores_row_order_but_not_content(warehouse):
    with warehouse.transaction() as con:
        warehouse.write_frame(con, "a", pd.DataFrame({"x": [1, 2, 3]}))
        warehouse.write_frame(con, "b", pd.DataFrame({"x": [3, 1, 2]}))
        warehouse.write_frame(con, "c", pd.DataFrame({"x": [3, 1, 4]}))
    assert warehouse.table_hash("a") == warehouse.table_hash("b") != warehouse.table_hash("c")


def test_second_writer_gets_a_clear_busy_error(warehouse):
    with warehouse.transaction() as con:
        warehouse.write_frame(con, "t", pd.DataFrame({"a": [1]}))
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(warehouse.path)!r})
        con.execute("INSERT INTO t VALUES (2)")
        print("locked", flush=True)
        time.sleep(4)
        con.close()
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        busy = Warehouse(warehouse.path, busy_timeout=0.5)
        start = time.monotonic()
        with pytest.raises(WarehouseBusy, match="is busy"):
            with busy.transaction() as con:
                warehouse.write_frame(con, "t", pd.DataFrame({"a": [3]}), mode="append")
        assert time.monotonic() - start < 3
        # A patient writer waits for the lock and then succeeds; nothing is lost or corrupted.
        patient = Warehouse(warehouse.path, busy_timeout=30)
        with patient.transaction() as con:
            warehouse.write_frame(con, "t", pd.DataFrame({"a": [3]}), mode="append")
    finally:
        holder.wait(timeout=30)
    assert sorted(warehouse.read_frame("t")["a"].tolist()) == [1, 2, 3]

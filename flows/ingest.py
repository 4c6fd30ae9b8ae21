"""Ingestion: read a source, validate it with Great Expectations, write it to the warehouse in one transaction."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.runtime import flow_run

from flows import readers
from flows.bookkeeping import insert_row, now_utc, record_table
from flows.errors import IngestError
from flows.validation import validate_frame
from flows.warehouse import Warehouse, check_write_target, qualified, quote_ident, validate_table_name


def already_ingested(con: duckdb.DuckDBPyConnection, table: str, sha256: str) -> dict | None:
    """The earlier successful ingest of this exact content into this table, if the table still holds just that.

    "Still holds" is checked, not assumed: the last ingest into the table must be this content, and the table's
    fingerprint must equal the one recorded when that ingest committed (anything that changed the table since,
    by any means, makes the same content worth writing again).
    """
    if not Warehouse.exists(con, "_ingestions") or not Warehouse.exists(con, table):
        return None
    rows = con.execute(
        "SELECT run_id, rows, finished_at, sha256, summary FROM main._ingestions "
        "WHERE lower(table_name) = lower(?) AND status = 'ok' ORDER BY finished_at DESC LIMIT 1", [table]
    ).fetchall()
    row = rows[0] if rows else None
    if row is None or row[3] != sha256:
        return None
    recorded = (json.loads(row[4]) if row[4] else {}).get("table_hash")
    # Rows written before fingerprints were recorded keep the old rule (the last ingest was this content).
    if recorded is not None and recorded != Warehouse.hash_table(con, table):
        return None
    return {"run_id": row[0], "rows": int(row[1]), "finished_at": str(row[2])}


def _describe(con: duckdb.DuckDBPyConnection, name: str) -> list[dict]:
    return [{"name": r[0], "type": r[1]} for r in con.execute(f"DESCRIBE {qualified(name)}").fetchall()]


def _install_staged(con: duckdb.DuckDBPyConnection, stage: str, table: str, mode: str) -> None:
    target = qualified(table)
    if mode == "replace" or not Warehouse.exists(con, table):
        con.execute(f"DROP TABLE IF EXISTS {target}")
        con.execute(f"ALTER TABLE {qualified(stage)} RENAME TO {quote_ident(table)}")
        return
    old = [c["name"] for c in _describe(con, table)]
    new = [c["name"] for c in _describe(con, stage)]
    if sorted(old) != sorted(new):
        raise IngestError(f"cannot append to {table}: its columns ({', '.join(old)}) differ from the source's "
                          f"({', '.join(new)}); use --mode replace or another table")
    con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {qualified(stage)}")
    con.execute(f"DROP TABLE {qualified(stage)}")


@dataclass
class StagedSource:
    """A source read and validated in memory, ready to be written in one short transaction."""

    data: Any  # a pyarrow Table (tabular) or a DataFrame (series, images)
    rows: int
    columns: list[dict]
    summary: dict


def read_and_validate(path: Path, kind: str, table: str, options: dict) -> StagedSource:
    """Read a source and run its expectation suite; touches no warehouse (so holds no lock)."""
    options = dict(options)
    key_columns = list(options.pop("key_columns", []) or [])
    summary: dict = {}
    if kind == "tabular":
        tab_source = readers.tabular_select(path, delimiter=options.get("delimiter"), header=options.get("header"),
                                            columns=options.get("columns"), fmt=options.get("format"),
                                            skip=int(options.get("skip", 0)))
        summary["format"] = tab_source.format
        summary.update(tab_source.dialect)
        mem = readers.memory_connection()  # in memory: reading takes no warehouse lock
        try:
            mem.execute(f"CREATE TABLE staged AS {tab_source.select_sql}", tab_source.params)
        except duckdb.Error as exc:
            raise readers.read_error(path, exc) from None
        n_rows = mem.execute("SELECT count(*) FROM staged").fetchall()[0][0]
        if n_rows == 0:
            raise IngestError(f"source {path} has a header but no rows")
        columns = [{"name": r[0], "type": r[1]} for r in mem.execute("DESCRIBE staged").fetchall()]
        names = [c["name"] for c in columns]
        # Types are per column in DuckDB, so a head sample carries them; keys are checked on every row.
        sample = mem.execute("SELECT * FROM staged LIMIT 1000").df()
        present = [k for k in key_columns if k in names]
        keys_frame = (mem.execute(f"SELECT {', '.join(quote_ident(k) for k in present)} FROM staged").df()
                      if present else None)
        validation = validate_frame(sample, name=table, key_columns=key_columns, keys_frame=keys_frame)
        data = mem.sql("SELECT * FROM staged").to_arrow_table()
        mem.close()
    else:
        if kind == "timeseries":
            raw = readers.read_tabular_frame(path, delimiter=options.get("delimiter"), header=options.get("header"),
                                             columns=options.get("columns"), skip=int(options.get("skip", 0)))
            frame, kind_summary = readers.prepare_timeseries(
                raw, time_column=options.get("time_column"), id_column=options.get("id_column"),
                layout=options.get("layout", "long"))
            key_columns += [c for c in (kind_summary["time_column"], kind_summary["id_column"]) if c]
        else:
            images, labels, origins = readers.read_images(path)
            frame, kind_summary = readers.images_to_frame(images, labels, origins)
            if frame["pixels"].isna().any():
                raise IngestError(f"{path}: some images have no pixels")
            key_columns += ["id", "height", "width", "channels"]
        summary.update(kind_summary)
        n_rows = len(frame)
        if n_rows == 0:
            raise IngestError(f"source {path} has no rows")
        validation = validate_frame(frame.drop(columns=["pixels"], errors="ignore"), name=table,
                                    key_columns=key_columns)
        data = frame
        columns = None
    summary["validation"] = {k: validation[k] for k in ("suite", "evaluated", "success")}
    return StagedSource(data=data, rows=int(n_rows), columns=columns, summary=summary)


def ingest_source(wh: Warehouse, source: str | Path, *, kind: str, table: str, mode: str = "replace",
                  run_id: str | None = None, options: dict | None = None) -> dict:
    """Ingest one source into one table; returns what was done. Raises SynthwatchError on bad input.

    The file is read and validated before the warehouse is opened for writing; the write transaction then only
    re-checks the target and the content (the decision made there is final), copies the staged rows and records
    them, so other commands wait for seconds, not for a whole read.
    """
    if kind not in readers.KINDS:
        raise IngestError(f"unknown kind {kind!r}: use one of {', '.join(readers.KINDS)}")
    if mode not in ("replace", "append"):
        raise IngestError(f"unknown mode {mode!r}: use replace or append")
    validate_table_name(table, writing=True)
    path = readers.check_source(source)
    run_id = run_id or str(uuid.uuid4())
    started = now_utc()
    sha256 = readers.source_sha256(path)

    def unchanged(previous: dict, con) -> dict:
        return {"table": table, "kind": kind, "rows": previous["rows"], "written": False,
                "already_ingested": True, "previous_run_id": previous["run_id"], "sha256": sha256,
                "source": str(path), "columns": _describe(con, table)}

    if wh.path.exists():  # cheap early answers; both are decided again inside the write transaction
        with wh.read() as con:
            check_write_target(con, table, command="ingest")
            previous = already_ingested(con, table, sha256)
            if previous:
                return unchanged(previous, con)

    staged = read_and_validate(path, kind, table, options or {})
    stage = f"_stage_{uuid.uuid4().hex[:16]}"
    locked_at = time.perf_counter()
    with wh.transaction() as con:
        check_write_target(con, table, command="ingest")
        previous = already_ingested(con, table, sha256)
        if previous:  # another process wrote this content while we were reading it
            return unchanged(previous, con)
        if isinstance(staged.data, pd.DataFrame):
            Warehouse.write_frame(con, stage, staged.data, mode="replace", internal=True)
        else:
            view = f"__sw_arrow_{uuid.uuid4().hex[:12]}"
            con.register(view, staged.data)
            try:
                con.execute(f"CREATE TABLE {qualified(stage)} AS SELECT * FROM {quote_ident(view)}")
            finally:
                con.unregister(view)
        columns = _describe(con, stage)
        _install_staged(con, stage, table, mode)
        total = con.execute(f"SELECT count(*) FROM {qualified(table)}").fetchall()[0][0]
        summary = {**staged.summary, "table_hash": Warehouse.hash_table(con, table)}
        insert_row(con, "_ingestions", {
            "run_id": run_id, "source": str(path), "sha256": sha256, "kind": kind, "table_name": table,
            "mode": mode, "rows": staged.rows, "columns": len(columns), "status": "ok",
            "summary": json.dumps(summary, default=str), "started_at": started, "finished_at": now_utc()})
        record_table(con, table, kind=kind, origin="ingested", run_id=run_id,
                     detail={"source": str(path), **{k: summary[k] for k in ("time_column", "id_column")
                                                     if summary.get(k)}})
    summary.pop("table_hash")
    return {"table": table, "kind": kind, "rows": staged.rows, "table_rows": int(total), "written": True,
            "write_lock_seconds": round(time.perf_counter() - locked_at, 3),
            "already_ingested": False, "mode": mode, "columns": columns, "sha256": sha256, "source": str(path),
            "summary": summary, "run_id": run_id}


def wh_columns(wh: Warehouse, table: str) -> list[dict]:
    with wh.read() as con:
        return _describe(con, table)


@task(cache_policy=NONE)
def ingest_task(db_path: str, source: str, kind: str, table: str, mode: str, options: dict) -> dict:
    """Read, validate and write one source; bad input raises, so Prefect records the run as Failed."""
    run_id = str(flow_run.get_id() or uuid.uuid4())
    return ingest_source(Warehouse(db_path), source, kind=kind, table=table, mode=mode, run_id=run_id,
                         options=options)


@flow(name="ingest", log_prints=False)
def ingest_flow(db_path: str, source: str, kind: str, table: str, mode: str = "replace",
                options: dict | None = None) -> dict:
    """Ingest a tabular, time-series or image source into the warehouse."""
    logger = get_run_logger()
    result = ingest_task(db_path, source, kind, table, mode, options or {})
    if result["written"]:
        logger.info("ingested %s rows into %s", result["rows"], table)
    else:
        logger.info("%s already holds this content (run %s); nothing written", table, result["previous_run_id"])
    return result

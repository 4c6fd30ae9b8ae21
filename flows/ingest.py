"""Ingestion: read a source, validate it with Great Expectations, write it to the warehouse in one transaction."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.runtime import flow_run
from prefect.states import Failed

from flows import readers
from flows.errors import IngestError, SynthwatchError
from flows.validation import validate_frame
from flows.warehouse import Warehouse, qualified, quote_ident, validate_table_name


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def already_ingested(con: duckdb.DuckDBPyConnection, table: str, sha256: str) -> dict | None:
    """The earlier successful ingest of this exact content into this table, if the table still holds it."""
    row = con.execute(
        "SELECT run_id, rows, finished_at FROM main._ingestions WHERE table_name = ? AND sha256 = ? "
        "AND status = 'ok' ORDER BY finished_at DESC LIMIT 1", [table, sha256]
    ).fetchone()
    if row is None or not Warehouse.exists(con, table):
        return None
    last = con.execute(
        "SELECT sha256 FROM main._ingestions WHERE table_name = ? AND status = 'ok' ORDER BY finished_at DESC LIMIT 1",
        [table],
    ).fetchone()
    # Same content again is a no-op only if nothing else replaced or appended to the table since.
    if last is None or last[0] != sha256:
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


def ingest_source(wh: Warehouse, source: str | Path, *, kind: str, table: str, mode: str = "replace",
                  run_id: str | None = None, options: dict | None = None) -> dict:
    """Ingest one source into one table; returns what was done. Raises SynthwatchError on bad input."""
    options = dict(options or {})
    if kind not in readers.KINDS:
        raise IngestError(f"unknown kind {kind!r}: use one of {', '.join(readers.KINDS)}")
    if mode not in ("replace", "append"):
        raise IngestError(f"unknown mode {mode!r}: use replace or append")
    validate_table_name(table)
    path = readers.check_source(source)
    run_id = run_id or str(uuid.uuid4())
    started = _now()
    sha256 = readers.source_sha256(path)
    with wh.read() as con:
        previous = already_ingested(con, table, sha256)
    if previous:
        return {"table": table, "kind": kind, "rows": previous["rows"], "written": False,
                "already_ingested": True, "previous_run_id": previous["run_id"], "sha256": sha256,
                "source": str(path), "columns": wh_columns(wh, table)}

    key_columns = list(options.pop("key_columns", []) or [])
    stage = f"_stage_{uuid.uuid4().hex[:16]}"
    summary: dict = {}
    frame: pd.DataFrame | None = None
    tab_source = None
    if kind == "tabular":
        tab_source = readers.tabular_select(path, delimiter=options.get("delimiter"), header=options.get("header"),
                                            columns=options.get("columns"), fmt=options.get("format"),
                                            skip=int(options.get("skip", 0)))
        summary["format"] = tab_source.format
        summary.update(tab_source.dialect)
    elif kind == "timeseries":
        raw = readers.read_tabular_frame(path, delimiter=options.get("delimiter"), header=options.get("header"),
                                         columns=options.get("columns"), skip=int(options.get("skip", 0)))
        frame, ts_summary = readers.prepare_timeseries(
            raw, time_column=options.get("time_column"), id_column=options.get("id_column"),
            layout=options.get("layout", "long"))
        summary.update(ts_summary)
        key_columns += [c for c in (ts_summary["time_column"], ts_summary["id_column"]) if c]
    else:
        images, labels, names = readers.read_images(path)
        frame, img_summary = readers.images_to_frame(images, labels, names)
        summary.update(img_summary)
        key_columns += ["id", "height", "width", "channels", "pixels"]

    with wh.transaction() as con:
        try:
            if tab_source is not None:
                con.execute(f"CREATE TABLE {qualified(stage)} AS {tab_source.select_sql}", tab_source.params)
            else:
                Warehouse.write_frame(con, stage, frame, mode="replace", internal=True)
        except duckdb.Error as exc:
            raise IngestError(f"cannot read {path}: {' '.join(str(exc).split())[:300]}") from None
        n_rows = con.execute(f"SELECT count(*) FROM {qualified(stage)}").fetchone()[0]
        if n_rows == 0:
            raise IngestError(f"source {path} has a header but no rows")
        columns = _describe(con, stage)
        names = [c["name"] for c in columns]
        checked = [k for k in key_columns if k != "pixels"]
        if frame is not None:
            sample, keys_frame = frame.drop(columns=["pixels"], errors="ignore"), None
        else:
            # Types are per column in DuckDB, so a head sample carries them; keys are checked on every row.
            sample = con.execute(f"SELECT * FROM {qualified(stage)} LIMIT 1000").df()
            present = [k for k in checked if k in names]
            keys_frame = (con.execute(f"SELECT {', '.join(quote_ident(k) for k in present)} "
                                      f"FROM {qualified(stage)}").df() if present else None)
        validation = validate_frame(sample, name=table, key_columns=checked, keys_frame=keys_frame)
        if "pixels" in names and con.execute(
                f"SELECT count(*) FROM {qualified(stage)} WHERE pixels IS NULL").fetchone()[0]:
            raise IngestError(f"{path}: some images have no pixels")
        _install_staged(con, stage, table, mode)
        total = con.execute(f"SELECT count(*) FROM {qualified(table)}").fetchone()[0]
        summary["validation"] = {k: validation[k] for k in ("suite", "evaluated", "success")}
        con.execute(
            "INSERT INTO main._ingestions VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'ok', ?, ?, ?)",
            [run_id, str(path), sha256, kind, table, mode, n_rows, len(columns),
             json.dumps(summary, default=str), started, _now()],
        )
    return {"table": table, "kind": kind, "rows": int(n_rows), "table_rows": int(total), "written": True,
            "already_ingested": False, "mode": mode, "columns": columns, "sha256": sha256, "source": str(path),
            "summary": summary, "run_id": run_id}


def wh_columns(wh: Warehouse, table: str) -> list[dict]:
    with wh.read() as con:
        return _describe(con, table)


@task(cache_policy=NONE)
def ingest_task(db_path: str, source: str, kind: str, table: str, mode: str, options: dict) -> dict:
    """Read, validate and write one source."""
    run_id = str(flow_run.get_id() or uuid.uuid4())
    try:
        return ingest_source(Warehouse(db_path), source, kind=kind, table=table, mode=mode, run_id=run_id,
                             options=options)
    except SynthwatchError as exc:
        # Bad input is an expected outcome: hand it to the flow as data so no traceback is logged.
        return {"error": str(exc), "error_type": type(exc).__name__}


@flow(name="ingest", log_prints=False)
def ingest_flow(db_path: str, source: str, kind: str, table: str, mode: str = "replace",
                options: dict | None = None):
    """Ingest a tabular, time-series or image source into the warehouse."""
    logger = get_run_logger()
    result = ingest_task(db_path, source, kind, table, mode, options or {})
    if "error" in result:
        logger.info("ingest of %s failed: %s", source, result["error"])
        return Failed(message=result["error"], data=result)
    if result["written"]:
        logger.info("ingested %s rows into %s", result["rows"], table)
    else:
        logger.info("%s already holds this content (run %s); nothing written", table, result["previous_run_id"])
    return result

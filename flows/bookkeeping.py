"""The warehouse's own tables: their DDL, the schema version stored in the file, and the migrations between versions.

Every bookkeeping table is declared here and nowhere else. A writer calls `ensure_schema` inside its transaction
(creating a new warehouse or upgrading one written by an earlier release in the same transaction as its own
write); readers never run DDL (`Warehouse.read` upgrades an old file once, through a writer, before it reads).

Versions:
- 1: the first releases. No `_meta`; bookkeeping tables created on first write; no catalog.
- 2: `_meta` holds `schema_version`; `_catalog` records every data table's kind and origin; `_detectors` has the
  held-out validation columns (`n_selection`, `n_report`, `selection_auroc`, `selection_auprc`).
- 3: `_models` and `_detectors` record who made each model (`made_by`: `pipeline` for `synthwatch run`, `cli` for a
  command run by hand), so the pipeline retires only its own earlier models by that record, never by an id pattern.
- 4: monitoring. `_batches` records every file that arrived in an inbox (ingested or rejected, with its reason);
  rows an inbox appends carry their batch in a `batch_id` column, and `anomaly_scores.batch_id` says which batch a
  score belongs to (NULL for a one-shot scoring). `_monitor_batches` holds one row per (detector, batch) scored,
  with its alert rate and score quantiles; `_drift` the PSI and KS of the score and of each feature per batch;
  `monitoring_events` the alarms; `_feedback` analysts' labels; `_champions` the detector that scores each table
  and `_retrain_decisions` every champion/challenger comparison.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

import duckdb

SCHEMA_VERSION = 4
KINDS = ("tabular", "timeseries", "image")
ORIGINS = ("ingested", "generated", "pipeline", "user")
MAKERS = ("pipeline", "cli")  # who made a model: `synthwatch run` or a command run by hand

DDL: dict[str, str] = {
    "_meta": """
        CREATE TABLE IF NOT EXISTS main._meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)""",
    "_catalog": """
        CREATE TABLE IF NOT EXISTS main._catalog (
            table_schema VARCHAR NOT NULL,
            table_key VARCHAR NOT NULL,        -- lower(table_name): DuckDB names compare without case
            table_name VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,             -- tabular | timeseries | image
            origin VARCHAR NOT NULL,           -- ingested | generated | pipeline | user
            detail JSON,                       -- what the writer knew: series columns, source, model id...
            run_id VARCHAR,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            PRIMARY KEY (table_schema, table_key))""",
    "_ingestions": """
        CREATE TABLE IF NOT EXISTS main._ingestions (
            run_id VARCHAR NOT NULL, source VARCHAR NOT NULL, sha256 VARCHAR NOT NULL, kind VARCHAR NOT NULL,
            table_name VARCHAR NOT NULL, mode VARCHAR NOT NULL, rows BIGINT NOT NULL, columns INTEGER NOT NULL,
            status VARCHAR NOT NULL, summary JSON, started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP NOT NULL)""",
    "_models": """
        CREATE TABLE IF NOT EXISTS main._models (
            model_id VARCHAR PRIMARY KEY, generator VARCHAR NOT NULL, params JSON NOT NULL,
            source_table VARCHAR NOT NULL, source_hash VARCHAR NOT NULL, train_table VARCHAR NOT NULL,
            holdout_table VARCHAR, train_rows BIGINT NOT NULL, holdout_rows BIGINT NOT NULL, seed BIGINT NOT NULL,
            fit_seconds DOUBLE NOT NULL, path VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL,
            made_by VARCHAR DEFAULT 'cli')""",
    "_generations": """
        CREATE TABLE IF NOT EXISTS main._generations (
            table_name VARCHAR NOT NULL, model_id VARCHAR NOT NULL, rows BIGINT NOT NULL, seed BIGINT,
            conditions JSON, published_schema VARCHAR, created_at TIMESTAMP NOT NULL)""",
    "_quality_reports": """
        CREATE TABLE IF NOT EXISTS main._quality_reports (
            report_id VARCHAR PRIMARY KEY, table_name VARCHAR NOT NULL, passed BOOLEAN NOT NULL,
            failing JSON NOT NULL, checks JSON NOT NULL, thresholds JSON NOT NULL, source JSON NOT NULL,
            published_schema VARCHAR, report_path VARCHAR NOT NULL, n_real BIGINT NOT NULL,
            n_synthetic BIGINT NOT NULL, n_holdout BIGINT, seconds DOUBLE NOT NULL, run_id VARCHAR,
            created_at TIMESTAMP NOT NULL)""",
    "_detectors": """
        CREATE TABLE IF NOT EXISTS main._detectors (
            model_id VARCHAR PRIMARY KEY, detector VARCHAR NOT NULL, table_name VARCHAR NOT NULL,
            kind VARCHAR NOT NULL, path VARCHAR NOT NULL, feature_columns JSON NOT NULL, key_column VARCHAR,
            label_column VARCHAR, normal_value VARCHAR, params JSON NOT NULL, n_train BIGINT NOT NULL,
            n_validation BIGINT NOT NULL, threshold DOUBLE NOT NULL, threshold_source VARCHAR NOT NULL,
            score_mode VARCHAR NOT NULL, auroc DOUBLE, auprc DOUBLE, "precision" DOUBLE, recall DOUBLE,
            source_hash VARCHAR NOT NULL, run_id VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL,
            n_selection BIGINT, n_report BIGINT, selection_auroc DOUBLE, selection_auprc DOUBLE,
            made_by VARCHAR DEFAULT 'cli')""",
    "anomaly_scores": """
        CREATE TABLE IF NOT EXISTS main.anomaly_scores (
            model_id VARCHAR NOT NULL, table_name VARCHAR NOT NULL, item_key VARCHAR NOT NULL,
            score DOUBLE NOT NULL, threshold DOUBLE NOT NULL, is_alert BOOLEAN NOT NULL,
            scored_at TIMESTAMP NOT NULL, run_id VARCHAR NOT NULL, batch_id VARCHAR)""",
    "_batches": """
        CREATE TABLE IF NOT EXISTS main._batches (
            batch_id VARCHAR PRIMARY KEY,      -- 'b' + the first 16 hex digits of the file's sha256
            table_name VARCHAR NOT NULL, inbox VARCHAR NOT NULL, file_name VARCHAR NOT NULL,
            sha256 VARCHAR NOT NULL, rows BIGINT NOT NULL,
            status VARCHAR NOT NULL,           -- ingested | rejected
            reason VARCHAR,                    -- why a rejected file was refused (one line)
            arrived_at TIMESTAMP NOT NULL,     -- the file's modification time: when it reached the inbox
            ingested_at TIMESTAMP NOT NULL, run_id VARCHAR)""",
    "_monitor_batches": """
        CREATE TABLE IF NOT EXISTS main._monitor_batches (
            model_id VARCHAR NOT NULL, table_name VARCHAR NOT NULL, batch_id VARCHAR NOT NULL,
            rows BIGINT NOT NULL, alerts BIGINT NOT NULL, alert_rate DOUBLE NOT NULL,
            score_p50 DOUBLE, score_p90 DOUBLE, score_p99 DOUBLE, score_max DOUBLE,
            psi_score DOUBLE, ks_score DOUBLE, max_feature_psi DOUBLE,
            arrived_at TIMESTAMP, scored_at TIMESTAMP NOT NULL, latency_seconds DOUBLE, run_id VARCHAR,
            PRIMARY KEY (model_id, batch_id))""",
    "_drift": """
        CREATE TABLE IF NOT EXISTS main._drift (
            model_id VARCHAR NOT NULL, batch_id VARCHAR NOT NULL,
            feature VARCHAR NOT NULL,          -- a feature column, or '__score__' for the anomaly score
            psi DOUBLE NOT NULL, ks DOUBLE NOT NULL, computed_at TIMESTAMP NOT NULL,
            PRIMARY KEY (model_id, batch_id, feature))""",
    "monitoring_events": """
        CREATE TABLE IF NOT EXISTS main.monitoring_events (
            event_id VARCHAR PRIMARY KEY,
            event_type VARCHAR NOT NULL,       -- drift | alert_rate | gap | champion
            table_name VARCHAR NOT NULL, model_id VARCHAR, batch_id VARCHAR,
            message VARCHAR NOT NULL, detail JSON, created_at TIMESTAMP NOT NULL, run_id VARCHAR)""",
    "_feedback": """
        CREATE TABLE IF NOT EXISTS main._feedback (
            table_name VARCHAR NOT NULL, item_key VARCHAR NOT NULL,
            model_id VARCHAR,                  -- the detector whose alert was labelled
            label VARCHAR NOT NULL,            -- fraud | normal
            note VARCHAR, source VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (table_name, item_key))""",
    "_champions": """
        CREATE TABLE IF NOT EXISTS main._champions (
            table_name VARCHAR PRIMARY KEY, model_id VARCHAR NOT NULL, since TIMESTAMP NOT NULL)""",
    "_retrain_decisions": """
        CREATE TABLE IF NOT EXISTS main._retrain_decisions (
            decided_at TIMESTAMP NOT NULL, table_name VARCHAR NOT NULL, champion VARCHAR, challenger VARCHAR NOT NULL,
            promoted BOOLEAN NOT NULL, reason VARCHAR NOT NULL, champion_metrics JSON, challenger_metrics JSON,
            labelled_rows BIGINT NOT NULL, run_id VARCHAR)""",
}
VIEWS: dict[str, str] = {
    "alerts": """
        CREATE OR REPLACE VIEW main.alerts AS
        SELECT model_id, table_name, item_key, score, threshold, scored_at, run_id, batch_id
        FROM main.anomaly_scores WHERE is_alert ORDER BY score DESC""",
}
# Bookkeeping tables are not data: they are not catalogued. The two the pipeline writes for people to read
# (`anomaly_scores`, `monitoring_events`) are catalogued as its data, so no command may write over them.
BOOKKEEPING = frozenset({*DDL, *VIEWS} - {"anomaly_scores", "monitoring_events"})


def now_utc() -> datetime:
    """Naive UTC, the warehouse's timestamp convention."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _exists(con: duckdb.DuckDBPyConnection, name: str, schema: str = "main") -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
                            "AND table_name = ?", [schema, name]).fetchall()[0][0])


def stored_version(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version a warehouse file was written with: 0 for an empty file, 1 for the first releases."""
    if _exists(con, "_meta"):
        rows = con.execute("SELECT value FROM main._meta WHERE key = 'schema_version'").fetchall()
        if rows:
            return int(rows[0][0])
    n_tables = con.execute("SELECT count(*) FROM information_schema.tables "
                           "WHERE table_schema IN ('main', 'quarantine')").fetchall()[0][0]
    return 1 if n_tables else 0


def ensure_schema(con: duckdb.DuckDBPyConnection) -> int:
    """Create or upgrade the bookkeeping inside the caller's write transaction; returns the version found."""
    from flows.errors import SynthwatchError

    found = stored_version(con)
    if found == SCHEMA_VERSION:
        return found
    if found > SCHEMA_VERSION:
        raise SynthwatchError(f"this warehouse was written by a newer synthwatch (schema {found}, this one knows "
                              f"{SCHEMA_VERSION}); upgrade synthwatch to use it")
    con.execute("CREATE SCHEMA IF NOT EXISTS quarantine")
    for ddl in DDL.values():
        con.execute(ddl)
    if found == 1:
        _migrate_1_to_2(con)
    if found in (1, 2):
        _migrate_2_to_3(con)
    if found in (1, 2, 3):
        _migrate_3_to_4(con)
    for ddl in VIEWS.values():  # after the migrations: a view names the columns they add
        con.execute(ddl)
    if catalog_entry(con, "anomaly_scores") is None:
        record_table(con, "anomaly_scores", kind="tabular", origin="pipeline", detail={"written_by": "detect score"})
    if catalog_entry(con, "monitoring_events") is None:
        record_table(con, "monitoring_events", kind="tabular", origin="pipeline", detail={"written_by": "monitor"})
    con.execute("INSERT OR REPLACE INTO main._meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
    return found


def _migrate_1_to_2(con: duckdb.DuckDBPyConnection) -> None:
    """Add the columns version 2 introduced and catalogue every data table from what version 1 recorded."""
    for column, sql_type in (("n_selection", "BIGINT"), ("n_report", "BIGINT"), ("selection_auroc", "DOUBLE"),
                             ("selection_auprc", "DOUBLE")):
        con.execute(f"ALTER TABLE main._detectors ADD COLUMN IF NOT EXISTS {column} {sql_type}")
    stamp = now_utc()
    tables = con.execute("SELECT table_schema, table_name FROM information_schema.tables "
                         "WHERE table_schema IN ('main', 'quarantine') AND table_type = 'BASE TABLE'").fetchall()
    ingested = {r[0].lower(): (r[1], r[2]) for r in con.execute(
        "SELECT table_name, arg_max(kind, finished_at), arg_max(summary, finished_at) FROM main._ingestions "
        "WHERE status = 'ok' GROUP BY table_name").fetchall()}
    generated = {r[0].lower() for r in con.execute("SELECT table_name FROM main._generations").fetchall()}
    sources = {r[0].lower(): r[1] for r in con.execute(
        "SELECT train_table, source_table FROM main._models UNION ALL "
        "SELECT holdout_table, source_table FROM main._models WHERE holdout_table IS NOT NULL").fetchall()}
    for schema, name in tables:
        key = name.lower()
        if schema == "main" and (key in BOOKKEEPING or key.startswith("_stage_")):
            continue
        columns = [r[0] for r in con.execute(f'DESCRIBE "{schema}"."{name}"').fetchall()]
        detail: dict[str, Any] = {"upgraded_from": 1}
        if key in ingested and schema == "main":
            kind, summary = ingested[key]
            origin = "ingested"
            summary = json.loads(summary) if summary else {}
            detail.update({k: summary[k] for k in ("time_column", "id_column") if summary.get(k)})
        elif key in generated:
            kind, origin = "tabular", "generated"
        elif key in sources or key == "anomaly_scores":
            source = ingested.get(sources.get(key, ""), ("tabular", None))
            kind, origin = source[0], "pipeline"
        else:
            # Version 1 never recorded these; the one guess it made (pixels mean images) is made once, here.
            kind, origin = ("image" if "pixels" in columns else "tabular"), "user"
            detail["kind_guessed"] = True
        record_table(con, name, schema=schema, kind=kind, origin=origin, detail=detail, stamp=stamp)


def _migrate_2_to_3(con: duckdb.DuckDBPyConnection) -> None:
    """Record who made each model and detector.

    Earlier releases recorded it nowhere: their generator models count as made by hand (so nothing ever retires
    them unasked; `synthwatch models delete` does), and their detectors as the pipeline's when the detect stage
    named them (`pipeline-<table>-...`, the one time that name is read), so the next run still retires the last
    run's detector as before.
    """
    for table in ("_models", "_detectors"):
        con.execute(f"ALTER TABLE main.{table} ADD COLUMN IF NOT EXISTS made_by VARCHAR DEFAULT 'cli'")
        con.execute(f"UPDATE main.{table} SET made_by = 'cli' WHERE made_by IS NULL")
    con.execute("UPDATE main._detectors SET made_by = 'pipeline' WHERE starts_with(model_id, 'pipeline-')")


def _migrate_3_to_4(con: duckdb.DuckDBPyConnection) -> None:
    """Scores gain the batch they belong to (NULL: scored before batches existed, by a one-shot `detect score`);
    the monitoring tables themselves are created empty by their DDL."""
    con.execute("ALTER TABLE main.anomaly_scores ADD COLUMN IF NOT EXISTS batch_id VARCHAR")


def record_table(con: duckdb.DuckDBPyConnection, name: str, *, schema: str = "main", kind: str, origin: str,
                 detail: dict | None = None, run_id: str | None = None, stamp: datetime | None = None) -> None:
    """Catalogue (or re-catalogue) a data table, inside the writer's transaction; keeps its first creation time."""
    if kind not in KINDS or origin not in ORIGINS:
        raise ValueError(f"catalog entry for {name} has kind {kind!r} / origin {origin!r}")
    stamp = stamp or now_utc()
    rows = con.execute("SELECT created_at FROM main._catalog WHERE table_schema = ? AND table_key = ?",
                       [schema, name.lower()]).fetchall()
    created = rows[0][0] if rows else stamp
    con.execute("INSERT OR REPLACE INTO main._catalog VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [schema, name.lower(), name, kind, origin, json.dumps(detail or {}, default=str), run_id, created,
                 stamp])


def forget_table(con: duckdb.DuckDBPyConnection, name: str, *, schema: str = "main") -> None:
    """Drop a table's catalog entry (the caller drops the table in the same transaction)."""
    con.execute("DELETE FROM main._catalog WHERE table_schema = ? AND table_key = ?", [schema, name.lower()])


def mark_table(con: duckdb.DuckDBPyConnection, name: str, changes: dict[str, Any], *, schema: str = "main") -> None:
    """Add `changes` to a catalogued table's detail (its lineage), inside the writer's transaction."""
    entry = catalog_entry(con, name, schema)
    if entry is None:
        return
    detail = {**entry["detail"], **changes}
    con.execute("UPDATE main._catalog SET detail = ?, updated_at = ? WHERE table_schema = ? AND table_key = ?",
                [json.dumps(detail, default=str), now_utc(), schema, name.lower()])


def catalog_entry(con: duckdb.DuckDBPyConnection, name: str, schema: str = "main") -> dict | None:
    """The catalog row of a table (kind, origin, detail...), or None when it is not catalogued."""
    if not _exists(con, "_catalog"):
        return None
    cur = con.execute("SELECT * FROM main._catalog WHERE table_schema = ? AND table_key = ?", [schema, name.lower()])
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    if not rows:
        return None
    entry = dict(zip(names, rows[0]))
    entry["detail"] = json.loads(entry["detail"]) if entry["detail"] else {}
    return entry


def insert_row(con: duckdb.DuckDBPyConnection, table: str, row: dict[str, Any]) -> None:
    """INSERT one row by column name (never by position), into a bookkeeping table declared above."""
    if table not in DDL:
        raise ValueError(f"{table} is not a bookkeeping table")
    columns = ", ".join('"' + c.replace('"', '""') + '"' for c in row)
    con.execute(f"INSERT INTO main.{table} ({columns}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]]) -> None:
    """INSERT many rows with the same columns in one statement, by column name, into a bookkeeping table."""
    if table not in DDL:
        raise ValueError(f"{table} is not a bookkeeping table")
    if not rows:
        return
    import pandas as pd

    frame = pd.DataFrame(rows)
    view = f"__sw_rows_{uuid.uuid4().hex[:12]}"
    columns = ", ".join('"' + str(c).replace('"', '""') + '"' for c in frame.columns)
    con.register(view, frame)
    try:
        con.execute(f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM \"{view}\"")
    finally:
        con.unregister(view)

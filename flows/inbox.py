"""An inbox: a folder where new files arrive. Each new file is ingested once into one table, as a batch.

Every file is read and validated before the warehouse is opened for writing (the ingest's own strict reader; the
first batch, which creates the table, runs the ingest's expectation suite, and every later batch must match the
table's columns and cast to its types); its rows are appended with their `batch_id` and the `_batches` and
`_ingestions` rows in one transaction (shared by the files of one group once the table exists), which decides
whether the content is new. Only after that commits is the file moved to
`processed/`; a file that cannot be ingested goes to `rejected/` with a `<name>.reason.txt` beside it, and the run
goes on with the others. Nothing is ever lost: a run killed at any point leaves the file in the inbox (it is
ingested by the next run) or in `processed/` with its batch committed, never half of it.

A batch id is `b` + the first 16 hex digits of the file's SHA-256, so the same content is one batch whatever its
name and however often it arrives.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import datetime
from pathlib import Path

import duckdb

from flows import readers
from flows.bookkeeping import insert_row, now_utc, record_table
from flows.errors import IngestError, InvalidTableName, SynthwatchError, TableExists
from flows.warehouse import Warehouse, check_write_target, qualified, quote_ident, validate_table_name

BATCH_COLUMN = "batch_id"
SUFFIXES = readers.CSV_SUFFIXES | readers.PARQUET_SUFFIXES | readers.JSON_SUFFIXES
PROCESSED, REJECTED = "processed", "rejected"
# files appended together in one transaction once the table exists (each file is still its own batch)
GROUP_ROWS = 500_000


def batch_id_of(sha256: str) -> str:
    return "b" + sha256[:16]


def pending_files(inbox: Path) -> list[Path]:
    """Files waiting in the inbox, oldest first: data files only, never hidden or partial ones (`.name`,
    `*.part`, `*.tmp`), so a writer that renames a finished file into the inbox is never read half-written."""
    if not inbox.is_dir():
        raise IngestError(f"inbox {inbox} is not a folder; create it or fix monitor.inbox in the config")
    found = []
    for path in inbox.iterdir():
        name = path.name
        if not path.is_file() or name.startswith(".") or name.endswith((".part", ".tmp", ".reason.txt")):
            continue
        found.append(path)
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name))


def _move(path: Path, folder: Path) -> Path:
    """Move a file into `folder` (created), never over another file: a taken name gets a numbered suffix."""
    folder.mkdir(exist_ok=True)
    target, k = folder / path.name, 1
    while target.exists():
        k += 1
        target = folder / f"{path.stem}.{k}{path.suffix}"
    os.replace(path, target)
    return target


def _recorded(con: duckdb.DuckDBPyConnection, batch_id: str) -> tuple | None:
    rows = con.execute("SELECT status, table_name FROM main._batches WHERE batch_id = ?", [batch_id]).fetchall()
    return rows[0] if rows else None


def _reject(wh: Warehouse, inbox: Path, path: Path, table: str, sha256: str, arrived: datetime, reason: str,
            run_id: str) -> dict:
    batch_id = batch_id_of(sha256)
    with wh.transaction() as con:
        if _recorded(con, batch_id) is None:
            insert_row(con, "_batches", {
                "batch_id": batch_id, "table_name": table, "inbox": str(inbox), "file_name": path.name,
                "sha256": sha256, "rows": 0, "status": "rejected", "reason": reason[:500], "arrived_at": arrived,
                "ingested_at": now_utc(), "run_id": run_id})
    moved = _move(path, inbox / REJECTED)
    moved.with_name(moved.name + ".reason.txt").write_text(reason + "\n", encoding="utf-8")
    return {"file": path.name, "batch_id": batch_id, "status": "rejected", "reason": reason, "rows": 0}


def ingest_file(wh: Warehouse, inbox: Path, path: Path, table: str, run_id: str) -> dict:
    """Ingest one inbox file as a batch of `table` (see the module docstring); returns what happened to it."""
    arrived = datetime.utcfromtimestamp(path.stat().st_mtime)
    sha256 = readers.source_sha256(path)
    batch_id = batch_id_of(sha256)
    if wh.path.exists():
        with wh.read() as con:
            seen = _recorded(con, batch_id) if Warehouse.exists(con, "_batches") else None
        if seen is not None:  # committed by an earlier run that stopped before moving the file
            _move(path, inbox / (PROCESSED if seen[0] == "ingested" else REJECTED))
            return {"file": path.name, "batch_id": batch_id, "status": "already_ingested", "rows": 0}
    try:
        with wh.read() as con:
            columns = ([tuple(r[:2]) for r in con.execute(f"DESCRIBE {qualified(table)}").fetchall()]
                       if Warehouse.exists(con, table) else None)
        staged = _stage(path, table, batch_id, columns)
        return _commit_group(wh, inbox, table, [{"path": path, "arrived": arrived, "sha256": sha256,
                                                 "batch_id": batch_id, "staged": staged}], run_id)[0]
    except (TableExists, InvalidTableName):
        raise  # the target table itself is wrong: no file is to blame
    except (SynthwatchError, duckdb.Error) as exc:
        reason = " ".join(str(exc).split())[:400]
        return _reject(wh, inbox, path, table, sha256, arrived, reason, run_id)


def read_batch(path: Path, table_columns: list[tuple[str, str]], mem: duckdb.DuckDBPyConnection | None = None):
    """Read one inbox file into memory (no warehouse lock). A CSV is read strictly as the table's columns and
    types (header required, names checked, no sniffing); Parquet and JSON lines through the ingest's reader.
    `mem`: an in-memory connection to read with (kept open), else one of its own."""
    from flows.ingest import StagedSource

    own = mem is None
    mem = readers.memory_connection() if own else mem
    try:
        suffix = readers._strip_compression(path)
        if suffix in readers.CSV_SUFFIXES:
            expected = [n for n, _ in table_columns if n != BATCH_COLUMN]
            with readers.open_text(path) as fh:
                header = [h.strip().strip('"') for h in fh.readline().rstrip("\r\n").split(",")]
            missing, extra = [c for c in expected if c not in header], [c for c in header if c not in expected]
            if missing or extra:
                parts = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
                    [f"unexpected column(s) {', '.join(extra)}"] if extra else [])
                raise IngestError(f"{path.name} does not fit the table: {'; '.join(parts)}")
            types = dict(table_columns)
            spec = "{" + ", ".join(f"{readers._sql_literal(h)}: {readers._sql_literal(types[h])}" for h in header) + "}"
            sql = (f"SELECT * FROM read_csv({readers._sql_literal(path)}, header=true, auto_detect=false, "
                   f"delim=',', quote='\"', columns={spec}, max_line_size={readers.limit(readers.MAX_CSV_LINE_BYTES)})")
            data = mem.sql(sql).to_arrow_table()
            fmt = "csv"
        else:
            source = readers.tabular_select(path)
            data = mem.sql(source.select_sql, params=source.params).to_arrow_table()
            fmt = source.format
    except duckdb.Error as exc:
        raise readers.read_error(path, exc) from None
    finally:
        if own:
            mem.close()
    if data.num_rows == 0:
        raise IngestError(f"{path.name} has no rows")
    return StagedSource(data=data, rows=int(data.num_rows), columns=[], summary={"format": fmt})


def _append(con: duckdb.DuckDBPyConnection, table: str, data, path: Path) -> None:
    """Create the table from the first batch, or append a batch whose columns are exactly the table's."""
    view = f"__sw_batch_{uuid.uuid4().hex[:12]}"
    con.register(view, data)
    try:
        if not Warehouse.exists(con, table):
            con.execute(f"CREATE TABLE {qualified(table)} AS SELECT * FROM {quote_ident(view)}")
            return
        have = [r[0] for r in con.execute(f"DESCRIBE {qualified(table)}").fetchall()]
        new = list(data.column_names)
        missing, extra = [c for c in have if c not in new], [c for c in new if c not in have]
        if missing or extra:
            parts = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
                [f"unexpected column(s) {', '.join(extra)}"] if extra else [])
            raise IngestError(f"{path.name} does not fit table {table}: {'; '.join(parts)}")
        con.execute(f"INSERT INTO {qualified(table)} BY NAME SELECT * FROM {quote_ident(view)}")
    finally:
        con.unregister(view)


def _stage(path: Path, table: str, batch_id: str, columns: list[tuple[str, str]] | None,
           mem: duckdb.DuckDBPyConnection | None = None):
    """A file read as a batch, with its batch id column (no warehouse lock). The batch that creates the table
    (`columns` None) runs the ingest's expectation suite; later batches are checked against the table itself (same
    columns, values that parse as its types), which is what can go wrong."""
    import pyarrow as pa

    from flows.ingest import read_and_validate

    if path.suffix.lower() not in SUFFIXES and readers._strip_compression(path) not in SUFFIXES:
        raise IngestError(f"{path.name} is not a CSV, Parquet or JSON-lines file")
    staged = read_and_validate(path, "tabular", table, {}) if columns is None else read_batch(path, columns, mem)
    if BATCH_COLUMN in staged.data.column_names:
        raise IngestError(f"{path.name} has a column named {BATCH_COLUMN!r}, which the inbox sets itself")
    staged.data = staged.data.append_column(BATCH_COLUMN, pa.array([batch_id] * staged.rows, type=pa.string()))
    return staged


def _commit_group(wh: Warehouse, inbox: Path, table: str, group: list[dict], run_id: str) -> list[dict]:
    """Append a group of staged files in one transaction that decides, inside itself, which are new; then move
    them to `processed/`. Each file stays one batch: its rows, its `_batches` and `_ingestions` rows."""
    started = now_utc()
    locked_at = time.perf_counter()
    with wh.transaction() as con:
        ids = [g["batch_id"] for g in group]
        taken = {r[0] for r in con.execute(
            f"SELECT batch_id FROM main._batches WHERE batch_id IN ({', '.join('?' * len(ids))})", ids).fetchall()}
        check_write_target(con, table, command="ingest")
        fresh = [g for g in group if g["batch_id"] not in taken]
        for g in fresh:
            staged, path = g["staged"], g["path"]
            _append(con, table, staged.data, path)
            insert_row(con, "_batches", {
                "batch_id": g["batch_id"], "table_name": table, "inbox": str(inbox), "file_name": path.name,
                "sha256": g["sha256"], "rows": staged.rows, "status": "ingested", "reason": None,
                "arrived_at": g["arrived"], "ingested_at": now_utc(), "run_id": run_id})
            insert_row(con, "_ingestions", {
                "run_id": run_id, "source": str(path), "sha256": g["sha256"], "kind": "tabular", "table_name": table,
                "mode": "append", "rows": staged.rows, "columns": staged.data.num_columns, "status": "ok",
                "summary": json.dumps({**staged.summary, "batch_id": g["batch_id"]}, default=str),
                "started_at": started, "finished_at": now_utc()})
        if fresh:
            record_table(con, table, kind="tabular", origin="ingested", run_id=run_id,
                         detail={"inbox": str(inbox), "batch_column": BATCH_COLUMN})
    lock_seconds = round(time.perf_counter() - locked_at, 3)
    results = []
    for g in group:
        _move(g["path"], inbox / PROCESSED)
        new = g["batch_id"] not in taken
        results.append({"file": g["path"].name, "batch_id": g["batch_id"],
                        "status": "ingested" if new else "already_ingested", "rows": g["staged"].rows if new else 0,
                        "write_lock_seconds": lock_seconds})
    return results


def _log_file(progress, result: dict) -> None:
    if progress is not None:
        progress.info("%s: %s (%s rows)%s", result["file"], result["status"], result["rows"],
                      f": {result['reason']}" if result.get("reason") else "")


def _ingest_many(wh: Warehouse, inbox: Path, paths: list[Path], table: str, run_id: str, progress=None,
                 group_rows: int | None = None) -> list[dict]:
    """Ingest files into an existing table: every file is read and checked first (no lock), then up to
    `group_rows` rows of files are appended in one transaction. A group whose transaction fails is retried file by
    file, so only the file to blame is rejected."""
    group_rows = GROUP_ROWS if group_rows is None else group_rows
    with wh.read() as con:
        columns = [tuple(r[:2]) for r in con.execute(f"DESCRIBE {qualified(table)}").fetchall()]
    results: list[dict] = []
    group: list[dict] = []
    size = 0

    def report(found: list[dict]) -> None:
        results.extend(found)
        for r in found:
            _log_file(progress, r)

    def flush() -> None:
        nonlocal group, size
        if not group:
            return
        try:
            found = _commit_group(wh, inbox, table, group, run_id)
        except (TableExists, InvalidTableName):
            raise
        except (SynthwatchError, duckdb.Error):
            found = [ingest_file(wh, inbox, g["path"], table, run_id) for g in group]
        report(found)
        group, size = [], 0

    hashed = []
    for path in paths:
        arrived = datetime.utcfromtimestamp(path.stat().st_mtime)
        sha256 = readers.source_sha256(path)
        hashed.append((path, arrived, sha256, batch_id_of(sha256)))
    ids = sorted({h[3] for h in hashed})
    with wh.read() as con:
        recorded = dict(con.execute(f"SELECT batch_id, status FROM main._batches WHERE batch_id IN "
                                    f"({', '.join('?' * len(ids))})", ids).fetchall()) if ids else {}
    mem = readers.memory_connection()
    try:
        in_run: set[str] = set()
        for path, arrived, sha256, batch_id in hashed:
            if batch_id in recorded:  # committed by an earlier run that stopped before moving the file
                _move(path, inbox / (PROCESSED if recorded[batch_id] == "ingested" else REJECTED))
                report([{"file": path.name, "batch_id": batch_id, "status": "already_ingested", "rows": 0}])
                continue
            if batch_id in in_run:  # the same content twice in this run: the group already holds it
                flush()
                report([ingest_file(wh, inbox, path, table, run_id)])
                continue
            try:
                staged = _stage(path, table, batch_id, columns, mem)
            except (SynthwatchError, duckdb.Error) as exc:
                report([_reject(wh, inbox, path, table, sha256, arrived, " ".join(str(exc).split())[:400], run_id)])
                continue
            in_run.add(batch_id)
            group.append({"path": path, "arrived": arrived, "sha256": sha256, "batch_id": batch_id,
                          "staged": staged})
            size += staged.rows
            if size >= group_rows:
                flush()
        flush()
    finally:
        mem.close()
    return results


def ingest_inbox(wh: Warehouse, inbox: str | Path, table: str, *, run_id: str | None = None,
                 progress=None) -> dict:
    """Ingest every file waiting in the inbox into `table`, oldest first; bad files are rejected, not fatal.

    Until the table exists, files go one at a time through `ingest_file` (the one that creates the table runs the
    ingest's expectation suite); then the rest are read and checked without the lock and appended in groups of
    up to GROUP_ROWS rows, one transaction per group."""
    validate_table_name(table, writing=True)
    inbox = Path(inbox).expanduser()
    run_id = run_id or str(uuid.uuid4())
    results = []
    pending = pending_files(inbox)
    while pending and not wh.table_exists(table):
        path = pending.pop(0)
        result = ingest_file(wh, inbox, path, table, run_id)
        results.append(result)
        _log_file(progress, result)
    if pending:
        results.extend(_ingest_many(wh, inbox, pending, table, run_id, progress))
    return {"table": table, "inbox": str(inbox), "files": results,
            "ingested": sum(r["status"] == "ingested" for r in results),
            "rejected": sum(r["status"] == "rejected" for r in results),
            "rows": sum(r["rows"] for r in results)}

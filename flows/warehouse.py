"""The DuckDB warehouse: one file, short connections, one transaction per write, quoted identifiers."""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from flows.errors import InvalidTableName, SynthwatchError, TableNotFound, WarehouseBusy

if TYPE_CHECKING:  # pandas costs a third of a second to import; only the commands that build frames pay for it
    import pandas as pd

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
SCHEMAS = ("main", "quarantine")
# Names the pipeline itself owns (besides every name starting with '_'); DuckDB compares names without case.
RESERVED_NAMES = frozenset({"anomaly_scores", "alerts", "monitoring_events", "main", "quarantine",
                            "information_schema", "pg_catalog",
                            "temp", "system"})

def validate_table_name(name: str, *, internal: bool = False, writing: bool = False) -> str:
    """Return the name if it is a plain identifier; user tables may not start with '_' (bookkeeping), and a
    table a user command writes may not take a name the pipeline keeps (`RESERVED_NAMES`, any case)."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise InvalidTableName(
            f"invalid table name {name!r}: use letters, digits and '_' (start with a letter, at most 63 characters)"
        )
    if name.startswith("_") and not internal:
        raise InvalidTableName(f"invalid table name {name!r}: names starting with '_' are reserved for bookkeeping")
    if writing and name.lower() in RESERVED_NAMES and not internal:
        raise InvalidTableName(f"table name {name!r} is reserved (synthwatch keeps {name.lower()} itself); "
                               "choose another name")
    return name


def quote_ident(name: str) -> str:
    """Quote an identifier for DuckDB, doubling embedded quotes."""
    return '"' + str(name).replace('"', '""') + '"'


def qualified(name: str, schema: str = "main") -> str:
    if schema not in SCHEMAS:
        raise InvalidTableName(f"unknown schema {schema!r}: use one of {', '.join(SCHEMAS)}")
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text or "already open" in text


class Warehouse:
    """A DuckDB file with bookkeeping tables, opened briefly for each read or write."""

    def __init__(self, path: str | Path, busy_timeout: float | None = None):
        self.path = Path(path)
        if busy_timeout is None:
            busy_timeout = float(os.environ.get("SYNTHWATCH_BUSY_TIMEOUT", "30"))
        self.busy_timeout = busy_timeout

    def _connect(self, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                if not _is_lock_error(exc):
                    raise SynthwatchError(f"cannot open warehouse {self.path}: {exc}".splitlines()[0]) from None
                if time.monotonic() >= deadline:
                    raise WarehouseBusy(
                        f"warehouse {self.path} is busy: another synthwatch process is writing; "
                        "retry when it finishes (or raise SYNTHWATCH_BUSY_TIMEOUT)"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        try:
            con.execute("SET enable_progress_bar = false")
        except Exception:
            con.close()
            raise
        return con

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived read-only connection: it never runs DDL and never blocks other readers.

        A missing file reads as an empty warehouse (nothing is created). A file written by an earlier release is
        upgraded once, by a write transaction, before it is read. While a writer is inside its transaction a reader
        waits for it (DuckDB lets one process write, or many read) for at most SYNTHWATCH_BUSY_TIMEOUT seconds,
        and then sees everything that transaction committed or nothing of it.
        """
        from flows.bookkeeping import SCHEMA_VERSION, stored_version

        if not self.path.exists():
            con = duckdb.connect(":memory:")
        else:
            con = self._connect(read_only=True)
            try:
                outdated = stored_version(con) < SCHEMA_VERSION
            except BaseException:
                con.close()
                raise
            if outdated:
                con.close()
                with self.transaction():
                    pass  # ensure_schema upgrades the file
                con = self._connect(read_only=True)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection inside BEGIN, with the bookkeeping schema current; commits on success, rolls back everything
        (an upgrade of an old file included) on any exception."""
        from flows.bookkeeping import ensure_schema

        con = self._connect()
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                ensure_schema(con)
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            con.close()

    # Helpers that take an open connection, so callers compose them inside one transaction.
    @staticmethod
    def write_frame(con: duckdb.DuckDBPyConnection, name: str, df: pd.DataFrame, *, mode: str = "replace",
                    schema: str = "main", internal: bool = False) -> int:
        """Write a DataFrame as a table (replace) or add its rows (append, columns must match)."""
        validate_table_name(name, internal=internal, writing=True)
        target = qualified(name, schema)
        view = f"__sw_frame_{uuid.uuid4().hex[:12]}"
        con.register(view, df)
        try:
            if mode == "replace":
                con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {quote_ident(view)}")
            elif mode == "append":
                if Warehouse.exists(con, name, schema):
                    existing = [r[0] for r in con.execute(f"DESCRIBE {target}").fetchall()]
                    if sorted(existing) != sorted(map(str, df.columns)):
                        raise SynthwatchError(
                            f"cannot append to {schema}.{name}: its columns {existing} differ from the new "
                            f"data's {list(map(str, df.columns))}; use --mode replace or another table"
                        )
                    con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {quote_ident(view)}")
                else:
                    con.execute(f"CREATE TABLE {target} AS SELECT * FROM {quote_ident(view)}")
            else:
                raise SynthwatchError(f"unknown write mode {mode!r}: use replace or append")
        finally:
            con.unregister(view)
        return len(df)

    @staticmethod
    def exists(con: duckdb.DuckDBPyConnection, name: str, schema: str = "main") -> bool:
        """Whether a table or view of that name exists; DuckDB matches names without regard to case."""
        return Warehouse.stored_name(con, name, schema) is not None

    @staticmethod
    def stored_name(con: duckdb.DuckDBPyConnection, name: str, schema: str = "main") -> str | None:
        """The spelling under which `name` is stored in `schema` (DuckDB names are case-insensitive), or None."""
        rows = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND lower(table_name) = lower(?)",
            [schema, name],
        ).fetchall()
        return rows[0][0] if rows else None

    @staticmethod
    def list_tables_in(con: duckdb.DuckDBPyConnection, schema: str = "main",
                       include_internal: bool = False) -> list[str]:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY table_name", [schema]
        ).fetchall()]
        return names if include_internal else [n for n in names if not n.startswith("_")]

    def table_exists(self, name: str, schema: str = "main") -> bool:
        with self.read() as con:
            return self.exists(con, name, schema)

    def list_tables(self, schema: str = "main", include_internal: bool = False) -> list[str]:
        with self.read() as con:
            return self.list_tables_in(con, schema, include_internal)

    def read_frame(self, name: str, schema: str = "main", *, internal: bool = False) -> pd.DataFrame:
        """A whole table as a DataFrame; TableNotFound names the tables that do exist."""
        validate_table_name(name, internal=internal or name.startswith("_"))
        with self.read() as con:
            if not self.exists(con, name, schema):
                tables = self.list_tables_in(con, schema)
                raise TableNotFound(
                    f"table {schema}.{name} does not exist in {self.path}; "
                    f"tables: {', '.join(tables) if tables else '(none yet: run synthwatch ingest)'}"
                )
            return con.execute(f"SELECT * FROM {qualified(name, schema)}").df()

    @staticmethod
    def hash_table(con: duckdb.DuckDBPyConnection, name: str, schema: str = "main") -> str:
        """An order-independent sha256 fingerprint of a table's columns, types and rows."""
        target = qualified(name, schema)
        cols = con.execute(f"DESCRIBE {target}").fetchall()
        count, total = con.execute(f"SELECT count(*), coalesce(sum(hash(t)), 0) FROM {target} AS t").fetchall()[0]
        digest = hashlib.sha256()
        digest.update(repr([(c[0], c[1]) for c in cols]).encode())
        digest.update(f"{count}:{total}".encode())
        return digest.hexdigest()

    def table_hash(self, name: str, schema: str = "main") -> str:
        with self.read() as con:
            if not self.exists(con, name, schema):
                raise TableNotFound(f"table {schema}.{name} does not exist in {self.path}")
            return self.hash_table(con, name, schema)

    def snapshot(self) -> dict[str, str]:
        """Fingerprint of every table in every schema: tests compare it before and after a failed run."""
        with self.read() as con:
            rows = con.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema IN ('main', 'quarantine') ORDER BY 1, 2"
            ).fetchall()
            return {f"{s}.{n}": self.hash_table(con, n, s) for s, n in rows}


def table_origin(con: duckdb.DuckDBPyConnection, name: str, schema: str = "main") -> str | None:
    """The catalog's origin of table `name` (ingested, generated, pipeline, user); 'user' for a table that exists
    but was never catalogued (made by hand), None when there is no such table."""
    from flows.bookkeeping import catalog_entry

    entry = catalog_entry(con, name, schema)
    if entry is not None:
        return entry["origin"]
    return "user" if Warehouse.exists(con, name, schema) else None


def check_write_target(con: duckdb.DuckDBPyConnection, name: str, *, command: str, replace: bool = True) -> None:
    """Refuse to write over a table that `command` did not create, or (without `replace`) over any table.

    `command` is 'ingest' or 'generate'. A table written by the other command, by hand or by the pipeline's
    bookkeeping is never replaced: the user did not ask this command to own it. Called before any work starts and
    again inside the write transaction, where the decision is final.
    """
    from flows.errors import TableExists

    validate_table_name(name, writing=True)
    found = [(schema, Warehouse.stored_name(con, name, schema)) for schema in SCHEMAS]
    found = [(schema, stored) for schema, stored in found if stored is not None]
    if not found:
        return
    schema, stored = found[0]
    origin = table_origin(con, stored, schema)
    where = f"{schema}.{stored}"
    owned = {"ingest": "ingested", "generate": "generated"}[command]
    if origin != owned:
        made = {"ingested": "ingested data", "generated": "a generated table", "pipeline": "the pipeline's own data",
                "user": "a table not made by synthwatch"}[origin]
        raise TableExists(f"table {where} holds {made}; synthwatch {command} never writes over it: "
                          "choose another --table")
    if not replace:
        raise TableExists(f"table {where} already exists (written by an earlier synthwatch {command}); pass "
                          "--replace to write over it, or choose another --table")

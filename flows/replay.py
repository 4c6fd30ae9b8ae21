"""The replayer: turn a warehouse table into timed batches dropped into an inbox, as if transactions kept arriving.

Rows are cut by a time column into windows (the ULB transactions by `Time`, seconds: one file per simulated hour
by default). Each file is written under a hidden name and renamed into the inbox when complete, so a monitor run
never reads half a file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from flows.errors import SynthwatchError
from flows.warehouse import Warehouse, qualified, quote_ident, validate_table_name


class ReplayError(SynthwatchError):
    """A replay that cannot run: a missing time column, a bad window, an inbox that is not a folder."""


def replay_table(settings, table: str, inbox: str | Path, *, time_column: str = "Time", window: float = 3600.0,
                 start: int = 0, files: int | None = None, interval: float = 0.0, drop: list[str] | None = None,
                 progress=None) -> dict:
    """Write windows `start`, `start + 1`... of `table` (rows whose `time_column` falls in each `window`) as CSV
    files into `inbox`, `interval` seconds apart; `drop` leaves columns out (e.g. a label the live feed lacks)."""
    validate_table_name(table)
    if window <= 0:
        raise ReplayError(f"--window must be positive, got {window}")
    folder = Path(inbox).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    wh = Warehouse(settings.db_path)
    if not wh.table_exists(table):
        wh.read_frame(table)  # TableNotFound naming the tables
    with wh.read() as con:
        columns = [r[0] for r in con.execute(f"DESCRIBE {qualified(table)}").fetchall()]
        if time_column not in columns:
            raise ReplayError(f"table {table} has no time column {time_column!r}; columns: {', '.join(columns)}")
        low, high = con.execute(f"SELECT min({quote_ident(time_column)}), max({quote_ident(time_column)}) "
                                f"FROM {qualified(table)}").fetchall()[0]
    n_windows = int((float(high) - float(low)) // window) + 1
    last = n_windows if files is None else min(n_windows, start + int(files))
    keep = ", ".join(quote_ident(c) for c in columns if c not in set(drop or []) and c != "batch_id")
    written = []
    for index in range(start, last):
        lo, hi = float(low) + index * window, float(low) + (index + 1) * window
        name = f"{table}-{index:05d}.csv"
        partial = folder / f".{name}.part"
        literal = "'" + str(partial).replace("'", "''") + "'"
        with wh.read() as con:
            con.execute(f"COPY (SELECT {keep} FROM {qualified(table)} WHERE {quote_ident(time_column)} >= {lo!r} "
                        f"AND {quote_ident(time_column)} < {hi!r} ORDER BY rowid) TO {literal} "
                        "(FORMAT csv, HEADER true)").fetchall()
        os.replace(partial, folder / name)
        written.append(name)
        if progress is not None:
            progress(f"{name}: window {index} [{lo:g}, {hi:g})")
        if interval > 0 and index + 1 < last:
            time.sleep(interval)
    return {"table": table, "inbox": str(folder), "files": written, "windows": n_windows}

"""Model folders under the models directory: staged while saving, installed inside the write transaction.

A model is saved into a staging folder named after the writing process (`.ID.staging-PID`) and renamed into
place inside the transaction that records it, so a crash leaves either nothing or a staging folder of a dead
process. Each installed folder carries a `.warehouse` marker naming the warehouse that records it; a later writer
of that warehouse, inside its own transaction (so no other writer is half way), removes the folders a crash left
behind. Folders of other warehouses, and folders without a marker, are never touched.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

MARKER = ".warehouse"
_STAGED = re.compile(r"^\.(?P<id>.+)\.(?P<what>staging|deleting)-(?P<pid>\d+)$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def staging_dir(models_dir: Path, model_id: str) -> Path:
    """Where this process saves a model before its record is committed."""
    return Path(models_dir) / f".{model_id}.staging-{os.getpid()}"


def aside_dir(path: Path) -> Path:
    """Where a model folder waits while the transaction that retires it runs."""
    return path.with_name(f".{path.name}.deleting-{os.getpid()}")


def mark(folder: Path, db_path: Path) -> None:
    (Path(folder) / MARKER).write_text(str(Path(db_path).resolve()))


def recorded_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    from flows.warehouse import Warehouse

    ids: set[str] = set()
    for table in ("_models", "_detectors"):
        if Warehouse.exists(con, table):
            ids |= {r[0] for r in con.execute(f"SELECT model_id FROM main.{table}").fetchall()}
    return ids


def find_orphans(con: duckdb.DuckDBPyConnection, models_dir: Path, db_path: Path) -> list[Path]:
    """Folders a crashed writer left: staging folders of dead processes, and marked folders of this warehouse that
    no record names. Call it inside a write transaction. (Folders set aside by a delete that died are
    `restore_aside`'s.)"""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    this_db = str(Path(db_path).resolve())
    known = None
    orphans = []
    for folder in sorted(p for p in models_dir.iterdir() if p.is_dir() and not p.is_symlink()):
        staged = _STAGED.match(folder.name)
        if staged:
            if staged["what"] == "staging" and not _pid_alive(int(staged["pid"])):
                orphans.append(folder)
            continue
        marker = folder / MARKER
        if not marker.is_file():
            continue
        try:
            owner = marker.read_text().strip()
        except OSError:
            continue
        if owner != this_db:
            continue
        if known is None:
            known = recorded_ids(con)
        if folder.name not in known:
            orphans.append(folder)
    return orphans


def find_aside(con: duckdb.DuckDBPyConnection, models_dir: Path, db_path: Path) -> list[tuple[Path, Path | None]]:
    """Folders a delete of this warehouse set aside and then died: (folder, where to put it back) when its record
    survived (the delete rolled back), (folder, None) when it did not (the delete committed). Changes nothing."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    this_db = str(Path(db_path).resolve())
    found: list[tuple[Path, Path | None]] = []
    known = None
    for folder in sorted(p for p in models_dir.iterdir() if p.is_dir() and not p.is_symlink()):
        aside = _STAGED.match(folder.name)
        if not aside or aside["what"] != "deleting" or _pid_alive(int(aside["pid"])):
            continue
        marker = folder / MARKER
        if not marker.is_file() or marker.read_text().strip() != this_db:
            continue
        if known is None:
            known = recorded_ids(con)
        original = models_dir / aside["id"]
        found.append((folder, original if aside["id"] in known and not original.exists() else None))
    return found


def restore_aside(con: duckdb.DuckDBPyConnection, models_dir: Path, db_path: Path) -> list[str]:
    """Folders a delete set aside and then died: put back those whose record survived, remove the others."""
    done = []
    for folder, original in find_aside(con, models_dir, db_path):
        if original is not None:
            folder.rename(original)
        else:
            shutil.rmtree(folder, ignore_errors=True)
        done.append(folder.name)
    return done


def remove_orphans(con: duckdb.DuckDBPyConnection, models_dir: Path, db_path: Path) -> list[str]:
    """Clean up after crashed writers of this warehouse (see `find_orphans`, `restore_aside`); returns the
    folder names handled."""
    handled = restore_aside(con, models_dir, db_path)
    for folder in find_orphans(con, models_dir, db_path):
        shutil.rmtree(folder, ignore_errors=True)
        handled.append(folder.name)
    return handled


@contextmanager
def folders_set_aside(paths: list[Path], models_dir: Path) -> Iterator[list[Path | None]]:
    """Retire model folders around the caller's write transaction: each folder inside `models_dir` is moved aside
    first; if the block raises they are all put back, else they are deleted after it. Yields, per path, the
    resolved folder when it is one of ours, else None (a row naming a path elsewhere never deletes anything)."""
    models_dir = Path(models_dir).resolve()
    moved: list[tuple[Path, Path]] = []
    owned: list[Path | None] = []
    try:
        for raw in paths:
            path = Path(raw).resolve()
            if path.parent == models_dir and path.is_dir():
                aside = aside_dir(path)
                path.rename(aside)
                moved.append((path, aside))
                owned.append(path)
            else:
                owned.append(None)
        yield owned
    except BaseException:
        for path, aside in reversed(moved):
            aside.rename(path)
        raise
    for _, aside in moved:
        shutil.rmtree(aside, ignore_errors=True)


@contextmanager
def recording_model(wh, models_dir: Path, model_id: str, save) -> Iterator[duckdb.DuckDBPyConnection]:
    """Save a model and record it atomically: `save(folder)` writes it into this process's staging folder (before
    any lock is taken), then the caller records it on the yielded write transaction, whose last step renames the
    folder into place. On any failure nothing stays behind; a crash leaves only folders `remove_orphans` finds."""
    models_dir = Path(models_dir)
    path = models_dir / model_id
    staged = staging_dir(models_dir, model_id)
    save(staged)
    mark(staged, wh.path)
    try:
        with wh.transaction() as con:
            remove_orphans(con, models_dir, wh.path)
            yield con
            staged.rename(path)  # last step before COMMIT: a crash from here on leaves a marked orphan
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        if path.is_dir() and not staged.exists():
            shutil.rmtree(path, ignore_errors=True)
        raise

"""Export a warehouse table to files a person can open: PNG images (one folder per label) or a CSV/Parquet file.

Nothing is ever written over: the target must not exist (or be an empty folder). Files are written into a
staging folder next to the target and renamed into place at the end, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from pathlib import Path

from flows.bookkeeping import catalog_entry
from flows.errors import SynthwatchError
from flows.warehouse import Warehouse, qualified, validate_table_name

FORMATS = ("png", "csv", "parquet")


class ExportError(SynthwatchError):
    """An export that cannot be done: wrong format for the table's kind, a target that exists."""


def label_folder(label: str | None) -> str:
    """A safe folder name for a label: letters, digits, `.-_` kept, the rest `_`, never `.`/`..` or empty; a
    changed name gets a short hash of the label so two labels never share a folder."""
    if label is None:
        return "unlabelled"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._")[:60]
    if safe != label or not safe:
        safe = f"{safe or 'label'}-{hashlib.sha256(label.encode()).hexdigest()[:8]}"
    return safe


def _check_target(target: Path) -> None:
    if target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise ExportError(f"{target} already exists; export never writes over files: choose a new --dir/--out or "
                          "remove it first")
    if not target.parent.exists():
        raise ExportError(f"folder {target.parent} does not exist; create it first")


def export_table(settings, table: str, fmt: str, target: str | Path, *, schema: str = "main") -> dict:
    """Write `table` as `fmt` to `target` (a folder for png, a file otherwise); returns what was written."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    validate_table_name(table)
    target = Path(target).expanduser().resolve()
    _check_target(target)
    wh = Warehouse(settings.db_path)
    if not wh.table_exists(table, schema):
        wh.read_frame(table, schema)  # TableNotFound naming the tables
    with wh.read() as con:
        entry = catalog_entry(con, table, schema) or {}
    kind = entry.get("kind", "tabular")
    if fmt == "png" and kind != "image":
        raise ExportError(f"table {table} holds {kind} data; png is for image tables: use --format csv or parquet")
    if fmt != "png" and kind == "image":
        raise ExportError(f"table {table} holds images; export them with --format png")
    staging = target.parent / f".{target.name}.export-{uuid.uuid4().hex[:8]}"
    try:
        if fmt == "png":
            written = _write_pngs(wh, table, schema, staging)
        else:
            options = "FORMAT parquet" if fmt == "parquet" else "FORMAT csv, HEADER true"
            literal = "'" + str(staging).replace("'", "''") + "'"
            with wh.read() as con:
                con.execute(f"COPY (SELECT * FROM {qualified(table, schema)}) TO {literal} ({options})").fetchall()
                written = {"rows": int(con.execute(f"SELECT count(*) FROM {qualified(table, schema)}"
                                                   ).fetchall()[0][0])}
        if target.exists():
            target.rmdir()  # an empty folder (checked above)
        os.replace(staging, target)
    except BaseException:
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
        elif staging.exists():
            staging.unlink()
        raise
    return {"table": table, "format": fmt, "kind": kind, "path": str(target), **written}


def _write_pngs(wh: Warehouse, table: str, schema: str, folder: Path) -> dict:
    """One PNG per image in `folder/<label>/<id>.png` (a repeated id gets a `-2`, `-3`... suffix)."""
    from PIL import Image

    from flows.kinds import images_of

    with wh.read() as con:
        frame = con.execute(f"SELECT * FROM {qualified(table, schema)} ORDER BY id").df()
    data = images_of(frame)
    folder.mkdir()
    counts: dict[str, int] = {}
    for image_id, pixels, label in zip(frame["id"], data.pixels, data.labels):
        name = label_folder(label)
        (folder / name).mkdir(exist_ok=True)
        mode = {1: "L", 3: "RGB", 4: "RGBA"}[pixels.shape[2]]
        path, k = folder / name / f"{int(image_id)}.png", 1
        while path.exists():
            k += 1
            path = folder / name / f"{int(image_id)}-{k}.png"
        Image.fromarray(pixels[:, :, 0] if mode == "L" else pixels, mode=mode).save(path)
        counts[name] = counts.get(name, 0) + 1
    return {"images": int(len(frame)), "folders": dict(sorted(counts.items()))}

"""Analysts' labels of alerts: stored in `_feedback` (one short write transaction), read back as precision figures.

A label belongs to an item of a table (`table_name`, `item_key`), whichever detector raised the alert; labelling it
again replaces the label (the latest analyst decision wins, its time recorded). Kept free of Prefect and the model
libraries so the CLI and the dashboard answer at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flows.bookkeeping import insert_row, now_utc
from flows.errors import SynthwatchError
from flows.warehouse import Warehouse

if TYPE_CHECKING:
    from flows.config import Settings

LABELS = ("fraud", "normal")
MAX_NOTE = 2000


class FeedbackError(SynthwatchError):
    """A label that cannot be stored: unknown label, an item that was never scored, a note too long."""


def record_feedback(settings: Settings, *, item_key: str, label: str, model_id: str | None = None,
                    table: str | None = None, note: str | None = None, source: str = "cli") -> dict:
    """Store one analyst label for a scored item; returns the stored row.

    The item must have been scored (by `model_id` when given); its table comes from its scores. The check and the
    write are one transaction, so a label never points at scores deleted meanwhile.
    """
    if label not in LABELS:
        raise FeedbackError(f"label must be one of {', '.join(LABELS)}, got {label!r}")
    if note is not None and len(note) > MAX_NOTE:
        raise FeedbackError(f"the note has {len(note)} characters; keep it under {MAX_NOTE}")
    item_key = str(item_key)
    wh = Warehouse(settings.db_path)
    if not settings.db_path.exists():
        raise FeedbackError(f"no warehouse at {settings.db_path}: run the pipeline (make demo) first")
    with wh.transaction() as con:
        where, params = ["item_key = ?"], [item_key]
        if model_id is not None:
            where.append("model_id = ?")
            params.append(model_id)
        if table is not None:
            where.append("lower(table_name) = lower(?)")
            params.append(table)
        found = con.execute(f"SELECT DISTINCT table_name, model_id FROM main.anomaly_scores WHERE "
                            f"{' AND '.join(where)} ORDER BY 1, 2", params).fetchall()
        if not found:
            scope = (f" by model {model_id}" if model_id else "") + (f" in table {table}" if table else "")
            raise FeedbackError(f"item {item_key!r} was never scored{scope}; label an item shown in the alerts "
                                "(synthwatch alerts, or the dashboard)")
        tables = sorted({t for t, _ in found})
        if len(tables) > 1:
            raise FeedbackError(f"item {item_key!r} was scored in several tables ({', '.join(tables)}); "
                                "say which with --table")
        row = {"table_name": tables[0], "item_key": item_key, "model_id": model_id or found[0][1], "label": label,
               "note": note, "source": source, "created_at": now_utc()}
        con.execute("DELETE FROM main._feedback WHERE table_name = ? AND item_key = ?", [tables[0], item_key])
        insert_row(con, "_feedback", row)
    return {**row, "created_at": str(row["created_at"])}


def precision_at_k(settings: Settings, model_id: str, ks: tuple[int, ...] = (10, 50, 100)) -> dict:
    """Precision at k of a detector's alerts from the labels given so far: of its k highest-scored items that an
    analyst labelled, the share labelled fraud (None where none of the top k is labelled), with the counts."""
    with Warehouse(settings.db_path).read() as con:
        if not Warehouse.exists(con, "_feedback"):
            return {"labelled": 0, **{f"p@{k}": None for k in ks}}
        out = {}
        for k in ks:
            labelled, frauds = con.execute(
                "WITH top AS (SELECT table_name, item_key FROM main.anomaly_scores WHERE model_id = ? "
                "ORDER BY score DESC LIMIT ?) SELECT count(f.label), count(*) FILTER (WHERE f.label = 'fraud') "
                "FROM top LEFT JOIN main._feedback f USING (table_name, item_key)", [model_id, k]).fetchall()[0]
            out[f"p@{k}"] = (frauds / labelled) if labelled else None
            out[f"labelled@{k}"] = int(labelled)
        out["labelled"] = int(con.execute(
            "SELECT count(*) FROM main._feedback f JOIN (SELECT DISTINCT table_name, item_key FROM "
            "main.anomaly_scores WHERE model_id = ?) s USING (table_name, item_key)", [model_id]).fetchall()[0][0])
    return out

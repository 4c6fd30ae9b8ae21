"""Read-only questions to the warehouse (what it holds, which models and detectors are trained).

Kept free of Prefect, pandas and the model libraries so the commands that only read (`tables`, `models`,
`detect list`) start in a fraction of a second; the flow modules re-export these names for their callers.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from flows.errors import DetectFlowError, ModelNotFound
from flows.warehouse import Warehouse, quote_ident

if TYPE_CHECKING:
    from flows.config import Settings

MODEL_COLUMNS = ("model_id", "generator", "params", "source_table", "source_hash", "train_table", "holdout_table",
                 "train_rows", "holdout_rows", "seed", "fit_seconds", "path", "created_at", "made_by")
DETECTOR_LIST_COLUMNS = ("model_id", "detector", "table_name", "kind", "score_mode", "threshold", "threshold_source",
                         "n_train", "auroc", "auprc", "precision", "recall", "n_selection", "n_report",
                         "selection_auroc", "selection_auprc", "created_at", "made_by")


def warehouse_summary(settings: Settings) -> dict:
    """Every table with its row count, columns, kind and origin (from the catalog), and the latest ingests."""
    from flows.bookkeeping import catalog_entry

    wh = Warehouse(settings.db_path)
    with wh.read() as con:
        tables = []
        views = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'VIEW'").fetchall()}
        for schema in ("main", "quarantine"):
            for name in Warehouse.list_tables_in(con, schema, include_internal=True):
                if name.startswith("_stage_") or name in views:
                    continue
                rows = con.execute(f'SELECT count(*) FROM "{schema}"."{name}"').fetchall()[0][0]
                ncols = len(con.execute(f'DESCRIBE "{schema}"."{name}"').fetchall())
                entry = catalog_entry(con, name, schema)
                tables.append({"schema": schema, "table": name, "rows": int(rows), "columns": ncols,
                               "kind": entry["kind"] if entry else None,
                               "origin": entry["origin"] if entry else ("bookkeeping" if name.startswith("_")
                                                                        else "user")})
        ingests = con.execute(
            "SELECT table_name, kind, rows, finished_at FROM main._ingestions ORDER BY finished_at DESC LIMIT 10"
        ).fetchall() if Warehouse.exists(con, "_ingestions") else []
    return {"db": str(settings.db_path), "tables": tables, "views": sorted(views),
            "recent_ingests": [{"table": t, "kind": k, "rows": int(r), "at": str(a)} for t, k, r, a in ingests]}


def format_summary(summary: dict) -> str:
    lines = [f"warehouse {summary['db']}"]
    for t in summary["tables"]:
        what = f"{t['kind'] or '':<10} {t['origin']:<11}"
        lines.append(f"  {t['schema'] + '.' + t['table']:<40} {t['rows']:>10,} rows  {t['columns']:>4} columns  {what}")
    if summary.get("views"):
        lines.append(f"  views: {', '.join(summary['views'])}")
    return "\n".join(lines)


def list_models(settings: Settings) -> list[dict]:
    """Every trained model, newest first (empty when none)."""
    wh = Warehouse(settings.db_path)
    if not settings.db_path.exists():
        return []
    with wh.read() as con:
        if not Warehouse.exists(con, "_models"):
            return []
        rows = con.execute(f"SELECT {', '.join(MODEL_COLUMNS)} FROM main._models ORDER BY created_at DESC").fetchall()
    return [{c: (str(v) if c == "created_at" else json.loads(v) if c == "params" else v)
             for c, v in zip(MODEL_COLUMNS, r)} for r in rows]


def get_model_row(settings: Settings, model_id: str) -> dict:
    for row in list_models(settings):
        if row["model_id"] == model_id:
            return row
    known = [r["model_id"] for r in list_models(settings)][:10]
    raise ModelNotFound(f"unknown model id {model_id!r}; trained models: "
                        f"{', '.join(known) if known else '(none yet: run synthwatch train)'}")


def list_detectors(settings: Settings) -> list[dict]:
    """Every trained detector, newest first, with its validation metrics (empty when none)."""
    if not settings.db_path.exists():
        return []
    with Warehouse(settings.db_path).read() as con:
        if not Warehouse.exists(con, "_detectors"):
            return []
        rows = con.execute(f"SELECT {', '.join(quote_ident(c) for c in DETECTOR_LIST_COLUMNS)} FROM main._detectors "
                           "ORDER BY created_at DESC").fetchall()
    return [{c: (str(v) if c == "created_at" else v) for c, v in zip(DETECTOR_LIST_COLUMNS, row)} for row in rows]


def load_model_record(wh: Warehouse, model_id: str) -> dict:
    """A detector's whole `_detectors` row; DetectFlowError names the trained ones when the id is unknown."""
    with wh.read() as con:
        if not Warehouse.exists(con, "_detectors"):
            raise DetectFlowError(f"unknown model {model_id!r}: no detector has been trained yet "
                                  "(run synthwatch detect train)")
        cur = con.execute("SELECT * FROM main._detectors WHERE model_id = ?", [model_id])
        names = [d[0] for d in cur.description]
        found = cur.fetchall()
        row = found[0] if found else None
        if row is None:
            known = [r[0] for r in con.execute(
                "SELECT model_id FROM main._detectors ORDER BY created_at DESC LIMIT 10").fetchall()]
            raise DetectFlowError(f"unknown model {model_id!r}; trained models: {', '.join(known)}")
    return dict(zip(names, row))


def monitor_status(settings: Settings, table: str, limit: int = 50) -> dict:
    """The monitored table's batches (newest first) with their figures, its champion and its latest events."""
    empty = {"table": table, "batches": [], "events": [], "champion": None, "n_batches": 0, "n_rejected": 0}
    if not settings.db_path.exists():
        return empty
    with Warehouse(settings.db_path).read() as con:
        if not Warehouse.exists(con, "_batches"):
            return empty
        rows = con.execute(
            "SELECT b.batch_id, b.file_name, b.status, b.reason, b.rows, b.arrived_at, m.alerts, m.alert_rate, "
            "m.psi_score, m.max_feature_psi, m.scored_at, m.model_id, m.latency_seconds FROM main._batches b "
            "LEFT JOIN main._monitor_batches m USING (batch_id) WHERE lower(b.table_name) = lower(?) "
            "ORDER BY b.arrived_at DESC, b.ingested_at DESC LIMIT ?", [table, limit]).fetchall()
        counts = con.execute("SELECT count(*), count(*) FILTER (WHERE status = 'rejected') FROM main._batches "
                             "WHERE lower(table_name) = lower(?)", [table]).fetchall()[0]
        champion = con.execute("SELECT model_id FROM main._champions WHERE lower(table_name) = lower(?)",
                               [table]).fetchall()
        events = con.execute("SELECT event_type, message, batch_id, created_at FROM main.monitoring_events "
                             "WHERE lower(table_name) = lower(?) ORDER BY created_at DESC LIMIT 20",
                             [table]).fetchall()
    names = ("batch_id", "file_name", "status", "reason", "rows", "arrived_at", "alerts", "alert_rate", "psi_score",
             "max_feature_psi", "scored_at", "model_id", "latency_seconds")
    batches = [{k: (str(v) if k in ("arrived_at", "scored_at") and v is not None else v) for k, v in zip(names, r)}
               for r in rows]
    return {"table": table, "batches": batches, "champion": champion[0][0] if champion else None,
            "n_batches": int(counts[0]), "n_rejected": int(counts[1]),
            "events": [{"event_type": t, "message": m, "batch_id": b, "created_at": str(c)} for t, m, b, c in events]}

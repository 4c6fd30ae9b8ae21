"""Read-only questions the dashboard asks the warehouse: each opens one short read-only connection and returns plain
data or DataFrames, so no connection outlives a page render and a pipeline write waits at most for one query.

Every function answers on any warehouse: a missing file or a table an older pipeline never wrote reads as empty.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from flows.warehouse import Warehouse, qualified, quote_ident

LABEL_FILTERS = ("open", "labelled", "all")
ONE_SHOT = "(one-shot)"  # how scores without a batch (a one-shot `detect score`) are shown
PSI_THRESHOLD = 0.2      # the drift threshold the monitoring flows alarm at (PSI above 0.2: a shift worth a look)


def _has(con, *tables: str) -> bool:
    return all(Warehouse.exists(con, t) for t in tables)


def _frame(con, sql: str, params: list | None = None) -> pd.DataFrame:
    return con.execute(sql, params or []).df()


def warehouse_status(db: str | Path) -> dict[str, Any]:
    """What the warehouse holds, in counts: the empty states of every page are decided from this."""
    path = Path(db)
    status = {"exists": path.is_file(), "path": str(path)}
    counts = {"detectors": "_detectors", "scores": "anomaly_scores", "models": "_models",
              "generations": "_generations", "batches": "_monitor_batches", "feedback": "_feedback",
              "events": "monitoring_events", "drift": "_drift"}
    with Warehouse(path).read() as con:
        for key, table in counts.items():
            status[key] = int(con.execute(f"SELECT count(*) FROM main.{table}").fetchone()[0]) \
                if _has(con, table) else 0
        status["alerts"] = int(con.execute("SELECT count(*) FROM main.anomaly_scores WHERE is_alert").fetchone()[0]) \
            if _has(con, "anomaly_scores") else 0
    return status


# ------------------------------------------------------------------ alert queue
def detectors(db: str | Path) -> pd.DataFrame:
    """Every detector, newest first, with its validation figures, whether it is its table's champion, and how many
    items it scored and alerted on."""
    with Warehouse(db).read() as con:
        if not _has(con, "_detectors"):
            return pd.DataFrame(columns=["model_id", "detector", "table_name"])
        champion = ("EXISTS (SELECT 1 FROM main._champions c WHERE c.model_id = d.model_id)"
                    if _has(con, "_champions") else "false")
        counts = ("LEFT JOIN (SELECT model_id, count(*) AS scored, count(*) FILTER (WHERE is_alert) AS alerts "
                  "FROM main.anomaly_scores GROUP BY model_id) s USING (model_id)"
                  if _has(con, "anomaly_scores") else "LEFT JOIN (SELECT NULL AS model_id, 0 AS scored, 0 AS alerts)"
                  " s USING (model_id)")
        return _frame(con, f"""
            SELECT d.model_id, d.detector, d.table_name, d.kind, d.score_mode, d.threshold, d.threshold_source,
                   d.n_train, d.n_validation, d.auroc, d.auprc, d."precision", d.recall, d.selection_auroc,
                   d.created_at, d.made_by, d.key_column, d.label_column, d.path, d.feature_columns,
                   {champion} AS champion, coalesce(s.scored, 0) AS scored, coalesce(s.alerts, 0) AS alerts
            FROM main._detectors d {counts} ORDER BY d.created_at DESC""")


def batches(db: str | Path, model_id: str | None = None) -> pd.DataFrame:
    """The batches that hold alerts (of one detector or all), newest first: batch_id (ONE_SHOT for none), when it
    arrived, its alerts."""
    with Warehouse(db).read() as con:
        if not _has(con, "anomaly_scores"):
            return pd.DataFrame(columns=["batch_id", "arrived_at", "alerts"])
        arrived = ("LEFT JOIN main._batches b ON b.batch_id = s.batch_id" if _has(con, "_batches")
                   else "LEFT JOIN (SELECT NULL::VARCHAR AS batch_id, NULL::TIMESTAMP AS arrived_at) b "
                        "ON b.batch_id = s.batch_id")
        where, params = ["s.is_alert"], []
        if model_id:
            where.append("s.model_id = ?")
            params.append(model_id)
        return _frame(con, f"""
            SELECT coalesce(s.batch_id, '{ONE_SHOT}') AS batch_id,
                   coalesce(max(b.arrived_at), max(s.scored_at)) AS arrived_at, count(*) AS alerts
            FROM main.anomaly_scores s {arrived} WHERE {' AND '.join(where)}
            GROUP BY 1 ORDER BY 2 DESC, 1""", params)


def alert_queue(db: str | Path, *, model_id: str | None = None, batch_id: str | None = None,
                score_min: float | None = None, score_max: float | None = None, labelled: str = "open",
                limit: int = 50) -> tuple[pd.DataFrame, int]:
    """(the alerts shown, how many match): newest batch first, ranked by score within a batch, with the label each
    alert has (None when open). `labelled` is open (no label yet), labelled or all."""
    if labelled not in LABEL_FILTERS:
        raise ValueError(f"labelled must be one of {LABEL_FILTERS}")
    empty = pd.DataFrame(columns=["model_id", "table_name", "item_key", "batch_id", "arrived_at", "score",
                                  "threshold", "scored_at", "label", "labelled_at"])
    with Warehouse(db).read() as con:
        if not _has(con, "anomaly_scores"):
            return empty, 0
        joins = []
        joins.append("LEFT JOIN main._batches b ON b.batch_id = s.batch_id" if _has(con, "_batches")
                     else "LEFT JOIN (SELECT NULL::VARCHAR AS batch_id, NULL::TIMESTAMP AS arrived_at) b "
                          "ON b.batch_id = s.batch_id")
        joins.append("LEFT JOIN main._feedback f ON f.table_name = s.table_name AND f.item_key = s.item_key"
                     if _has(con, "_feedback")
                     else "LEFT JOIN (SELECT NULL::VARCHAR AS table_name, NULL::VARCHAR AS item_key, "
                          "NULL::VARCHAR AS label, NULL::TIMESTAMP AS created_at) f ON f.item_key = s.item_key")
        where, params = ["s.is_alert"], []
        if model_id:
            where.append("s.model_id = ?")
            params.append(model_id)
        if batch_id == ONE_SHOT:
            where.append("s.batch_id IS NULL")
        elif batch_id:
            where.append("s.batch_id = ?")
            params.append(batch_id)
        if score_min is not None:
            where.append("s.score >= ?")
            params.append(float(score_min))
        if score_max is not None:
            where.append("s.score <= ?")
            params.append(float(score_max))
        if labelled == "open":
            where.append("f.label IS NULL")
        elif labelled == "labelled":
            where.append("f.label IS NOT NULL")
        body = f"FROM main.anomaly_scores s {' '.join(joins)} WHERE {' AND '.join(where)}"
        total = int(con.execute(f"SELECT count(*) {body}", params).fetchone()[0])
        frame = _frame(con, f"""
            SELECT s.model_id, s.table_name, s.item_key, coalesce(s.batch_id, '{ONE_SHOT}') AS batch_id,
                   coalesce(b.arrived_at, s.scored_at) AS arrived_at, s.score, s.threshold, s.scored_at,
                   f.label, f.created_at AS labelled_at
            {body} ORDER BY coalesce(b.arrived_at, s.scored_at) DESC, s.score DESC, s.item_key LIMIT ?""",
                       [*params, int(limit)])
    return frame, total


def score_range(db: str | Path, model_id: str | None = None) -> tuple[float, float] | None:
    """(lowest, highest) alert score, for the score filter; None without alerts."""
    with Warehouse(db).read() as con:
        if not _has(con, "anomaly_scores"):
            return None
        where, params = "is_alert", []
        if model_id:
            where, params = "is_alert AND model_id = ?", [model_id]
        low, high = con.execute(f"SELECT min(score), max(score) FROM main.anomaly_scores WHERE {where}",
                                params).fetchone()
    return None if low is None else (float(low), float(high))


def detector_record(db: str | Path, model_id: str) -> dict | None:
    with Warehouse(db).read() as con:
        if not _has(con, "_detectors"):
            return None
        cur = con.execute("SELECT * FROM main._detectors WHERE model_id = ?", [model_id])
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
    return dict(zip(names, row)) if row else None


def item_fields(db: str | Path, record: dict, table: str, item_keys: list[str]) -> pd.DataFrame:
    """The scored items' own rows of `table`, indexed by item key (the detector's key column, or the row position a
    detector without a key column scores by). Tabular tables only; empty when the table is gone."""
    keys = [str(k) for k in item_keys]
    if not keys or record.get("kind") != "tabular":
        return pd.DataFrame()
    with Warehouse(db).read() as con:
        stored = Warehouse.stored_name(con, table)
        if stored is None:
            return pd.DataFrame()
        key_column = record.get("key_column")
        marks = ", ".join("?" * len(keys))
        if key_column:
            column = quote_ident(key_column)
            types = {r[0]: r[1].upper() for r in con.execute(f"DESCRIBE {qualified(stored)}").fetchall()}
            # Compare in the column's own type: a cast of the column would read every row of a large table.
            if types.get(key_column) in ("VARCHAR", "TEXT", "STRING"):
                match, values = f"{column} IN ({marks})", keys
            elif types.get(key_column) in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER",
                                           "HUGEINT") and all(k.lstrip("-").isdigit() for k in keys):
                match, values = f"{column} IN ({marks})", [int(k) for k in keys]
            else:
                match, values = f"CAST({column} AS VARCHAR) IN ({marks})", keys
            frame = _frame(con, f"SELECT CAST({column} AS VARCHAR) AS __item_key, * FROM {qualified(stored)} "
                                f"WHERE {match}", values)
        else:
            from flows.bookkeeping import catalog_entry

            detail = (catalog_entry(con, stored) or {}).get("detail", {})
            batch_column = detail.get("batch_column") or "batch_id"
            columns = {r[0] for r in con.execute(f"DESCRIBE {qualified(stored)}").fetchall()}
            if batch_column in columns and any(":" in k for k in keys):
                # An inbox table's rows are keyed `<batch id>:<position in its batch>` (flows.detect_inputs.batch_keys)
                column = quote_ident(batch_column)
                batch_ids = sorted({k.rsplit(":", 1)[0] for k in keys})
                frame = _frame(con, f"""
                    SELECT * FROM (
                        SELECT CAST({column} AS VARCHAR) || ':' || CAST(row_number() OVER (PARTITION BY {column}
                               ORDER BY rowid) - 1 AS VARCHAR) AS __item_key, *
                        FROM {qualified(stored)} WHERE CAST({column} AS VARCHAR) IN ({', '.join('?' * len(batch_ids))}))
                    WHERE __item_key IN ({marks})""", [*batch_ids, *keys])
            else:
                positions = [int(k) for k in keys if k.isdigit()]
                if not positions:
                    return pd.DataFrame()
                frame = _frame(con, f"SELECT CAST(rowid AS VARCHAR) AS __item_key, * FROM {qualified(stored)} "
                                    f"WHERE rowid IN ({', '.join('?' * len(positions))})", positions)
    return frame.drop_duplicates("__item_key").set_index("__item_key")


def feature_reference(db: str | Path, record: dict, models_dir: str | Path) -> dict[str, tuple[float, float]]:
    """Mean and standard deviation of each numeric feature in the detector's training data.

    Taken from the detector's saved encoder (the very statistics it standardises its input with) when its folder is
    inside the models directory; otherwise computed from its training table in the warehouse.
    """
    features = json.loads(record.get("feature_columns") or "[]")
    path = Path(str(record.get("path") or ""))
    try:
        inside = path.resolve().is_relative_to(Path(models_dir).resolve())
        saved = json.loads((path / "model.json").read_text()) if inside else {}
        numeric = (saved.get("base_state") or {}).get("encoder", {}).get("numeric") or {}
        found = {c: (float(m), float(s)) for c, (m, s) in numeric.items() if c in features}
        if found:
            return found
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    with Warehouse(db).read() as con:
        stored = Warehouse.stored_name(con, str(record.get("table_name")))
        if stored is None:
            return {}
        types = {r[0]: r[1] for r in con.execute(f"DESCRIBE {qualified(stored)}").fetchall()}
        numeric_columns = [c for c in features if c in types and _is_numeric(types[c])]
        if not numeric_columns:
            return {}
        parts = ", ".join(f"avg({quote_ident(c)}), stddev_pop({quote_ident(c)})" for c in numeric_columns)
        row = con.execute(f"SELECT {parts} FROM {qualified(stored)}").fetchone()
    return {c: (float(row[2 * i] or 0.0), float(row[2 * i + 1] or 0.0) or 1.0)
            for i, c in enumerate(numeric_columns)}


def _is_numeric(sql_type: str) -> bool:
    return any(t in sql_type.upper() for t in ("INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL", "NUMERIC"))


def contributions(row: pd.Series, reference: dict[str, tuple[float, float]]) -> pd.Series:
    """Each numeric feature's standardised deviation from the training data, (x - mean) / std, largest |z| first."""
    z = {}
    for column, (mean, std) in reference.items():
        value = row.get(column)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        try:
            z[column] = (float(value) - mean) / (std if std > 1e-12 else 1.0)
        except (TypeError, ValueError):
            continue
    series = pd.Series(z, dtype=float)
    return series.reindex(series.abs().sort_values(ascending=False).index)


# ------------------------------------------------------------------ monitoring
def monitor_batches(db: str | Path, model_id: str, k: int = 10) -> tuple[pd.DataFrame, str]:
    """(one row per scored batch in time order, where the figures come from).

    From `_monitor_batches` when the monitoring flows scored batches for this detector; otherwise computed from
    `anomaly_scores` (a one-shot scoring is one batch). Precision at k: of the batch's k highest-scored items that an
    analyst labelled, the share labelled fraud (None while none of them is labelled).
    """
    with Warehouse(db).read() as con:
        if not _has(con, "anomaly_scores"):
            return pd.DataFrame(columns=["batch_id", "rows", "alerts", "alert_rate"]), "none"
        feedback = ("LEFT JOIN main._feedback f USING (table_name, item_key)" if _has(con, "_feedback")
                    else "LEFT JOIN (SELECT NULL::VARCHAR AS table_name, NULL::VARCHAR AS item_key, "
                         "NULL::VARCHAR AS label) f USING (table_name, item_key)")
        precision = _frame(con, f"""
            WITH ranked AS (  -- a top-k aggregate: a sort of every score would cost 6x as much
                SELECT batch_id, table_name, unnest(max_by(item_key, score, ?)) AS item_key FROM (
                    SELECT coalesce(batch_id, '{ONE_SHOT}') AS batch_id, table_name, item_key, score
                    FROM main.anomaly_scores WHERE model_id = ?) GROUP BY batch_id, table_name)
            SELECT batch_id, count(f.label) AS labelled_at_k,
                   count(*) FILTER (WHERE f.label = 'fraud') AS fraud_at_k
            FROM ranked {feedback} GROUP BY batch_id""", [int(k), model_id])
        monitored = _has(con, "_monitor_batches") and con.execute(
            "SELECT count(*) FROM main._monitor_batches WHERE model_id = ?", [model_id]).fetchone()[0] > 0
        if monitored:
            frame = _frame(con, """
                SELECT batch_id, rows, alerts, alert_rate, score_p50, score_p90, score_p99, score_max, psi_score,
                       ks_score, max_feature_psi, arrived_at, scored_at, latency_seconds
                FROM main._monitor_batches WHERE model_id = ? ORDER BY coalesce(arrived_at, scored_at), batch_id""",
                           [model_id])
            source = "_monitor_batches"
        else:
            frame = _frame(con, f"""
                SELECT coalesce(batch_id, '{ONE_SHOT}') AS batch_id, count(*) AS rows,
                       count(*) FILTER (WHERE is_alert) AS alerts,
                       count(*) FILTER (WHERE is_alert) / count(*) AS alert_rate,
                       quantile_cont(score, 0.5) AS score_p50, quantile_cont(score, 0.9) AS score_p90,
                       quantile_cont(score, 0.99) AS score_p99, max(score) AS score_max,
                       NULL::DOUBLE AS psi_score, NULL::DOUBLE AS ks_score, NULL::DOUBLE AS max_feature_psi,
                       NULL::TIMESTAMP AS arrived_at, max(scored_at) AS scored_at, NULL::DOUBLE AS latency_seconds
                FROM main.anomaly_scores WHERE model_id = ? GROUP BY 1 ORDER BY max(scored_at), 1""", [model_id])
            source = "anomaly_scores"
    frame = frame.merge(precision, on="batch_id", how="left")
    frame[["labelled_at_k", "fraud_at_k"]] = frame[["labelled_at_k", "fraud_at_k"]].fillna(0).astype(int)
    frame["precision_at_k"] = [f / n if n else None for f, n in zip(frame["fraud_at_k"], frame["labelled_at_k"])]
    return frame, source


def feature_drift(db: str | Path, model_id: str) -> pd.DataFrame:
    """PSI and KS per (batch, feature) of one detector, '__score__' for the score, in batch time order."""
    with Warehouse(db).read() as con:
        if not _has(con, "_drift"):
            return pd.DataFrame(columns=["batch_id", "feature", "psi", "ks", "computed_at"])
        order = ("LEFT JOIN main._batches b USING (batch_id)" if _has(con, "_batches")
                 else "LEFT JOIN (SELECT NULL::VARCHAR AS batch_id, NULL::TIMESTAMP AS arrived_at) b USING (batch_id)")
        return _frame(con, f"""
            SELECT d.batch_id, d.feature, d.psi, d.ks, d.computed_at, coalesce(b.arrived_at, d.computed_at) AS arrived
            FROM main._drift d {order} WHERE d.model_id = ? ORDER BY arrived, d.batch_id, d.feature""", [model_id])


def events(db: str | Path, model_id: str | None = None, table: str | None = None, limit: int = 100) -> pd.DataFrame:
    """Monitoring events (drift, alert rate, gaps, champion changes), newest first: of one detector and the events of
    its table that name no detector (a gap in the batches), or all."""
    with Warehouse(db).read() as con:
        if not _has(con, "monitoring_events"):
            return pd.DataFrame(columns=["created_at", "event_type", "table_name", "model_id", "batch_id",
                                         "message"])
        where, params = "", []
        if model_id:
            where, params = ("WHERE model_id = ? OR (model_id IS NULL AND lower(table_name) = lower(?))",
                             [model_id, table or ""])
        return _frame(con, f"""
            SELECT created_at, event_type, table_name, model_id, batch_id, message FROM main.monitoring_events
            {where} ORDER BY created_at DESC LIMIT ?""", [*params, int(limit)])


def training_scores(record: dict, models_dir: str | Path):
    """The detector's scores of its own training data (saved beside its weights), or None when not readable."""
    path = Path(str(record.get("path") or ""))
    try:
        if not path.resolve().is_relative_to(Path(models_dir).resolve()):
            return None
        from safetensors import safe_open

        with safe_open(str(path / "weights.safetensors"), framework="numpy") as weights:
            return weights.get_tensor("train_scores") if "train_scores" in weights.keys() else None
    except Exception:  # noqa: BLE001 - a missing or foreign file only hides the reference curve
        return None


def score_histogram(db: str | Path, record: dict, models_dir: str | Path, bins: int = 40) -> pd.DataFrame:
    """The latest batch's score distribution against the training reference, as shares per bin.

    Columns: bin_mid, share, source (`latest batch <id>` / `training reference`). The batch is binned in SQL, so a
    million scores never leave the warehouse.
    """
    import numpy as np

    model_id = record["model_id"]
    with Warehouse(db).read() as con:
        if not _has(con, "anomaly_scores"):
            return pd.DataFrame(columns=["bin_mid", "share", "source"])
        arrived = ("LEFT JOIN main._batches b USING (batch_id)" if _has(con, "_batches")
                   else "LEFT JOIN (SELECT NULL::VARCHAR AS batch_id, NULL::TIMESTAMP AS arrived_at) b "
                        "USING (batch_id)")
        latest = con.execute(f"""
            SELECT s.batch_id FROM main.anomaly_scores s {arrived} WHERE s.model_id = ?
            GROUP BY s.batch_id ORDER BY coalesce(max(b.arrived_at), max(s.scored_at)) DESC LIMIT 1""",
                             [model_id]).fetchone()
        if latest is None:
            return pd.DataFrame(columns=["bin_mid", "share", "source"])
        batch = latest[0]
        match = "batch_id IS NULL" if batch is None else "batch_id = ?"
        params = [model_id] + ([] if batch is None else [batch])
        low, high, n = con.execute(f"SELECT min(score), max(score), count(*) FROM main.anomaly_scores "
                                   f"WHERE model_id = ? AND {match}", params).fetchone()
        reference = training_scores(record, models_dir)
        if reference is not None and len(reference):
            low, high = min(low, float(np.min(reference))), max(high, float(np.max(reference)))
        width = (high - low) / bins if high > low else 1.0
        counts = con.execute(f"""
            SELECT least(greatest(floor((score - ?) / ?), 0), ? - 1)::INTEGER AS bin, count(*)
            FROM main.anomaly_scores WHERE model_id = ? AND {match} GROUP BY 1""",
                             [low, width, bins, *params]).fetchall()
    edges = low + width * np.arange(bins + 1)
    mids = (edges[:-1] + edges[1:]) / 2
    shares = np.zeros(bins)
    for b, c in counts:
        shares[int(b)] += c / n
    parts = [pd.DataFrame({"bin_mid": mids, "share": shares,
                           "source": f"latest batch {batch if batch is not None else ONE_SHOT}"})]
    if reference is not None and len(reference):
        idx = np.clip(np.floor((np.asarray(reference, dtype=float) - low) / width), 0, bins - 1).astype(int)
        parts.append(pd.DataFrame({"bin_mid": mids, "share": np.bincount(idx, minlength=bins) / len(reference),
                                   "source": "training reference"}))
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------ models
def champions(db: str | Path) -> pd.DataFrame:
    with Warehouse(db).read() as con:
        if not _has(con, "_champions"):
            return pd.DataFrame(columns=["table_name", "model_id", "since"])
        return _frame(con, "SELECT table_name, model_id, since FROM main._champions ORDER BY table_name")


def retrain_decisions(db: str | Path, limit: int = 50) -> pd.DataFrame:
    with Warehouse(db).read() as con:
        if not _has(con, "_retrain_decisions"):
            return pd.DataFrame(columns=["decided_at", "table_name", "champion", "challenger", "promoted", "reason"])
        return _frame(con, "SELECT decided_at, table_name, champion, challenger, promoted, reason, labelled_rows "
                           "FROM main._retrain_decisions ORDER BY decided_at DESC LIMIT ?", [int(limit)])


def generators(db: str | Path) -> pd.DataFrame:
    """Every generator model, newest first, with what it was trained on and its latest gate verdict."""
    with Warehouse(db).read() as con:
        if not _has(con, "_models"):
            return pd.DataFrame(columns=["model_id", "generator", "source_table"])
        gate = ("""LEFT JOIN (SELECT g.model_id, count(*) AS generated_tables,
                          count(*) FILTER (WHERE q.passed) AS passed_gates,
                          count(*) FILTER (WHERE q.passed IS NOT NULL AND NOT q.passed) AS failed_gates
                   FROM main._generations g LEFT JOIN (SELECT table_name, arg_max(passed, created_at) AS passed
                        FROM main._quality_reports GROUP BY table_name) q USING (table_name)
                   GROUP BY g.model_id) v USING (model_id)"""
                if _has(con, "_generations", "_quality_reports")
                else "LEFT JOIN (SELECT NULL::VARCHAR AS model_id, 0 AS generated_tables, 0 AS passed_gates, "
                     "0 AS failed_gates) v USING (model_id)")
        return _frame(con, f"""
            SELECT m.model_id, m.generator, m.source_table, m.train_rows, m.holdout_rows, m.fit_seconds, m.seed,
                   m.created_at, m.made_by, coalesce(v.generated_tables, 0) AS generated_tables,
                   coalesce(v.passed_gates, 0) AS passed_gates, coalesce(v.failed_gates, 0) AS failed_gates
            FROM main._models m {gate} ORDER BY m.created_at DESC""")


# ------------------------------------------------------------------ synthetic data
def synthetic_tables(db: str | Path) -> pd.DataFrame:
    """Every generated table (newest generation first) with its model, source, kind, schema (main when published,
    quarantine when its gate failed) and its latest gate: verdict, failing checks, checks, report path."""
    with Warehouse(db).read() as con:
        if not _has(con, "_generations"):
            return pd.DataFrame(columns=["table_name", "model_id", "passed", "failing", "report_path"])
        reports = ("LEFT JOIN (SELECT table_name, arg_max(passed, created_at) AS passed, "
                   "arg_max(failing, created_at) AS failing, arg_max(checks, created_at) AS checks, "
                   "arg_max(report_path, created_at) AS report_path, max(created_at) AS gated_at "
                   "FROM main._quality_reports GROUP BY table_name) q USING (table_name)"
                   if _has(con, "_quality_reports")
                   else "LEFT JOIN (SELECT NULL::VARCHAR AS table_name, NULL::BOOLEAN AS passed, NULL::JSON AS failing,"
                        " NULL::JSON AS checks, NULL::VARCHAR AS report_path, NULL::TIMESTAMP AS gated_at) q "
                        "USING (table_name)")
        models = ("LEFT JOIN main._models m USING (model_id)" if _has(con, "_models")
                  else "LEFT JOIN (SELECT NULL::VARCHAR AS model_id, NULL::VARCHAR AS generator, "
                       "NULL::VARCHAR AS source_table) m USING (model_id)")
        catalog = ("LEFT JOIN main._catalog c ON c.table_key = lower(g.table_name) AND c.origin = 'generated'"
                   if _has(con, "_catalog")
                   else "LEFT JOIN (SELECT NULL AS table_key, NULL AS kind, NULL AS table_schema) c "
                        "ON c.table_key = lower(g.table_name)")
        frame = _frame(con, f"""
            SELECT g.table_name, g.model_id, m.generator, m.source_table, g.rows, g.seed, g.created_at,
                   coalesce(c.table_schema, g.published_schema, 'main') AS table_schema,
                   coalesce(c.kind, 'tabular') AS kind,
                   q.passed, q.failing, q.checks, q.report_path, q.gated_at
            FROM (SELECT * FROM main._generations QUALIFY row_number() OVER (PARTITION BY lower(table_name)
                  ORDER BY created_at DESC) = 1) g {models} {reports} {catalog}
            ORDER BY g.created_at DESC, g.table_name""")
    frame["failing"] = [json.loads(f) if isinstance(f, str) else [] for f in frame["failing"]]
    frame["checks"] = [json.loads(c) if isinstance(c, str) else [] for c in frame["checks"]]
    return frame


def sample_rows(db: str | Path, table: str, schema: str = "main", n: int = 10, seed: int = 0) -> pd.DataFrame:
    """A repeatable sample of a table's rows (empty when the table is gone)."""
    with Warehouse(db).read() as con:
        stored = Warehouse.stored_name(con, table, schema)
        if stored is None:
            return pd.DataFrame()
        return _frame(con, f"SELECT * FROM {qualified(stored, schema)} "
                           f"USING SAMPLE reservoir({int(n)} ROWS) REPEATABLE ({int(seed)})")


def report_html(report_path: str | None, data_dir: str | Path) -> str | None:
    """The text of a quality report, only from inside the data directory (a path in a warehouse row is not trusted
    to point anywhere else); None when it is missing."""
    if not report_path:
        return None
    path = Path(report_path)
    try:
        if not path.resolve().is_relative_to(Path(data_dir).resolve()) or not path.is_file():
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def catalog_detail(db: str | Path, table: str, schema: str = "main") -> dict:
    """What the catalog knows of a table (kind, origin, detail such as a series' id and time columns)."""
    from flows.bookkeeping import catalog_entry

    with Warehouse(db).read() as con:
        entry = catalog_entry(con, table, schema)
    return entry or {}


def sample_series(db: str | Path, table: str, schema: str, id_column: str | None, time_column: str | None,
                  entities: int = 3, max_points: int = 2000) -> pd.DataFrame:
    """Whole series of a few entities (the first `entities` ids), in time order, at most `max_points` rows."""
    with Warehouse(db).read() as con:
        stored = Warehouse.stored_name(con, table, schema)
        if stored is None:
            return pd.DataFrame()
        target = qualified(stored, schema)
        order = ", ".join(quote_ident(c) for c in (id_column, time_column) if c) or "rowid"
        if id_column:
            return _frame(con, f"SELECT * FROM {target} WHERE {quote_ident(id_column)} IN (SELECT DISTINCT "
                               f"{quote_ident(id_column)} FROM {target} ORDER BY 1 LIMIT ?) ORDER BY {order} LIMIT ?",
                          [int(entities), int(max_points)])
        return _frame(con, f"SELECT * FROM {target} ORDER BY {order} LIMIT ?", [int(max_points)])

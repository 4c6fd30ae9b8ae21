"""Scheduled monitoring: ingest what arrived, score only the new batches with the champion detector, measure drift,
raise events, and retrain a challenger that replaces the champion only when it is not worse on labelled data.

A batch is scored once per table, by whichever detector is the table's champion when it is scored: the scores, the
batch's `_monitor_batches` row, its `_drift` rows and its events are written in one transaction that first checks,
inside itself, that no detector scored that batch yet. A run killed mid-batch leaves nothing of that batch; the next
run scores it. Scoring batch by batch gives the same scores as scoring the table at once (detectors score items
independently: tabular rows, never windows across batches).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from flows.bookkeeping import insert_row, insert_rows, now_utc, record_table
from flows.errors import SynthwatchError
from flows.kinds import table_kind
from flows.warehouse import Warehouse, qualified, quote_ident

SCORE_FEATURE = "__score__"
EPS = 1e-4
KS_GRID = 1000  # reference quantiles the KS statistic is evaluated on
CHUNK_ROWS = 100_000  # batches read, scored and recorded together (each batch is still all-or-nothing)


class MonitorError(SynthwatchError):
    """Monitoring that cannot run: no detector for the table, a detector whose features the table lacks."""


@dataclass
class MonitorSettings:
    """The `monitor:` section of pipeline.yaml (validated by flows/config_schema.py), defaults in one place."""

    table: str = "transactions"
    inbox: str | None = "inbox"              # relative to the data dir; None: score what is already ingested
    model: str | None = None                 # a detector id; default: the table's champion
    reference_table: str | None = None       # where the first champion was trained (default: the table itself)
    psi_threshold: float = 0.2
    psi_consecutive: int = 2
    drift_ignore: list[str] = field(default_factory=list)  # features left out of drift (e.g. a clock column)
    alert_rate_max: float | None = None      # a fixed bound; None: alert_rate_factor x the training alert rate
    alert_rate_factor: float = 3.0
    max_gap_minutes: float | None = 120.0
    drift_bins: int = 10
    reference_rows: int = 50_000
    retrain: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, section: dict | None) -> "MonitorSettings":
        return cls(**{k: v for k, v in (section or {}).items() if v is not None or k in ("inbox", "model")})


# ------------------------------------------------------------------ drift statistics
@dataclass
class Reference:
    """What a batch is compared with: per feature (and the score) the reference's bin edges and proportions and
    its quantiles on a fine grid (for the KS statistic)."""

    edges: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    sorted_values: dict[str, np.ndarray]


def bin_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Inner edges of (up to) `bins` quantile bins of the reference; ties collapse, so a discrete feature keeps one
    bin per value."""
    qs = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(qs)


def proportions(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two binned distributions (proportions floored at 1e-4)."""
    e, a = np.maximum(expected, EPS), np.maximum(actual, EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_statistic(reference_quantiles: np.ndarray, values: np.ndarray) -> float:
    """Kolmogorov-Smirnov statistic of a batch against the reference, on the reference's quantile grid: the
    reference's CDF at its i-th of m quantiles is i/m, the batch's is counted. With m = 1,000 the value is within
    0.001 of the exact statistic and costs one sort of the batch."""
    if len(values) == 0 or len(reference_quantiles) == 0:
        return float("nan")
    values = np.sort(values)
    m = len(reference_quantiles)
    ref_cdf = np.arange(1, m + 1) / m
    new_cdf = np.searchsorted(values, reference_quantiles, side="right") / len(values)
    below = np.searchsorted(values, reference_quantiles, side="left") / len(values)
    return float(max(np.max(np.abs(new_cdf - ref_cdf)), np.max(np.abs(below - (ref_cdf - 1 / m)))))


def build_reference(features: pd.DataFrame, scores: np.ndarray, bins: int) -> Reference:
    edges, expected, ordered = {}, {}, {}
    columns = {c: pd.to_numeric(features[c], errors="coerce").to_numpy(np.float64) for c in features.columns}
    columns[SCORE_FEATURE] = np.asarray(scores, np.float64)
    for name, values in columns.items():
        values = values[np.isfinite(values)]
        if len(values) == 0:
            continue
        edges[name] = bin_edges(values, bins)
        expected[name] = proportions(values, edges[name])
        ordered[name] = np.quantile(values, np.arange(1, KS_GRID + 1) / KS_GRID)
    return Reference(edges, expected, ordered)


def drift_of(reference: Reference, features: pd.DataFrame, scores: np.ndarray) -> dict[str, tuple[float, float]]:
    """{feature or __score__: (PSI, KS)} of one batch against the reference."""
    out = {}
    columns = {c: pd.to_numeric(features[c], errors="coerce").to_numpy(np.float64) for c in features.columns
               if c in reference.edges}
    columns[SCORE_FEATURE] = np.asarray(scores, np.float64)
    for name, values in columns.items():
        values = values[np.isfinite(values)]
        if name not in reference.edges or len(values) == 0:
            continue
        out[name] = (psi(reference.expected[name], proportions(values, reference.edges[name])),
                     ks_statistic(reference.sorted_values[name], values))
    return out


# ------------------------------------------------------------------ champion and its reference
def champion_id(wh: Warehouse, cfg: MonitorSettings) -> str:
    """The detector that scores the table: its recorded champion, else the configured one, else the newest
    detector trained on the reference table (or the table itself)."""
    with wh.read() as con:
        if Warehouse.exists(con, "_champions"):
            rows = con.execute("SELECT c.model_id FROM main._champions c JOIN main._detectors d USING (model_id) "
                               "WHERE lower(c.table_name) = lower(?)", [cfg.table]).fetchall()
            if rows:  # a champion retired since (e.g. by the pipeline's next detector) no longer counts
                return rows[0][0]
        if cfg.model:
            return cfg.model
        if Warehouse.exists(con, "_detectors"):
            sources = [t for t in (cfg.reference_table, cfg.table) if t]
            rows = con.execute(
                "SELECT model_id FROM main._detectors WHERE lower(table_name) IN (" + ", ".join("lower(?)" for _ in
                                                                                              sources)
                + ") AND kind = 'tabular' ORDER BY created_at DESC LIMIT 1", sources).fetchall()
            if rows:
                return rows[0][0]
    raise MonitorError(f"no detector to monitor {cfg.table} with: train one (synthwatch detect train --table "
                       f"{cfg.reference_table or cfg.table} ...) or set monitor.model")


def load_champion(wh: Warehouse, model_id: str):
    """(detector, its `_detectors` row, its feature columns) for a tabular detector."""
    from detectors.base import Detector
    from flows.queries import load_model_record

    record = load_model_record(wh, model_id)
    if record["kind"] != "tabular":
        raise MonitorError(f"detector {model_id} scores {record['kind']} data; monitoring scores table rows")
    return Detector.load(record["path"]), record, json.loads(record["feature_columns"])


def reference_for(wh: Warehouse, record: dict, features: list[str], model, cfg: MonitorSettings) -> Reference:
    """The drift reference of a detector: a seeded sample of the normal rows of the table it was trained on, and
    its training scores."""
    table = record["table_name"]
    with wh.read() as con:
        if not Warehouse.exists(con, table):
            raise MonitorError(f"detector {record['model_id']}'s training table {table} no longer exists: the drift "
                               "reference is gone; retrain the detector")
        label = record.get("label_column")
        where = ""
        params: list = []
        if label and label in [r[0] for r in con.execute(f"DESCRIBE {qualified(table)}").fetchall()]:
            if record.get("normal_value") is not None:
                where, params = f" WHERE CAST({quote_ident(label)} AS VARCHAR) = ?", [str(record["normal_value"])]
        columns = ", ".join(quote_ident(c) for c in features)
        frame = con.execute(f"SELECT {columns} FROM {qualified(table)}{where} USING SAMPLE "
                            f"reservoir({int(cfg.reference_rows)} ROWS) REPEATABLE (0)", params).df()
    return build_reference(frame.drop(columns=[c for c in cfg.drift_ignore if c in frame.columns]),
                           model.train_scores_, cfg.drift_bins)


# ------------------------------------------------------------------ scoring new batches
def unscored_batches(wh: Warehouse, table: str) -> list[dict]:
    """Ingested batches of the table that no detector has scored yet, oldest arrival first."""
    with wh.read() as con:
        if not Warehouse.exists(con, "_batches"):
            return []
        rows = con.execute(
            "SELECT b.batch_id, b.arrived_at, b.rows FROM main._batches b WHERE lower(b.table_name) = lower(?) "
            "AND b.status = 'ingested' AND NOT EXISTS (SELECT 1 FROM main._monitor_batches m WHERE "
            "m.batch_id = b.batch_id AND lower(m.table_name) = lower(b.table_name)) ORDER BY b.arrived_at, "
            "b.ingested_at, b.batch_id", [table]).fetchall()
    return [{"batch_id": b, "arrived_at": a, "rows": int(n)} for b, a, n in rows]


def _previous_psi(con, model_id: str, table: str, batch_arrived, k: int) -> list[dict[str, float]]:
    """PSI per feature of the k batches this table saw before one arriving at `batch_arrived`, newest first."""
    if k <= 0:
        return []
    rows = con.execute(
        "SELECT batch_id FROM main._monitor_batches WHERE model_id = ? AND lower(table_name) = lower(?) AND "
        "arrived_at <= ? ORDER BY arrived_at DESC, scored_at DESC LIMIT ?", [model_id, table, batch_arrived, k]
    ).fetchall()
    out = []
    for (batch_id,) in rows:
        out.append(dict(con.execute("SELECT feature, psi FROM main._drift WHERE model_id = ? AND batch_id = ?",
                                    [model_id, batch_id]).fetchall()))
    return out


def prepare_chunk_by_id(db_path: str, table: str, batches: list[dict], model_id: str,
                        reference: Reference) -> list[tuple]:
    """`prepare_chunk` in a fresh process (a Dask worker): loads the detector itself."""
    wh = Warehouse(db_path)
    model, record, features = load_champion(wh, model_id)
    return prepare_chunk(wh, table, batches, model, record, features, reference)


def prepare_chunk(wh: Warehouse, table: str, batches: list[dict], model, record: dict, features: list[str],
                  reference: Reference) -> list[tuple]:
    """Read a few batches together and score them: per batch (batch, its `_monitor_batches` row, its drift, its
    scores as rows of `anomaly_scores`). Only reads the warehouse, so it may run on any worker."""
    from flows.detect_inputs import batch_keys

    ids = [b["batch_id"] for b in batches]
    with wh.read() as con:
        frame = con.execute(f"SELECT * FROM {qualified(table)} WHERE batch_id IN ({', '.join('?' * len(ids))}) "
                            "ORDER BY rowid", ids).df()
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise MonitorError(f"table {table} lacks the detector's feature column(s) {', '.join(missing[:5])}; "
                           f"monitor it with a detector trained on the same columns")
    key_column = record.get("key_column")
    keys = frame[key_column].astype(str) if key_column else batch_keys(frame, "batch_id")
    scores = model.score(frame[features].reset_index(drop=True))
    threshold = float(model.threshold_)
    scored_at = now_utc()
    by_batch = frame["batch_id"].to_numpy()
    prepared = []
    for batch in batches:
        mask = by_batch == batch["batch_id"]
        s, alerts = scores[mask], scores[mask] > threshold
        drift = drift_of(reference, frame.loc[mask, features], s)
        q = np.quantile(s, [0.5, 0.9, 0.99]) if len(s) else [None] * 3
        feature_psi = {f: v[0] for f, v in drift.items() if f != SCORE_FEATURE}
        row = {"model_id": record["model_id"], "table_name": table, "batch_id": batch["batch_id"],
               "rows": int(len(s)), "alerts": int(alerts.sum()), "alert_rate": float(alerts.mean()) if len(s) else 0.0,
               "score_p50": None if q[0] is None else float(q[0]), "score_p90": None if q[1] is None else float(q[1]),
               "score_p99": None if q[2] is None else float(q[2]), "score_max": float(s.max()) if len(s) else None,
               "psi_score": drift.get(SCORE_FEATURE, (None, None))[0],
               "ks_score": drift.get(SCORE_FEATURE, (None, None))[1],
               "max_feature_psi": max(feature_psi.values()) if feature_psi else None,
               "arrived_at": batch["arrived_at"], "scored_at": scored_at}
        scored = pd.DataFrame({"model_id": record["model_id"], "table_name": table, "item_key": keys[mask].to_numpy(),
                               "score": s, "threshold": threshold, "is_alert": alerts, "scored_at": scored_at,
                               "batch_id": batch["batch_id"]})
        prepared.append((batch, row, drift, scored))
    return prepared


def record_chunk(wh: Warehouse, table: str, prepared: list[tuple], record: dict, cfg: MonitorSettings,
                 run_id: str, reference_rate: float) -> list[dict]:
    """Record scored batches (scores, batch figures, drift, events) in one transaction that skips any batch another
    run scored meanwhile (decided inside it): each batch is all there or not at all."""
    if not prepared:
        return []
    ids = [p[0]["batch_id"] for p in prepared]
    done = []
    with wh.transaction() as con:
        taken = {r[0] for r in con.execute(
            f"SELECT batch_id FROM main._monitor_batches WHERE lower(table_name) = lower(?) AND batch_id IN "
            f"({', '.join('?' * len(ids))})", [table, *ids]).fetchall()}
        history = _previous_psi(con, record["model_id"], table, prepared[0][0]["arrived_at"], cfg.psi_consecutive - 1)
        kept = [p for p in prepared if p[0]["batch_id"] not in taken]
        if kept:
            scores = pd.concat([p[3] for p in kept], ignore_index=True)
            scores["run_id"] = run_id
            Warehouse.write_frame(con, "anomaly_scores", scores, mode="append", internal=True)
            record_table(con, "anomaly_scores", kind="tabular", origin="pipeline", detail={"written_by": "monitor"},
                         run_id=run_id)
        batch_rows, drift_rows = [], []
        for batch, row, drift, _ in kept:
            row = {**row, "run_id": run_id,
                   "latency_seconds": (now_utc() - batch["arrived_at"]).total_seconds() if batch["arrived_at"]
                   else None}
            batch_rows.append(row)
            drift_rows.extend({"model_id": record["model_id"], "batch_id": batch["batch_id"], "feature": name,
                               "psi": p, "ks": k, "computed_at": row["scored_at"]} for name, (p, k) in drift.items())
            events = batch_events(row, drift, history, cfg, reference_rate=reference_rate)
            for event in events:
                insert_row(con, "monitoring_events", {"event_id": uuid.uuid4().hex, "table_name": table,
                                                      "model_id": record["model_id"], "batch_id": batch["batch_id"],
                                                      "created_at": row["scored_at"], "run_id": run_id, **event})
            history = [{n: v[0] for n, v in drift.items()}, *history][: max(cfg.psi_consecutive - 1, 0)]
            done.append({**{k: row[k] for k in ("batch_id", "rows", "alerts", "alert_rate", "psi_score",
                                                 "max_feature_psi", "latency_seconds")},
                         "events": [e["event_type"] for e in events]})
        insert_rows(con, "_monitor_batches", batch_rows)
        insert_rows(con, "_drift", drift_rows)
    return done


def chunks_of(batches: list[dict], rows: int = CHUNK_ROWS) -> list[list[dict]]:
    """Consecutive batches grouped up to about `rows` rows (a batch is never split)."""
    out, chunk, size = [], [], 0
    for batch in batches:
        chunk.append(batch)
        size += batch["rows"]
        if size >= rows:
            out.append(chunk)
            chunk, size = [], 0
    if chunk:
        out.append(chunk)
    return out


def reference_alert_rate(model) -> float:
    """The share of the detector's own training scores over its threshold: the alert rate normal data gives."""
    return float(np.mean(model.train_scores_ > model.threshold_)) if len(model.train_scores_) else 0.0


def alert_rate_bound(cfg: MonitorSettings, reference_rate: float) -> float:
    """The alert rate a batch may reach: `alert_rate_max` when set, else `alert_rate_factor` times the rate the
    detector's own normal training data gives (at least 1%)."""
    if cfg.alert_rate_max is not None:
        return float(cfg.alert_rate_max)
    return max(cfg.alert_rate_factor * reference_rate, 0.01)


def batch_events(row: dict, drift: dict, history: list[dict], cfg: MonitorSettings,
                 reference_rate: float = 0.0) -> list[dict]:
    """The events one scored batch raises: an alert rate over its bound; PSI at or over the threshold on
    `psi_consecutive` consecutive batches (this one and the ones before it), for the score or any feature."""
    events = []
    bound = alert_rate_bound(cfg, reference_rate)
    if row["alert_rate"] > bound:
        events.append({"event_type": "alert_rate",
                       "message": f"alert rate {row['alert_rate']:.2%} over {bound:.2%} "
                                  f"({row['alerts']} of {row['rows']} rows)",
                       "detail": json.dumps({"alert_rate": row["alert_rate"], "bound": bound})})
    needed = max(int(cfg.psi_consecutive), 1)
    if len(history) >= needed - 1:
        drifted = {}
        for name, (value, _) in drift.items():
            earlier = [h.get(name) for h in history[:needed - 1]]
            if value >= cfg.psi_threshold and all(v is not None and v >= cfg.psi_threshold for v in earlier):
                drifted[name] = [round(value, 4)] + [round(v, 4) for v in earlier]
        if drifted:
            names = sorted(drifted, key=lambda n: -drifted[n][0])
            shown = ", ".join(f"{'score' if n == SCORE_FEATURE else n} {drifted[n][0]:.2f}" for n in names[:5])
            events.append({"event_type": "drift",
                           "message": f"PSI >= {cfg.psi_threshold:g} on {needed} consecutive batches: {shown}"
                                      + (f" and {len(names) - 5} more" if len(names) > 5 else ""),
                           "detail": json.dumps({"psi": drifted, "threshold": cfg.psi_threshold})})
    return events


def check_gap(wh: Warehouse, cfg: MonitorSettings, run_id: str) -> dict | None:
    """A `gap` event when no batch arrived for longer than `max_gap_minutes` (once per gap)."""
    if cfg.max_gap_minutes is None:
        return None
    now = now_utc()
    with wh.transaction() as con:
        last = con.execute("SELECT max(arrived_at) FROM main._batches WHERE lower(table_name) = lower(?) AND "
                           "status = 'ingested'", [cfg.table]).fetchall()[0][0]
        if last is None:
            return None
        minutes = (now - last).total_seconds() / 60
        if minutes <= cfg.max_gap_minutes:
            return None
        raised = con.execute("SELECT count(*) FROM main.monitoring_events WHERE event_type = 'gap' AND "
                             "lower(table_name) = lower(?) AND created_at > ?", [cfg.table, last]).fetchall()[0][0]
        if raised:
            return None
        event = {"event_id": uuid.uuid4().hex, "event_type": "gap", "table_name": cfg.table, "model_id": None,
                 "batch_id": None, "message": f"no batch arrived for {minutes:.0f} minutes (bound "
                                              f"{cfg.max_gap_minutes:g}); the last arrived at {last:%Y-%m-%d %H:%M}",
                 "detail": json.dumps({"minutes": minutes, "last_arrival": str(last)}), "created_at": now,
                 "run_id": run_id}
        insert_row(con, "monitoring_events", event)
    return event


def score_new_batches(settings, cfg: MonitorSettings, run_id: str, progress=None, prepare_many=None) -> dict:
    """Score every batch no detector has scored yet with the table's champion (recorded as champion if it was
    only the default).

    `prepare_many(chunks, model_id, reference)` may compute the chunks elsewhere (Prefect tasks on a Dask cluster),
    yielding each chunk's `prepare_chunk` result in order; recording stays here, one transaction per chunk, in
    arrival order."""
    wh = Warehouse(settings.db_path)
    batches = unscored_batches(wh, cfg.table)
    if not batches:
        return {"model_id": None, "batches": [], "rows": 0, "alerts": 0}
    model_id = champion_id(wh, cfg)
    model, record, features = load_champion(wh, model_id)
    reference = reference_for(wh, record, features, model, cfg)
    with wh.transaction() as con:  # the first champion of a table is whichever detector scored its first batch
        current = con.execute("SELECT model_id FROM main._champions WHERE lower(table_name) = lower(?)",
                              [cfg.table]).fetchall()
        if not current or current[0][0] != model_id:
            con.execute("DELETE FROM main._champions WHERE lower(table_name) = lower(?)", [cfg.table])
            insert_row(con, "_champions", {"table_name": cfg.table, "model_id": model_id, "since": now_utc()})
    rate = reference_alert_rate(model)
    done = []
    chunks = chunks_of(batches)
    prepared_chunks = (prepare_many(chunks, model_id, reference) if prepare_many is not None else
                       (prepare_chunk(wh, cfg.table, c, model, record, features, reference) for c in chunks))
    for prepared in prepared_chunks:
        results = record_chunk(wh, cfg.table, prepared, record, cfg, run_id, rate)
        done.extend(results)
        for result in results:
            if progress is not None:
                progress.info("batch %s: %d rows, %d alerts%s", result["batch_id"], result["rows"],
                              result["alerts"], f" ({', '.join(result['events'])})" if result["events"] else "")
    return {"model_id": model_id, "batches": done, "rows": sum(b["rows"] for b in done),
            "alerts": sum(b["alerts"] for b in done)}


def monitor_once(settings, cfg: MonitorSettings, run_id: str | None = None, progress=None) -> dict:
    """One monitoring run: ingest the inbox, score what is new, check for a gap."""
    from flows.inbox import ingest_inbox

    run_id = run_id or str(uuid.uuid4())
    started = time.perf_counter()
    wh = Warehouse(settings.db_path)
    inbox = None
    if cfg.inbox:
        inbox = ingest_inbox(wh, settings.resolve_path(cfg.inbox), cfg.table, run_id=run_id, progress=progress)
    scored = score_new_batches(settings, cfg, run_id, progress)
    gap = check_gap(wh, cfg, run_id)
    return {"table": cfg.table, "inbox": inbox, **scored, "gap_event": gap["message"] if gap else None,
            "seconds": round(time.perf_counter() - started, 3), "run_id": run_id}


# ------------------------------------------------------------------ retraining with a champion
def labelled_items(wh: Warehouse, table: str) -> dict[str, int]:
    """{item key: 1 fraud / 0 normal} of the analysts' labels on a table."""
    with wh.read() as con:
        if not Warehouse.exists(con, "_feedback"):
            return {}
        rows = con.execute("SELECT item_key, label FROM main._feedback WHERE lower(table_name) = lower(?)",
                           [table]).fetchall()
    return {k: int(label == "fraud") for k, label in rows}


def _auprc(scores: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(labels, scores))


def retrain(settings, cfg: MonitorSettings, run_id: str | None = None, progress=None) -> dict:
    """Train a challenger on the data seen so far and promote it only when it is not worse than the champion on
    the labelled items (analysts' labels, plus the table's label column when `retrain.label_column` names one);
    every decision is recorded, and the swap is one transaction.

    The challenger never trains on items analysts confirmed as fraud. Without labels of both classes nothing can
    show the challenger is not worse, so the champion stays (and the decision says why); a table without a
    champion takes the challenger.
    """
    from flows.detect import delete_detectors, train_detector
    from flows.detect_inputs import detector_input, read_table

    run_id = run_id or str(uuid.uuid4())
    options = dict(cfg.retrain or {})
    tolerance = float(options.pop("tolerance", 0.0))
    min_labels = int(options.pop("min_labels", 10))
    wh = Warehouse(settings.db_path)
    if not wh.table_exists(cfg.table):
        raise MonitorError(f"table {cfg.table} does not exist yet: nothing arrived to retrain on")
    try:
        champion = champion_id(wh, cfg)
    except MonitorError:
        champion = None
    champion_record = None
    if champion is not None:
        from flows.queries import load_model_record

        champion_record = load_model_record(wh, champion)
    detector = options.pop("detector", None) or (champion_record["detector"] if champion_record else "iforest")
    label_column = options.pop("label_column", None)
    normal_value = options.pop("normal_value", None)
    feedback = labelled_items(wh, cfg.table)
    frauds = [k for k, v in feedback.items() if v == 1]
    challenger = train_detector(settings, table=cfg.table, detector=detector, label_column=label_column,
                                normal_value=None if normal_value is None else str(normal_value),
                                seed=int(options.pop("seed", 0)), epochs=options.pop("epochs", None),
                                max_train_rows=options.pop("max_train_rows", 50_000), params=options.pop("params", {}),
                                run_id=run_id, made_by="pipeline", exclude_keys=frauds,
                                model_id=f"challenger-{cfg.table}-{detector}-{uuid.uuid4().hex[:8]}")
    # the labelled items: analysts' labels override the label column
    kind, summary = table_kind(wh, cfg.table)
    frame = read_table(wh, cfg.table, kind, summary)
    _, _, keys = detector_input(frame, kind, summary, None, None)
    labels = pd.Series(np.nan, index=keys.index)
    if label_column and label_column in frame.columns:
        from flows.detect_inputs import label_vector

        labels[:] = label_vector(frame, label_column, None if normal_value is None else str(normal_value))
    if feedback:
        given = keys.map(feedback)
        labels = given.where(given.notna(), labels)
    labelled = labels.notna().to_numpy()
    y = labels[labelled].to_numpy(np.int64)
    metrics: dict[str, dict] = {}
    enough = len(y) >= min_labels and 0 < y.sum() < len(y)
    if enough:
        from detectors.base import Detector

        for name, model_id in (("challenger", challenger["model_id"]), ("champion", champion)):
            if model_id is None:
                continue
            _, record, features = load_champion(wh, model_id)
            model = Detector.load(record["path"])
            scores = model.score(frame.loc[labelled, features].reset_index(drop=True))
            metrics[name] = {"auprc": _auprc(scores, y), "n": int(len(y)), "frauds": int(y.sum())}
    if champion is None:
        promoted, reason = True, "the table had no champion"
    elif not enough:
        promoted = False
        reason = (f"{len(y)} labelled items ({int(y.sum())} fraud): fewer than {min_labels} or one class only, so "
                  "nothing shows the challenger is not worse; the champion stays")
    else:
        promoted = metrics["challenger"]["auprc"] >= metrics["champion"]["auprc"] - tolerance
        reason = (f"challenger AUPRC {metrics['challenger']['auprc']:.4f} vs champion "
                  f"{metrics['champion']['auprc']:.4f} on {len(y)} labelled items"
                  + ("" if tolerance == 0 else f" (tolerance {tolerance:g})"))
    stamp = now_utc()
    with wh.transaction() as con:  # the decision and the swap: one transaction
        insert_row(con, "_retrain_decisions", {
            "decided_at": stamp, "table_name": cfg.table, "champion": champion, "challenger": challenger["model_id"],
            "promoted": bool(promoted), "reason": reason, "champion_metrics": json.dumps(metrics.get("champion")),
            "challenger_metrics": json.dumps(metrics.get("challenger")), "labelled_rows": int(len(y)),
            "run_id": run_id})
        if promoted:
            con.execute("DELETE FROM main._champions WHERE lower(table_name) = lower(?)", [cfg.table])
            insert_row(con, "_champions", {"table_name": cfg.table, "model_id": challenger["model_id"],
                                           "since": stamp})
            insert_row(con, "monitoring_events", {
                "event_id": uuid.uuid4().hex, "event_type": "champion", "table_name": cfg.table,
                "model_id": challenger["model_id"], "batch_id": None,
                "message": f"{challenger['model_id']} replaces {champion or 'no champion'}: {reason}",
                "detail": json.dumps(metrics), "created_at": stamp, "run_id": run_id})
    if not promoted:  # a challenger that lost is retired at once; its figures stay in the decision
        delete_detectors(settings, [challenger["model_id"]])
    if progress is not None:
        progress.info("retrain %s: %s (%s)", cfg.table, "promoted" if promoted else "kept champion", reason)
    return {"table": cfg.table, "champion": champion, "challenger": challenger["model_id"], "promoted": promoted,
            "reason": reason, "metrics": metrics, "labelled": int(len(y))}

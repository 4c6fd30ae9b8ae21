"""Detector flows: train a detector on a warehouse table, score a table into `anomaly_scores` and the `alerts` view."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.runtime import flow_run

from detectors.errors import LabelError
from flows.bookkeeping import insert_row, now_utc as _now, record_table
from flows.config import Settings
from flows.detect_checks import format_alerts
from flows.detect_inputs import (detection_metrics, detector_input, label_vector, read_table,
                                 split_rows, split_validation, take_items)
from flows.errors import DetectFlowError, TableNotFound
from flows.kinds import table_kind
from flows.modelstore import folders_set_aside, recording_model
from flows.prefect_env import library_progress
from flows.queries import list_detectors, load_model_record
from flows.warehouse import Warehouse, validate_table_name


# ------------------------------------------------------------------ train
def train_detector(settings: Settings, *, table: str, detector: str, label_column: str | None = None,
                   normal_value: str | None = None, key_column: str | None = None, epochs: int | None = None,
                   seed: int = 0, params: dict | None = None, max_train_rows: int | None = None,
                   run_id: str | None = None, model_id: str | None = None, made_by: str = "cli",
                   exclude_keys: list[str] | None = None) -> dict:
    """Fit a detector on a table's normal rows, save it under models/<id>/ and record it in `_detectors`.

    `made_by` records who asked: `pipeline` (`synthwatch run`, whose later runs retire it) or `cli`.
    `exclude_keys`: items kept out of training whatever their label (analysts' confirmed frauds).
    """
    from detectors.registry import create_detector, get_detector_class

    wh = Warehouse(settings.db_path)
    validate_table_name(table)
    klass = get_detector_class(detector)
    kind, summary = table_kind(wh, table)
    frame = read_table(wh, table, kind, summary)
    source_hash = wh.table_hash(table)
    if key_column and key_column not in frame.columns:
        raise DetectFlowError(f"key column {key_column!r} is not in table {table}; columns are "
                              f"{', '.join(map(str, frame.columns))}")
    data, features, item_keys = detector_input(frame, kind, summary, key_column, label_column)
    labels = label_vector(frame, label_column, normal_value) if label_column else None
    train_idx, val_idx = split_rows(len(frame), kind, seed)
    if labels is not None and kind != "timeseries":
        train_idx = train_idx[labels[train_idx] == 0]
    if exclude_keys and kind != "timeseries":
        train_idx = train_idx[~item_keys.iloc[train_idx].isin(set(map(str, exclude_keys))).to_numpy()]
    if max_train_rows and kind != "timeseries" and len(train_idx) > int(max_train_rows):
        # A seeded sample of the normal rows keeps demo and CI training short on big tables.
        train_idx = np.sort(np.random.default_rng(seed).choice(train_idx, int(max_train_rows), replace=False))
    val_labels = None
    if labels is not None:
        val_labels = labels[val_idx]
        if val_labels.min() == val_labels.max():
            raise LabelError(f"the validation split of {table} ({len(val_idx)} rows) holds one class of "
                             f"{label_column!r} only; use a larger table or one with more anomalies")
    hyper = dict(params or {})
    names = klass._param_names()
    if epochs is not None and "epochs" in names:
        hyper["epochs"] = int(epochs)
    hyper["seed"] = int(seed)
    hyper.setdefault("kind", kind)
    model = create_detector(detector, **hyper)
    # Score mode and threshold are chosen on one part of the validation rows and the recorded quality measured on
    # the other, so `detect list` does not show figures of the data the choices were fitted to.
    select_idx, report_idx = split_validation(val_idx, labels, kind, seed)
    select_data = select_labels = None
    if val_labels is not None:
        window = int(getattr(model, "window_length", 1)) if kind == "timeseries" else 1
        candidate = labels[select_idx]
        if len(select_idx) >= window and candidate.min() != candidate.max():
            select_data, select_labels = take_items(data, select_idx), candidate
    # Known anomalies stay out of training (for a series: every window covering a labelled point).
    model.fit(take_items(data, train_idx), labels=None if labels is None else labels[train_idx],
              validation_data=select_data, validation_labels=select_labels)

    metrics: dict[str, float | None] = {"auroc": None, "auprc": None, "precision": None, "recall": None}
    selection_metrics = dict(metrics)
    if val_labels is not None:
        # A series is scored over the whole validation tail (windows need their context), then split by point.
        val_scores = model.score(take_items(data, val_idx))
        position = {int(i): p for p, i in enumerate(val_idx)}
        scores_of = lambda idx: val_scores[[position[int(i)] for i in idx]]  # noqa: E731
        metrics = detection_metrics(scores_of(report_idx), labels[report_idx], model.threshold_)
        if select_labels is not None:
            selection_metrics = detection_metrics(scores_of(select_idx), select_labels, model.threshold_)

    model_id = model_id or f"{table}-{detector}-{uuid.uuid4().hex[:8]}"
    path = settings.models_dir / model_id
    record = {"model_id": model_id, "detector": detector, "table_name": table, "kind": kind, "path": str(path),
              "feature_columns": json.dumps(features), "key_column": key_column, "label_column": label_column,
              "normal_value": normal_value, "params": json.dumps(model.get_params(), default=str),
              "n_train": int(len(train_idx)), "n_validation": int(len(val_idx)),
              "n_selection": int(len(select_idx)) if select_labels is not None else 0,
              "n_report": int(len(report_idx)) if val_labels is not None else 0,
              "threshold": float(model.threshold_), "threshold_source": model.threshold_source_,
              "score_mode": model.score_mode_, **metrics,
              **{f"selection_{k}": v for k, v in selection_metrics.items() if k in ("auroc", "auprc")},
              "source_hash": source_hash, "run_id": run_id or model_id, "created_at": _now(), "made_by": made_by}
    with recording_model(wh, settings.models_dir, model_id, model.save) as con:
        insert_row(con, "_detectors", record)
    return {"model_id": model_id, "detector": detector, "table": table, "kind": kind, "path": str(path),
            "n_train": int(len(train_idx)), "n_validation": int(len(val_idx)), "n_selection": record["n_selection"],
            "n_report": record["n_report"], "threshold": float(model.threshold_),
            "threshold_source": model.threshold_source_, "score_mode": model.score_mode_, **metrics,
            "selection": {k: record[f"selection_{k}"] for k in ("auroc", "auprc")}}


def delete_detectors(settings: Settings, model_ids: list[str]) -> list[dict]:
    """Retire detectors: their `_detectors` rows, their rows in `anomaly_scores` (so their alerts), their files.

    All of it or nothing: the warehouse changes in one transaction, and the models' directories are moved aside
    first and put back if it fails, so a failed delete leaves the warehouse and the files as they were. Files are
    only ever deleted inside the models directory, whatever path a warehouse row names.
    """
    wh = Warehouse(settings.db_path)
    records = [load_model_record(wh, model_id) for model_id in dict.fromkeys(model_ids)]
    with folders_set_aside([Path(r["path"]) for r in records], settings.models_dir) as owned:
        results = [{"model_id": record["model_id"], "table": record["table_name"],
                    "files_deleted": str(path) if path else None} for record, path in zip(records, owned)]
        with wh.transaction() as con:
            has_scores = Warehouse.exists(con, "anomaly_scores")
            for result in results:
                scores = alerts = 0
                if has_scores:
                    scores, alerts = con.execute(
                        "SELECT count(*), count(*) FILTER (WHERE is_alert) FROM main.anomaly_scores "
                        "WHERE model_id = ?", [result["model_id"]]).fetchall()[0]
                    con.execute("DELETE FROM main.anomaly_scores WHERE model_id = ?", [result["model_id"]])
                con.execute("DELETE FROM main._detectors WHERE model_id = ?", [result["model_id"]])
                result.update(scores_deleted=int(scores or 0), alerts_deleted=int(alerts or 0))
    return results


# ------------------------------------------------------------------ score
def score_table(settings: Settings, *, model_id: str, table: str, run_id: str | None = None) -> dict:
    """Score every item of a table; replace this model's scores for the table in `anomaly_scores`, one transaction."""
    from detectors.base import Detector

    wh = Warehouse(settings.db_path)
    validate_table_name(table)
    record = load_model_record(wh, model_id)
    model = Detector.load(record["path"])
    kind, summary = table_kind(wh, table)
    if kind != record["kind"]:
        raise DetectFlowError(f"table {table} holds {kind} data but model {model_id} was trained on "
                              f"{record['kind']} data ({record['table_name']})")
    frame = read_table(wh, table, kind, summary)
    label_column = record["label_column"] if record["label_column"] in frame.columns else None
    data, features, keys = detector_input(frame, kind, summary, record["key_column"], label_column)
    if kind != "image":
        trained = json.loads(record["feature_columns"])
        missing = [c for c in trained if c not in features]
        extra = [c for c in features if c not in trained]
        if missing or extra:
            parts = ([f"missing {missing}"] if missing else []) + ([f"unexpected {extra}"] if extra else [])
            raise DetectFlowError(f"table {table}'s columns differ from training table {record['table_name']}: "
                                  f"{', '.join(parts)}; score a table with the training columns")
    scores = model.score(data)
    threshold = float(model.threshold_)
    scored_at = _now()
    out = pd.DataFrame({"model_id": model_id, "table_name": table, "item_key": keys.to_numpy(),
                        "score": scores, "threshold": threshold, "is_alert": scores > threshold,
                        "scored_at": scored_at, "run_id": run_id or model_id,
                        "batch_id": pd.array([None] * len(keys), dtype="string")})
    with wh.transaction() as con:
        # a one-shot scoring replaces this model's earlier one-shot scores of the table, never a monitor's batches
        replaced = con.execute("DELETE FROM main.anomaly_scores WHERE model_id = ? AND table_name = ? AND "
                               "batch_id IS NULL", [model_id, table]).fetchall()[0][0]
        Warehouse.write_frame(con, "anomaly_scores", out, mode="append", internal=True)
        record_table(con, "anomaly_scores", kind="tabular", origin="pipeline",
                     detail={"written_by": "detect score"}, run_id=run_id)
    top = out[out["is_alert"]].sort_values("score", ascending=False).head(10)
    return {"model_id": model_id, "table": table, "scored": int(len(out)), "alerts": int(out["is_alert"].sum()),
            "replaced": int(replaced), "threshold": threshold,
            "top_alerts": [{"item_key": k, "score": float(s)} for k, s in zip(top["item_key"], top["score"])]}


# ------------------------------------------------------------------ Prefect tasks and flows
@task(cache_policy=NONE)
def train_task(db_path: str, data_dir: str, options: dict) -> dict:
    """Fit, save and record one detector; bad input raises, so Prefect records the run as Failed."""
    settings = Settings.from_env(db=db_path, data_dir=data_dir)
    with library_progress("detectors", get_run_logger()):
        return train_detector(settings, run_id=str(flow_run.get_id() or uuid.uuid4()), **options)


@task(cache_policy=NONE)
def score_task(db_path: str, data_dir: str, model_id: str, table: str) -> dict:
    """Score one table with one saved detector."""
    settings = Settings.from_env(db=db_path, data_dir=data_dir)
    return score_table(settings, model_id=model_id, table=table, run_id=str(flow_run.get_id() or uuid.uuid4()))


@flow(name="detect-train")
def detect_train_flow(db_path: str, data_dir: str, table: str, detector: str, label_column: str | None = None,
                      normal_value: str | None = None, key_column: str | None = None, epochs: int | None = None,
                      seed: int = 0, params: dict | None = None, max_train_rows: int | None = None,
                      model_id: str | None = None, made_by: str = "cli") -> dict:
    """Train a detector on a warehouse table's normal rows."""
    result = train_task(db_path, data_dir, dict(
        table=table, detector=detector, label_column=label_column, normal_value=normal_value, key_column=key_column,
        epochs=epochs, seed=seed, params=params, max_train_rows=max_train_rows, model_id=model_id, made_by=made_by))
    get_run_logger().info("trained %s on %s: threshold %.4f (%s)", result["model_id"], table, result["threshold"],
                          result["threshold_source"])
    return result


@flow(name="detect-score")
def detect_score_flow(db_path: str, data_dir: str, model_id: str, table: str) -> dict:
    """Score a warehouse table with a trained detector and refresh the alerts view."""
    result = score_task(db_path, data_dir, model_id, table)
    get_run_logger().info("scored %d items of %s: %d alerts", result["scored"], table, result["alerts"])
    return result


def pipeline_stage(settings: Settings, stage_config: dict) -> dict:
    """`synthwatch run`: train a detector on the demo transactions, score them, return the top alerts.

    The stage names its detectors ``pipeline-<table>-<detector>-<id>`` and records them ``made_by = 'pipeline'``.
    With ``replace_previous`` (the default), once the new detector has scored the table the detectors earlier runs
    recorded as the pipeline's on that table are retired (records, scores, files; see `delete_detectors`), so
    scheduled runs leave one copy of each alert in the `alerts` view instead of one per run. Detectors trained with
    `synthwatch detect train` (``made_by = 'cli'``) are never touched, whatever their id.
    """
    cfg = dict(stage_config or {})
    table = cfg.get("table", "creditcard")
    detector = cfg.get("detector", "ganomaly")
    if not Warehouse(settings.db_path).table_exists(table):
        raise TableNotFound(f"detect stage: table {table} does not exist; run the ingest stage first")
    state = detect_train_flow(str(settings.db_path), str(settings.data_dir), table, detector, cfg.get("label_column"),
                              None if cfg.get("normal_value") is None else str(cfg["normal_value"]),
                              cfg.get("key_column"), cfg.get("epochs"), int(cfg.get("seed", 0)),
                              cfg.get("params"), cfg.get("max_train_rows"),
                              model_id=f"pipeline-{table}-{detector}-{uuid.uuid4().hex[:8]}", made_by="pipeline",
                              return_state=True)
    from flows.commands import state_result

    trained = state_result(state)
    scored = state_result(detect_score_flow(str(settings.db_path), str(settings.data_dir), trained["model_id"], table,
                                            return_state=True))
    retired = []
    if cfg.get("replace_previous", True):
        earlier = [m["model_id"] for m in list_detectors(settings)
                   if m["made_by"] == "pipeline" and m["table_name"].lower() == table.lower()
                   and m["model_id"] != trained["model_id"]]
        retired = [d["model_id"] for d in delete_detectors(settings, earlier)] if earlier else []
    top = scored["top_alerts"][: int(cfg.get("top", 10))]
    metrics = ", ".join(f"{k} {trained[k]:.3f}" for k in ("auroc", "auprc", "precision", "recall")
                        if trained.get(k) is not None)
    text = (f"model {trained['model_id']} ({trained['detector']}, held-out validation {metrics or 'unlabelled'})"
            + (f"; replaces {len(retired)} earlier pipeline detector(s)" if retired else "") + "\n"
            + format_alerts({**scored, "top_alerts": top}))
    return {"model_id": trained["model_id"], "scored": scored["scored"], "alerts": scored["alerts"],
            "top_alerts": top, "validation": {k: trained.get(k) for k in ("auroc", "auprc", "precision", "recall")},
            "retired": retired, "text": text}

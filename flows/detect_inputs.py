"""Detector inputs from warehouse tables: rows, windows or images in a stable order, labels, held-out splits and
the metrics computed on them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from detectors.errors import LabelError
from flows.errors import DetectFlowError
from flows.warehouse import Warehouse, qualified, quote_ident, validate_table_name

VALIDATION_SHARE = 0.2


def read_table(wh: Warehouse, table: str, kind: str, summary: dict) -> pd.DataFrame:
    """The table in a stable order (image id, series time, or insertion order)."""
    validate_table_name(table)
    if not wh.table_exists(table):
        wh.read_frame(table)  # raises TableNotFound listing the tables
    order = "rowid"
    if kind == "image":
        order = "id"
    elif kind == "timeseries":
        keys = [summary.get("id_column"), summary.get("time_column")]
        order = ", ".join(quote_ident(k) for k in keys if k) or "rowid"
    with wh.read() as con:
        return con.execute(f"SELECT * FROM {qualified(table)} ORDER BY {order}").df()


def image_meta_columns() -> list[str]:
    return ["id", "label", "height", "width", "channels", "dtype", "origin", "pixels"]


def detector_input(frame: pd.DataFrame, kind: str, summary: dict, key_column: str | None,
                   label_column: str | None) -> tuple[Any, list[str], pd.Series]:
    """(detector input, feature columns, item keys) for a table of the given kind."""
    if kind == "image":
        from flows.readers import frame_to_images

        sizes = frame[["height", "width", "channels"]].drop_duplicates()
        if len(sizes) > 1:
            raise DetectFlowError("the image table mixes image sizes; ingest one size per table")
        images = frame_to_images(frame)
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2)), ["pixels"], frame["id"].astype(str)
    skip = {c for c in (key_column, label_column) if c}
    if kind == "timeseries":
        skip |= {c for c in (summary.get("time_column"), summary.get("id_column")) if c}
        features = [c for c in frame.columns if c not in skip]
        time_column = summary.get("time_column")
        keys = frame[time_column].astype(str) if time_column else pd.Series(np.arange(len(frame)).astype(str))
        if summary.get("id_column"):
            keys = frame[summary["id_column"]].astype(str) + "|" + keys
            if frame[summary["id_column"]].nunique() > 1:
                raise DetectFlowError("the series table holds several series; ingest one series per table")
        return frame[features].reset_index(drop=True), features, keys
    batch_column = summary.get("batch_column")
    if batch_column and batch_column in frame.columns:
        skip.add(batch_column)
    features = [c for c in frame.columns if c not in skip]
    keys = frame[key_column].astype(str) if key_column else (
        batch_keys(frame, batch_column) if batch_column and batch_column in frame.columns
        else pd.Series(np.arange(len(frame)).astype(str)))
    return frame[features].reset_index(drop=True), features, keys.reset_index(drop=True)


def batch_keys(frame: pd.DataFrame, batch_column: str) -> pd.Series:
    """Item keys of an inbox table: `<batch id>:<position in its batch>`, stable however many batches follow
    (the frame must hold whole batches in insertion order, as `read_table` and the monitor read them)."""
    batches = frame[batch_column].astype(str)
    return batches + ":" + batches.groupby(batches, sort=False).cumcount().astype(str)


def label_vector(frame: pd.DataFrame, label_column: str, normal_value: str | None) -> np.ndarray:
    """1 for anomalous rows (label != normal value), 0 for normal ones; errors name the column."""
    if label_column not in frame.columns:
        raise DetectFlowError(f"label column {label_column!r} is not in the table; columns are "
                              f"{', '.join(map(str, frame.columns))}")
    column = frame[label_column]
    if column.isna().any():
        raise DetectFlowError(f"label column {label_column!r} has {int(column.isna().sum())} missing value(s); "
                              "fill or drop them")
    if normal_value is None:
        values = set(pd.unique(column).tolist())
        if not values <= {0, 1, True, False}:
            raise DetectFlowError(f"label column {label_column!r} is not 0/1; pass --normal-value "
                                  f"(values include {sorted(map(str, values))[:5]})")
        labels = column.astype(int).to_numpy()
    elif pd.api.types.is_numeric_dtype(column):
        try:
            labels = (column.astype(float) != float(normal_value)).astype(int).to_numpy()
        except ValueError:
            raise DetectFlowError(f"--normal-value {normal_value!r} is not a number but label column "
                                  f"{label_column!r} is numeric") from None
    else:
        labels = (column.astype(str) != str(normal_value)).astype(int).to_numpy()
    if labels.min() == labels.max():
        which = "normal" if labels[0] == 0 else "anomalous"
        raise LabelError(f"label column {label_column!r} has one class only (every row is {which} for normal "
                         f"value {normal_value if normal_value is not None else 0!r}); metrics and a validated "
                         "threshold need both classes — check --normal-value or drop --label-column")
    return labels


def split_rows(n: int, kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train index, validation index): random rows for tables/images, the last 20% for a series."""
    n_val = max(1, int(round(n * VALIDATION_SHARE)))
    if kind == "timeseries":
        return np.arange(0, n - n_val), np.arange(n - n_val, n)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def split_validation(val_idx: np.ndarray, labels: np.ndarray | None, kind: str,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(selection part, report part) of the validation rows: choices are made on one, quality reported on the other.

    A series keeps time order (the earlier half chooses, the later half reports). Rows and images are split at
    random within each class; an odd anomaly goes to the report part, so a single labelled anomaly still gives an
    honest figure (the choice then falls back to the declared default and the contamination rate).
    """
    if kind == "timeseries":
        half = len(val_idx) // 2
        return val_idx[:half], val_idx[half:]
    rng = np.random.default_rng(seed + 1)
    groups = [val_idx] if labels is None else [val_idx[labels[val_idx] == v] for v in (0, 1)]
    selection, report = [], []
    for group in groups:
        shuffled = rng.permutation(group)
        cut = len(shuffled) // 2
        selection.append(shuffled[:cut])
        report.append(shuffled[cut:])
    return np.sort(np.concatenate(selection)), np.sort(np.concatenate(report))


def detection_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float | None]:
    """AUROC, AUPRC, precision and recall of `scores > threshold`; all None when the labels hold one class."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if labels.min() == labels.max():
        return {"auroc": None, "auprc": None, "precision": None, "recall": None}
    predicted = scores > threshold
    tp = int(np.sum(predicted & (labels == 1)))
    return {"auroc": float(roc_auc_score(labels, scores)), "auprc": float(average_precision_score(labels, scores)),
            "precision": tp / max(int(predicted.sum()), 1), "recall": tp / int(labels.sum())}


def take_items(data: Any, index: np.ndarray) -> Any:
    if isinstance(data, pd.DataFrame):
        return data.iloc[index].reset_index(drop=True)
    return data[index]

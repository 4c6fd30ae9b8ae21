"""Each data kind between the warehouse and the libraries: a stored table as the kind's container and back, and
the holdout split each kind needs (rows for tables, whole entities for series, stratified by label for images).

The catalog says a table's kind; for a series it also names the entity and time columns (recorded at ingest).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from flows.errors import SynthwatchError

IMAGE_COLUMNS = ("id", "label", "height", "width", "channels", "dtype", "origin", "pixels")


class KindError(SynthwatchError):
    """A table whose contents do not fit the kind the catalog records, or a split the data cannot give."""


def table_kind(wh, table: str, schema: str = "main") -> tuple[str, dict]:
    """(kind, catalog detail) of a warehouse table; a table made outside synthwatch (not catalogued) is tabular."""
    from flows.bookkeeping import catalog_entry

    with wh.read() as con:
        entry = catalog_entry(con, table, schema)
    return (entry["kind"], entry.get("detail") or {}) if entry else ("tabular", {})


def series_roles(detail: dict | None, frame: pd.DataFrame) -> tuple[str, str | None]:
    """(time column, entity column or None) of a series table, from its catalog detail."""
    detail = detail or {}
    time, entity = detail.get("time_column"), detail.get("id_column")
    if not time or time not in frame.columns:
        raise KindError(f"the catalog does not name a time column of this series (columns: "
                        f"{', '.join(map(str, frame.columns))}); re-ingest it with --kind timeseries --time-column")
    if entity is not None and entity not in frame.columns:
        raise KindError(f"the series' entity column {entity!r} is no longer in the table; re-ingest it")
    return str(time), (str(entity) if entity else None)


def to_container(kind: str, frame: pd.DataFrame, detail: dict | None = None) -> Any:
    """A stored table as what a generator of its kind learns: the frame, a SequenceData or an ImageData."""
    if kind == "tabular":
        return frame
    if kind == "timeseries":
        from generators.data import SequenceData

        time, entity = series_roles(detail, frame)
        return SequenceData(frame, time=time, entity=entity)
    if kind == "image":
        return images_of(frame)
    raise KindError(f"unknown data kind {kind!r}")


def images_of(frame: pd.DataFrame):
    """An image table (ingest layout) as ImageData: uint8 pixels and text labels (None where unlabelled)."""
    from flows.readers import frame_to_images
    from generators.data import ImageData

    missing = [c for c in ("label", "height", "width", "channels", "dtype", "pixels") if c not in frame.columns]
    if missing:
        raise KindError(f"the image table lacks column(s) {', '.join(missing)}; it was not written by ingest")
    if frame.empty:
        raise KindError("the image table has no images")
    for column in ("height", "width", "channels", "dtype"):
        if frame[column].nunique(dropna=False) != 1:
            raise KindError(f"the images differ in {column} ({', '.join(map(str, frame[column].unique()[:4]))}); "
                            "generators learn images of one size and type: ingest each size into its own table")
    if str(frame["dtype"].iloc[0]) != "uint8":
        raise KindError(f"the images are {frame['dtype'].iloc[0]}; image generators learn uint8 (0..255) images: "
                        "ingest them as 8-bit images")
    pixels = np.ascontiguousarray(frame_to_images(frame))
    labels = np.array([None if pd.isna(v) else str(v) for v in frame["label"]], dtype=object)
    return ImageData(pixels, labels)


def to_frame(kind: str, data: Any, *, start_id: int = 0) -> pd.DataFrame:
    """A generator's sample as a table in its kind's stored layout (images: exactly the ingest layout)."""
    if kind == "tabular":
        return data
    if kind == "timeseries":
        return data.frame.reset_index(drop=True)
    if kind == "image":
        from flows.readers import images_to_frame

        labels = [None if v is None else str(v) for v in (data.labels if data.labels is not None
                                                            else [None] * len(data))]
        frame, _ = images_to_frame(data.pixels, labels, [f"synthetic[{i}]" for i in range(len(data))])
        frame["id"] = np.arange(start_id, start_id + len(frame), dtype=np.int64)
        frame["origin"] = "synthetic"
        return frame
    raise KindError(f"unknown data kind {kind!r}")


def count_of(kind: str, frame: pd.DataFrame, detail: dict | None = None) -> int:
    """How many items (rows, sequences, images) a stored table holds."""
    if kind == "timeseries":
        _, entity = series_roles(detail, frame)
        return int(frame[entity].nunique()) if entity else 1
    return int(len(frame))


def split_holdout(kind: str, frame: pd.DataFrame, share: float, seed: int,
                  detail: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) as two tables of the same layout; nothing is shared between them.

    tabular: a seeded random split of rows. timeseries: whole entities go to one side (a series is never cut in
    two); a single long series keeps its last `share` of steps as the holdout. image: stratified by label, so
    every label keeps its share on both sides.
    """
    if share <= 0:
        return frame.reset_index(drop=True), frame.iloc[:0].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    if kind == "timeseries":
        time, entity = series_roles(detail, frame)
        if entity is None:
            order = frame.sort_values(time, kind="mergesort").index.to_numpy()
            n_hold = int(round(share * len(order)))
            if len(order) - n_hold < 2:
                raise KindError(f"the series has {len(order)} steps: too few to keep a {share:.0%} holdout")
            hold_idx = np.sort(order[len(order) - n_hold:])
        else:
            ids = pd.unique(frame[entity])
            n_hold = int(round(share * len(ids)))
            if len(ids) - n_hold < 2 or n_hold < 1:
                raise KindError(f"the table has {len(ids)} series: too few to keep a {share:.0%} holdout of whole "
                                "series; use --holdout 0 or more series")
            held = set(ids[rng.permutation(len(ids))[:n_hold]].tolist())
            hold_idx = np.flatnonzero(frame[entity].isin(held).to_numpy())
    elif kind == "image":
        labels = frame["label"].astype(object).where(frame["label"].notna(), None).to_numpy()
        keys = np.array(["\0none" if v is None else str(v) for v in labels], dtype=object)
        picked = []
        for key in sorted(set(keys)):
            members = np.flatnonzero(keys == key)
            n_hold = int(round(share * len(members)))
            picked.append(members[rng.permutation(len(members))[:n_hold]])
        hold_idx = np.sort(np.concatenate(picked)) if picked else np.array([], dtype=np.int64)
        if len(frame) - len(hold_idx) < 2:
            raise KindError(f"the table has {len(frame)} images: too few to keep a {share:.0%} holdout")
    else:
        perm = rng.permutation(len(frame))
        n_hold = int(round(share * len(frame)))
        if len(frame) - n_hold < 2:
            raise KindError(f"the table has {len(frame)} rows: too few to keep a {share:.0%} holdout; "
                            "use --holdout 0 or more rows")
        hold_idx = np.sort(perm[:n_hold])
    mask = np.zeros(len(frame), dtype=bool)
    mask[hold_idx] = True
    return frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)

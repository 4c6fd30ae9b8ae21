"""Readers that turn a source file or folder into rows: DuckDB's own readers for tables, numpy for images."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from flows.errors import IngestError

CSV_SUFFIXES = {".csv", ".tsv", ".txt", ".data", ".test"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
JSON_SUFFIXES = {".jsonl", ".ndjson", ".json"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
KINDS = ("tabular", "timeseries", "image")

# What one ingest may allocate, checked against what a file declares before anything is decoded. Fashion-MNIST's
# training set is 47M values; the defaults leave room for ~200 MB of uint8 pixels and 8192x8192 images.
MAX_IMAGE_VALUES = ("SYNTHWATCH_MAX_IMAGE_VALUES", 200_000_000)   # pixel values (n * h * w * c) per ingest
MAX_IMAGE_PIXELS = ("SYNTHWATCH_MAX_IMAGE_PIXELS", 8192 * 8192)   # pixels (h * w) per image file
MAX_CSV_LINE_BYTES = ("SYNTHWATCH_MAX_CSV_LINE_BYTES", 64 << 20)  # DuckDB's max_line_size (default 2,000,000)


def limit(setting: tuple[str, int]) -> int:
    """The value of one of the limits above: its environment variable when set, else its default."""
    name, default = setting
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise IngestError(f"{name}={raw!r} is not a positive integer; unset it or give a number")
    return value


def _check_image_values(origin: Path | str, shape: tuple[int, ...], what: str = "images") -> None:
    """Refuse a declared shape whose values exceed the per-ingest image limit, before it is allocated."""
    cap = limit(MAX_IMAGE_VALUES)
    values = int(np.prod(shape, dtype=object))
    if values > cap:
        raise IngestError(f"{origin} declares {what} of shape {tuple(shape)} ({values:,} values), over the limit of "
                          f"{cap:,} values per ingest; ingest a smaller part or raise {MAX_IMAGE_VALUES[0]}")


def memory_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory connection for sniffing and reading files outside the warehouse."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    return con


def _sql_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def check_source(source: str | Path) -> Path:
    """The source path if it exists and is not empty; IngestError otherwise."""
    path = Path(source).expanduser()
    if not path.exists():
        raise IngestError(f"source {path} does not exist")
    if path.is_file() and path.stat().st_size == 0:
        raise IngestError(f"source {path} is empty (0 bytes)")
    return path


def source_sha256(path: Path) -> str:
    """sha256 of a file's bytes, or of a folder's relative paths and bytes in sorted order."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _strip_compression(path: Path) -> str:
    name = path.name.lower()
    for ext in (".gz", ".zst"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    return Path(name).suffix


def open_text(path: Path):
    """A text handle on a file, gzip-decompressed when its name ends in .gz (undecodable bytes replaced)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    return opener(path, "rt", errors="replace")


def _looks_delimited(path: Path, lines: int = 50) -> bool:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", errors="replace") as fh:
        head = [line for _, line in zip(range(lines), fh)]
    return any(sum(d in line for line in head) >= max(1, len(head) // 2) for d in (",", ";", "\t", "|"))


@dataclass
class TabularSource:
    """A SELECT over a file that DuckDB reads directly, plus what was detected about it."""

    select_sql: str
    params: list = field(default_factory=list)
    format: str = "csv"
    dialect: dict = field(default_factory=dict)


def tabular_select(path: Path, *, delimiter: str | None = None, header: bool | None = None,
                   columns: list[str] | None = None, fmt: str | None = None, skip: int = 0) -> TabularSource:
    """Build a strict DuckDB read for a CSV (any delimiter, header or not), Parquet or JSON-lines file."""
    if path.is_dir():
        raise IngestError(f"source {path} is a folder; tabular sources are CSV, Parquet or JSON-lines files")
    suffix = _strip_compression(path)
    fmt = fmt or ("parquet" if suffix in PARQUET_SUFFIXES else "json" if suffix in JSON_SUFFIXES else "csv")
    if fmt == "parquet":
        return TabularSource(f"SELECT * FROM read_parquet({_sql_literal(path)})", format="parquet")
    if fmt == "json":
        return TabularSource(
            f"SELECT * FROM read_json({_sql_literal(path)}, format='newline_delimited')", format="json"
        )
    # Sniff the dialect, then read with auto-detection off: DuckDB's lenient auto mode can silently drop
    # malformed rows, while an explicit dialect and column list fails on the first inconsistent line.
    # Leading lines are skipped only when asked: the sniffer would otherwise skip malformed lines silently.
    max_line = limit(MAX_CSV_LINE_BYTES)
    options = [f"skip={int(skip)}", f"max_line_size={max_line}"]
    if delimiter is not None:
        options.append(f"delim={_sql_literal(delimiter)}")
    if header is not None:
        options.append(f"header={'true' if header else 'false'}")
    sniff_sql = (f"SELECT Delimiter, Quote, Escape, HasHeader, Columns, SkipRows "
                 f"FROM sniff_csv({_sql_literal(path)}, {', '.join(options)})")
    try:
        delim, quote, escape, has_header, cols, skip = memory_connection().execute(sniff_sql).fetchone()
    except duckdb.Error as exc:
        _raise_if_line_too_long(path, exc)
        raise IngestError(f"malformed CSV {path}: {str(exc).splitlines()[0]} (no consistent delimiter)") from None
    if not cols:
        raise IngestError(f"source {path} has no columns")
    if len(cols) == 1 and delimiter is None and _looks_delimited(path):
        raise IngestError(f"malformed CSV {path}: no delimiter splits every row into the same number of fields; "
                          "fix the file, or pass --delimiter (and --skip for a preamble)")
    names = [c["name"] for c in cols]
    if columns:
        if len(columns) != len(names):
            raise IngestError(f"--columns names {len(columns)} columns but {path} has {len(names)}")
        names = list(columns)
    col_spec = "{" + ", ".join(f"{_sql_literal(n)}: {_sql_literal(c['type'])}" for n, c in zip(names, cols)) + "}"

    def opt(value: str) -> str:
        return "''" if value == "(empty)" else _sql_literal(value)

    read = (
        f"read_csv({_sql_literal(path)}, auto_detect=false, delim={opt(delim)}, quote={opt(quote)}, "
        f"escape={opt(escape)}, header={'true' if has_header else 'false'}, skip={int(skip)}, "
        f"columns={col_spec}, strict_mode=true, null_padding=false, max_line_size={max_line})"
    )
    dialect = {"delimiter": delim, "header": bool(has_header), "quote": quote, "skip": int(skip)}
    return TabularSource(f"SELECT * FROM {read}", format="csv", dialect=dialect)


def _raise_if_line_too_long(path: Path, exc: BaseException) -> None:
    """Name DuckDB's line-size limit when that is why a CSV could not be read (its message buries it)."""
    text = str(exc)
    if "Maximum line size" not in text:
        return
    actual = re.search(r"Actual Size:\s*(\d+)", text)
    size = f" ({int(actual.group(1)):,} bytes)" if actual else ""
    raise IngestError(f"a line of {path} is longer{size} than the CSV line limit of {limit(MAX_CSV_LINE_BYTES):,} "
                      f"bytes; raise {MAX_CSV_LINE_BYTES[0]} or shorten that field") from None


def read_error(path: Path, exc: BaseException) -> IngestError:
    """The one-line IngestError for a DuckDB error raised while reading `path` with a TabularSource."""
    try:
        _raise_if_line_too_long(path, exc)
    except IngestError as err:
        return err
    return IngestError(f"cannot read {path}: {' '.join(str(exc).split())[:300]}")


def read_tabular_frame(path: Path, **options) -> pd.DataFrame:
    """Read a tabular file into a DataFrame with the same strict reader the warehouse uses."""
    src = tabular_select(path, **options)
    try:
        return memory_connection().execute(src.select_sql, src.params).df()
    except duckdb.Error as exc:
        raise read_error(path, exc) from None


# ---------------------------------------------------------------- time series
def prepare_timeseries(df: pd.DataFrame, *, time_column: str | None = None, id_column: str | None = None,
                       layout: str = "long") -> tuple[pd.DataFrame, dict]:
    """Parse timestamps, melt wide layouts, sort by (series, time); returns the frame and its summary."""
    if df.empty:
        raise IngestError("time series source has no rows")
    df = df.copy()
    if time_column is None:
        candidates = [c for c in df.columns if pd.api.types.is_datetime64_any_dtype(df[c])]
        candidates += [c for c in df.columns if str(c).lower() in ("timestamp", "time", "date", "datetime", "ts", "t")
                       and c not in candidates]
        time_column = candidates[0] if candidates else None
    if time_column is None:
        time_column = "t"
        if "t" in df.columns:
            raise IngestError("no timestamp column found and a column named 't' exists; pass --time-column")
        df.insert(0, "t", np.arange(len(df), dtype=np.int64))
    elif time_column not in df.columns:
        raise IngestError(f"time column {time_column!r} not found; columns are {', '.join(map(str, df.columns))}")
    if id_column is not None and id_column not in df.columns:
        raise IngestError(f"series id column {id_column!r} not found; columns are {', '.join(map(str, df.columns))}")
    ts = df[time_column]
    if not (pd.api.types.is_integer_dtype(ts) or pd.api.types.is_datetime64_any_dtype(ts)):
        parsed = pd.to_datetime(ts, errors="coerce", utc=False)
        bad = int(parsed.isna().sum() - ts.isna().sum())
        if bad:
            example = ts[parsed.isna() & ts.notna()].iloc[0]
            raise IngestError(f"{bad} value(s) of time column {time_column!r} are not timestamps (e.g. {example!r})")
        df[time_column] = parsed
    if df[time_column].isna().any():
        raise IngestError(f"time column {time_column!r} has {int(df[time_column].isna().sum())} missing value(s)")
    if layout == "wide":
        value_cols = [c for c in df.columns if c != time_column]
        df = df.melt(id_vars=[time_column], value_vars=value_cols, var_name="series_id", value_name="value")
        id_column = "series_id"
    elif layout != "long":
        raise IngestError(f"unknown time-series layout {layout!r}: use long or wide")
    keys = [id_column, time_column] if id_column else [time_column]
    df = df.sort_values(keys, kind="mergesort").reset_index(drop=True)
    value_cols = [c for c in df.columns if c not in keys]
    if not value_cols:
        raise IngestError("time series has no value columns besides the timestamp and series id")
    groups = df.groupby(id_column, sort=False)[time_column] if id_column else [(None, df[time_column])]
    lengths, freqs, gaps, dups = [], [], 0, 0
    for _, times in groups:
        lengths.append(len(times))
        diffs = times.diff().dropna()
        if len(diffs):
            step = diffs.mode().iloc[0]
            freqs.append(str(step))
            gaps += int((diffs > step).sum())
            dups += int((diffs == diffs.iloc[0] * 0).sum())
    summary = {
        "time_column": time_column, "id_column": id_column, "value_columns": [str(c) for c in value_cols],
        "series": len(lengths), "min_length": int(min(lengths)), "max_length": int(max(lengths)),
        "frequency": max(set(freqs), key=freqs.count) if freqs else None, "gaps": gaps,
        "duplicate_timestamps": dups,
        "start": str(df[time_column].min()), "end": str(df[time_column].max()),
    }
    return df, summary


# ---------------------------------------------------------------- images
def _check_declared_array(origin: Path | str, shape: tuple[int, ...], dtype: np.dtype, available: int) -> None:
    """Refuse an array header whose data the file cannot hold or whose size exceeds the image limit."""
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes > available:
        raise IngestError(f"{origin} declares a {dtype} array of shape {tuple(shape)} ({nbytes:,} bytes) but holds "
                          f"{available:,} bytes of data; the file is truncated or its header is wrong")
    _check_image_values(origin, shape, "an array")


def _npy_header(fh, origin: Path | str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header, read without touching the data."""
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise IngestError(f"{origin} is a .npy file of format version {version}; save it with numpy's default "
                              "format (1.0 or 2.0)")
    except (ValueError, EOFError) as exc:
        raise IngestError(f"cannot read {origin}: {exc}") from None
    return tuple(int(d) for d in shape), np.dtype(dtype)


def _check_npy(path: Path) -> None:
    with open(path, "rb") as fh:
        shape, dtype = _npy_header(fh, path)
        available = path.stat().st_size - fh.tell()
    _check_declared_array(path, shape, dtype, available)


def _check_npz_member(path: Path, key: str) -> None:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        info = zf.getinfo(key + ".npy" if key + ".npy" in names else key)
        with zf.open(info) as fh:
            shape, dtype = _npy_header(fh, f"{path}[{key}]")
            available = info.file_size - fh.tell()
    _check_declared_array(f"{path}[{key}]", shape, dtype, available)


def _read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte IDX array; its declared dims are checked against the file and the limit before reading."""
    compressed = path.name.endswith(".gz")
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(4)
            if len(head) < 4 or head[:3] != b"\0\0\x08":
                raise IngestError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
            ndim = head[3]
            raw_dims = fh.read(4 * ndim)
            if len(raw_dims) != 4 * ndim:
                raise IngestError(f"IDX file {path} is truncated: its header declares {ndim} dimensions")
            dims = struct.unpack(">" + "I" * ndim, raw_dims)
            expected = int(np.prod(dims, dtype=object))
            if not compressed and path.stat().st_size - 4 - 4 * ndim < expected:
                raise IngestError(f"IDX file {path} is truncated: expected {expected:,} values, found "
                                  f"{path.stat().st_size - 4 - 4 * ndim:,}")
            _check_image_values(path, dims, "an array")
            # Read in blocks up to one byte past the declared size: a gzip member's length is known only by reading.
            data = bytearray()
            while len(data) <= expected:
                block = fh.read(min(1 << 22, expected + 1 - len(data)))
                if not block:
                    break
                data += block
    except (OSError, EOFError, zlib.error) as exc:
        raise IngestError(f"cannot read IDX file {path}: {exc}") from None
    if len(data) < expected:
        raise IngestError(f"IDX file {path} is truncated: expected {expected:,} values, found {len(data):,}")
    if len(data) > expected:
        raise IngestError(f"IDX file {path} holds more bytes than its header's dimensions {dims} declare")
    return np.frombuffer(bytes(data), dtype=np.uint8).reshape(dims)


def _idx_labels_for(path: Path) -> Path | None:
    name = path.name
    for a, b in (("images-idx3", "labels-idx1"), ("images.idx3", "labels.idx1")):
        if a in name:
            candidate = path.with_name(name.replace(a, b))
            if candidate.exists():
                return candidate
    return None


def _to_nhwc(images: np.ndarray, origin: str) -> np.ndarray:
    if images.ndim == 2:
        images = images[None]
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise IngestError(f"{origin}: expected images shaped (n, h, w) or (n, h, w, c) with c in 1/3/4, "
                          f"got {images.shape}")
    return images


_GRAY_MODES = ("L", "1", "P", "I;16")


def _read_image_folder(path: Path) -> tuple[np.ndarray, list[str | None], list[str]]:
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise IngestError(f"folder {path} has no PNG or JPEG images")
    per_image = limit(MAX_IMAGE_PIXELS)
    # PIL's own decompression-bomb guard at our limit, so one setting governs both (PIL raises at twice it).
    Image.MAX_IMAGE_PIXELS = per_image
    too_big = f"over the limit of {per_image:,} pixels per image; resize it or raise {MAX_IMAGE_PIXELS[0]}"
    images, shape, labels, names = None, None, [], []
    for i, f in enumerate(files):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img = Image.open(f)
        except Image.DecompressionBombError:
            raise IngestError(f"image {f} declares more than {2 * per_image:,} pixels, {too_big}") from None
        except (UnidentifiedImageError, OSError) as exc:
            raise IngestError(f"cannot read image {f}: {exc}") from None
        with img:
            # Only the header has been read so far: sizes are checked before any pixel is decoded.
            w, h = img.size
            if w * h > per_image:
                raise IngestError(f"image {f} is {w}x{h} ({w * h:,} pixels), {too_big}")
            channels = 1 if img.mode in _GRAY_MODES else 3
            if images is None:
                shape = (h, w, channels)
                _check_image_values(path, (len(files), *shape), f"{len(files)} images")
                images = np.empty((len(files), *shape), dtype=np.uint8)
            elif (h, w) != shape[:2]:
                raise IngestError(f"image {f} is {w}x{h} but the first image is {shape[1]}x{shape[0]}; "
                                  "all images must have one size")
            elif channels != shape[2]:
                raise IngestError(f"image {f} has {channels} channel(s) but the first image has {shape[2]}; "
                                  "all images must be grayscale or all colour")
            try:
                images[i] = np.asarray(img.convert("L" if channels == 1 else "RGB")).reshape(shape)
            except OSError as exc:
                raise IngestError(f"cannot read image {f}: {exc}") from None
        rel = f.relative_to(path)
        labels.append(rel.parts[0] if len(rel.parts) > 1 else None)
        names.append(str(rel))
    return _to_nhwc(images, str(path)), labels, names


def read_images(path: Path) -> tuple[np.ndarray, list[str | None], list[str]]:
    """Images (n, h, w, c), their labels (None where unknown) and their origin names.

    What a source declares (array headers, IDX dimensions, image sizes) is checked against the limits above
    before its pixels are read, so a small file cannot make the reader allocate without bound.
    """
    if path.is_dir():
        return _read_image_folder(path)
    suffix = _strip_compression(path)
    if suffix == ".npy":
        _check_npy(path)
        try:
            images = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise IngestError(f"cannot read {path}: {exc}") from None
        labels = None
    elif suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                key = next((k for k in ("images", "x", "X", "arr_0") if k in z.files), None)
                if key is None:
                    raise IngestError(f"{path} has no 'images', 'x' or 'arr_0' array (found {', '.join(z.files)})")
                lab_key = next((k for k in ("labels", "y", "Y") if k in z.files), None)
                for k in (key, lab_key):
                    if k is not None:
                        _check_npz_member(path, k)
                images = z[key]
                labels = [str(v) for v in np.ravel(z[lab_key])] if lab_key else None
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            raise IngestError(f"cannot read {path}: {exc}") from None
    elif "idx" in path.name.lower() or path.name.endswith("-ubyte.gz") or path.name.endswith("-ubyte"):
        images = _read_idx(path)
        label_path = _idx_labels_for(path)
        labels = [str(v) for v in np.ravel(_read_idx(label_path))] if label_path else None
    elif suffix in IMAGE_SUFFIXES:
        raise IngestError(f"{path} is a single image; put images in a folder (sub-folders name their labels)")
    else:
        raise IngestError(f"{path}: unknown image source; use a folder of PNG/JPEG, .npy, .npz or IDX files")
    images = np.asarray(images)
    if images.dtype.kind not in "biuf":
        raise IngestError(f"{path} holds {images.dtype} values; images must be integers in 0..255 or floats")
    images = _to_nhwc(images, str(path))
    labels = [None] * len(images) if labels is None else labels
    if len(labels) != len(images):
        raise IngestError(f"{path}: {len(images)} images but {len(labels)} labels")
    return images, labels, [f"{path.name}[{i}]" for i in range(len(images))]


def images_to_frame(images: np.ndarray, labels: list[str | None], names: list[str]) -> tuple[pd.DataFrame, dict]:
    """One row per image: id, label, height, width, channels, dtype and the raw pixel bytes (row-major HWC)."""
    if len(images) == 0:
        raise IngestError("image source holds no images")
    if np.issubdtype(images.dtype, np.floating):
        if not np.isfinite(images).all():
            raise IngestError("image array has NaN or infinite pixels")
        images = images.astype(np.float32)
    elif images.dtype != np.uint8:
        if images.min() < 0 or images.max() > 255:
            raise IngestError(f"integer images must lie in 0..255, found {images.min()}..{images.max()}")
        images = images.astype(np.uint8)
    n, h, w, c = images.shape
    flat = images.reshape(n, -1)
    frame = pd.DataFrame({
        "id": np.arange(n, dtype=np.int64),
        "label": pd.Series(labels, dtype="string"),
        "height": np.full(n, h, dtype=np.int32),
        "width": np.full(n, w, dtype=np.int32),
        "channels": np.full(n, c, dtype=np.int32),
        "dtype": str(images.dtype),
        "origin": names,
        "pixels": [row.tobytes() for row in flat],
    })
    counts = pd.Series([lab for lab in labels if lab is not None]).value_counts()
    summary = {"images": n, "height": h, "width": w, "channels": c, "dtype": str(images.dtype),
               "labels": {str(k): int(v) for k, v in counts.sort_index().items()}}
    return frame, summary


def frame_to_images(frame: pd.DataFrame) -> np.ndarray:
    """Inverse of images_to_frame: the (n, h, w, c) array stored in an image table."""
    if frame.empty:
        return np.zeros((0, 0, 0, 0), dtype=np.uint8)
    h, w, c = (int(frame[k].iloc[0]) for k in ("height", "width", "channels"))
    dtype = np.dtype(frame["dtype"].iloc[0])
    buf = b"".join(bytes(p) for p in frame["pixels"])
    return np.frombuffer(buf, dtype=dtype).reshape(len(frame), h, w, c)

"""Each reader on small files it must read, and each kind of bad input it must refuse."""

import gzip
import struct
import zipfile
import zlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from flows import readers
from flows.errors import IngestError


def write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.tobytes())


def test_csv_with_semicolons_and_no_header(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("1;a;2.5\n2;b;3.5\n3;c;4.5\n")
    df = readers.read_tabular_frame(p, header=False, columns=["n", "s", "f"])
    assert list(df.columns) == ["n", "s", "f"]
    assert df["n"].tolist() == [1, 2, 3] and df["f"].dtype == float


def test_tab_delimited_with_header(tmp_path):
    p = tmp_path / "x.tsv"
    p.write_text("id\tname\n1\tx\n2\ty\n")
    assert readers.read_tabular_frame(p).to_dict("list") == {"id": [1, 2], "name": ["x", "y"]}


def test_parquet_and_json_lines(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", None]})
    df.to_parquet(tmp_path / "x.parquet")
    df.to_json(tmp_path / "x.jsonl", orient="records", lines=True)
    for name in ("x.parquet", "x.jsonl"):
        got = readers.read_tabular_frame(tmp_path / name)
        assert got["a"].tolist() == [1, 2] and got["b"].isna().tolist() == [False, True]


@pytest.mark.parametrize("content", ["a,b,c\n1,2,3\n4,5\n6,7,8,9\n", "a,b\n1,2\n3,4,5,6\n\"x,\n"])
def test_malformed_csv_is_refused_not_silently_trimmed(tmp_path, content):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(IngestError, match="malformed CSV|cannot read|CSV Error"):
        readers.read_tabular_frame(p)


def test_missing_and_empty_sources(tmp_path):
    with pytest.raises(IngestError, match="does not exist"):
        readers.check_source(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(IngestError, match="empty"):
        readers.check_source(tmp_path / "empty.csv")


def test_timeseries_long_layout_sorted_with_gaps():
    df = pd.DataFrame({"sid": ["b", "a", "a", "a", "b"],
                       "ts": ["2024-01-01 00:02", "2024-01-01 00:01", "2024-01-01 00:00", "2024-01-01 00:04",
                              "2024-01-01 00:01"],
                       "v": [5.0, 2.0, 1.0, 4.0, 3.0]})
    out, summary = readers.prepare_timeseries(df, time_column="ts", id_column="sid")
    assert out["v"].tolist() == [1.0, 2.0, 4.0, 3.0, 5.0]
    assert pd.api.types.is_datetime64_any_dtype(out["ts"])
    assert summary["series"] == 2 and summary["gaps"] == 1 and summary["frequency"] == "0 days 00:01:00"
    assert df["v"].tolist() == [5.0, 2.0, 1.0, 4.0, 3.0]  # input not mutated


def test_timeseries_wide_layout_and_index_time():
    wide = pd.DataFrame({"s1": [1.0, 2.0, 3.0], "s2": [4.0, 5.0, 6.0]})
    out, summary = readers.prepare_timeseries(wide, layout="wide")
    assert summary["series"] == 2 and summary["time_column"] == "t" and len(out) == 6
    assert set(out.columns) == {"t", "series_id", "value"}


def test_timeseries_bad_timestamps_are_named():
    df = pd.DataFrame({"time": ["2024-01-01", "not a date"], "v": [1, 2]})
    with pytest.raises(IngestError, match="not timestamps"):
        readers.prepare_timeseries(df)


def test_image_folder_with_labels_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(2):
            arr = rng.integers(0, 255, size=(5, 4), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / label / f"{i}.png")
            arrays[f"{label}/{i}.png"] = arr
    images, labels, names = readers.read_images(tmp_path)
    frame, summary = readers.images_to_frame(images, labels, names)
    assert summary["labels"] == {"cat": 2, "dog": 2} and (summary["height"], summary["width"]) == (5, 4)
    back = readers.frame_to_images(frame)
    for i, name in enumerate(frame["origin"]):
        np.testing.assert_array_equal(back[i, :, :, 0], arrays[name])


def test_image_folder_with_mixed_sizes_or_no_images(tmp_path):
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((6, 5), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(IngestError, match="all images must have one size"):
        readers.read_images(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(IngestError, match="no PNG or JPEG"):
        readers.read_images(empty)


def test_npy_npz_and_idx(tmp_path):
    imgs = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4)
    np.save(tmp_path / "x.npy", imgs)
    np.savez(tmp_path / "x.npz", images=imgs, labels=np.array([0, 1, 1]))
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", [7, 8, 9])
    for name, expected in (("x.npy", [None] * 3), ("x.npz", ["0", "1", "1"]),
                           ("train-images-idx3-ubyte.gz", ["7", "8", "9"])):
        images, labels, _ = readers.read_images(tmp_path / name)
        assert images.shape == (3, 4, 4, 1) and labels == expected
        np.testing.assert_array_equal(images[..., 0], imgs)


def test_truncated_idx_is_refused(tmp_path):
    p = tmp_path / "bad-images-idx3-ubyte.gz"
    with gzip.open(p, "wb") as fh:
        fh.write(bytes([0, 0, 8, 3]) + struct.pack(">III", 10, 28, 28) + b"\x00" * 100)
    with pytest.raises(IngestError, match="truncated"):
        readers.read_images(p)


# ---------------------------------------------------------------- what a source may make the reader allocate
def png_declaring(path, width, height):
    """A tiny PNG whose header declares width x height 8-bit gray pixels (its data is empty)."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b""))
                     + chunk(b"IEND", b""))


def npy_header_only(path, shape, descr="|u1"):
    """A .npy file of about 1 KB whose header declares `shape`."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": descr, "fortran_order": False, "shape": shape})
        fh.write(b"\x00" * 900)


def test_npy_declaring_a_huge_shape_is_refused_before_allocating(tmp_path):
    npy_header_only(tmp_path / "huge.npy", (10**6, 1000, 1000))
    assert (tmp_path / "huge.npy").stat().st_size < 1100
    with pytest.raises(IngestError, match=r"huge.npy declares a uint8 array of shape \(1000000, 1000, 1000\).*"
                                          r"truncated or its header is wrong"):
        readers.read_images(tmp_path / "huge.npy")


def test_npz_member_declaring_a_huge_shape_is_refused(tmp_path):
    npy_header_only(tmp_path / "images.npy", (10**6, 1000, 1000))
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as zf:
        zf.write(tmp_path / "images.npy", "images.npy")
    with pytest.raises(IngestError, match=r"huge.npz\[images\] declares .* truncated"):
        readers.read_images(tmp_path / "huge.npz")


@pytest.mark.parametrize("name", ["x.npy", "x.npz", "train-images-idx3-ubyte.gz"])
def test_arrays_over_the_image_value_limit_are_refused(tmp_path, monkeypatch, name):
    imgs = np.zeros((10, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "x.npy", imgs)
    np.savez(tmp_path / "x.npz", images=imgs)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs)
    monkeypatch.setenv("SYNTHWATCH_MAX_IMAGE_VALUES", "7000")
    with pytest.raises(IngestError, match=r"\(7,840 values\), over the limit of 7,000 values per ingest; .*"
                                          r"raise SYNTHWATCH_MAX_IMAGE_VALUES"):
        readers.read_images(tmp_path / name)
    monkeypatch.setenv("SYNTHWATCH_MAX_IMAGE_VALUES", "7840")
    assert readers.read_images(tmp_path / name)[0].shape == (10, 28, 28, 1)


def test_png_declaring_a_decompression_bomb_is_one_line(tmp_path):
    png_declaring(tmp_path / "bomb.png", 20000, 20000)
    assert (tmp_path / "bomb.png").stat().st_size < 100
    with pytest.raises(IngestError, match=r"bomb.png declares more than .* pixels, over the limit of 67,108,864 "
                                          r"pixels per image"):
        readers.read_images(tmp_path)


def test_png_over_the_per_image_limit_is_refused_before_decoding(tmp_path):
    png_declaring(tmp_path / "big.png", 9000, 9000)
    with pytest.raises(IngestError, match=r"big.png is 9000x9000 \(81,000,000 pixels\), over the limit of "
                                          r"67,108,864 pixels per image; .*SYNTHWATCH_MAX_IMAGE_PIXELS"):
        readers.read_images(tmp_path)


def test_image_folder_over_the_total_limit_is_refused(tmp_path, monkeypatch):
    for i in range(3):
        Image.fromarray(np.full((10, 10, 3), i, np.uint8)).save(tmp_path / f"{i}.png")
    monkeypatch.setenv("SYNTHWATCH_MAX_IMAGE_VALUES", "899")
    with pytest.raises(IngestError, match=r"declares 3 images of shape \(3, 10, 10, 3\) \(900 values\), over the "
                                          r"limit of 899"):
        readers.read_images(tmp_path)
    monkeypatch.setenv("SYNTHWATCH_MAX_IMAGE_VALUES", "900")
    images, _, _ = readers.read_images(tmp_path)
    assert images.shape == (3, 10, 10, 3) and images[2].max() == 2


def test_a_bad_limit_setting_is_one_line(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 3), np.uint8))
    monkeypatch.setenv("SYNTHWATCH_MAX_IMAGE_VALUES", "lots")
    with pytest.raises(IngestError, match="SYNTHWATCH_MAX_IMAGE_VALUES='lots' is not a positive integer"):
        readers.read_images(tmp_path / "x.npy")


def test_a_cell_longer_than_duckdbs_default_line_size_is_read(tmp_path):
    p = tmp_path / "long.csv"
    p.write_text("id,text\n1,short\n2," + "y" * 3_000_000 + "\n3,z\n")
    df = readers.read_tabular_frame(p)
    assert df["id"].tolist() == [1, 2, 3] and len(df["text"][1]) == 3_000_000


def test_a_line_over_the_line_limit_names_the_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHWATCH_MAX_CSV_LINE_BYTES", "1000")
    p = tmp_path / "long.csv"
    p.write_text("id,text\n1,short\n2," + "y" * 5000 + "\n3,z\n")
    with pytest.raises(IngestError, match=r"a line of .*long.csv is longer \(5,00\d bytes\) than the CSV line limit "
                                          r"of 1,000 bytes; raise SYNTHWATCH_MAX_CSV_LINE_BYTES"):
        readers.read_tabular_frame(p)


def test_a_long_line_past_the_sniffed_sample_names_the_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHWATCH_MAX_CSV_LINE_BYTES", "1000")
    p = tmp_path / "late.csv"
    p.write_text("id,text\n" + "".join(f"{i},x\n" for i in range(30_000)) + "30000," + "y" * 5000 + "\n")
    with pytest.raises(IngestError, match=r"a line of .*late.csv is longer .* than the CSV line limit of 1,000"):
        readers.read_tabular_frame(p)

"""`synthwatch export`: images as PNGs per label, tables as CSV/Parquet; never over existing files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from PIL import Image


def _ingest_images(cli, tmp_path, channels=1):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (9, 5, 4, channels)).astype(np.uint8)
    labels = np.array(["cat", "dog", "../evil"] * 3)
    np.savez(tmp_path / "imgs.npz", images=images, labels=labels)
    code, _, err = cli(["ingest", tmp_path / "imgs.npz", "--kind", "image", "--table", "pics"])
    assert code == 0, err
    return images, labels


def test_png_export_writes_one_folder_per_label_with_the_exact_pixels(cli, tmp_path):
    images, labels = _ingest_images(cli, tmp_path, channels=3)
    out = tmp_path / "out"
    code, stdout, err = cli(["export", "--table", "pics", "--format", "png", "--dir", out, "--json"])
    assert code == 0, err
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["images"] == 9 and sum(result["folders"].values()) == 9
    folders = sorted(p.name for p in out.iterdir())
    assert "cat" in folders and "dog" in folders and len(folders) == 3
    assert all(".." not in f and "/" not in f for f in folders)  # a hostile label stays inside --dir
    for i in range(9):
        label_dir = {"cat": "cat", "dog": "dog"}.get(labels[i]) or next(f for f in folders if f.startswith("evil"))
        png = np.asarray(Image.open(out / label_dir / f"{i}.png"))
        assert np.array_equal(png, images[i])
    assert not list(tmp_path.glob(".out.export-*"))  # no staging left behind


def test_export_never_writes_over_files_and_refuses_wrong_formats(cli, tmp_path):
    _ingest_images(cli, tmp_path)
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    code, _, err = cli(["export", "--table", "pics", "--format", "png", "--dir", target])
    assert code == 2 and "already exists" in err and len(err.strip().splitlines()) == 1
    assert (target / "keep.txt").read_text() == "mine"
    code, _, err = cli(["export", "--table", "pics", "--format", "csv", "--out", tmp_path / "x.csv"])
    assert code == 2 and "png" in err
    assert not (tmp_path / "x.csv").exists()


def test_table_export_to_csv_and_parquet(cli, tmp_path):
    src = tmp_path / "t.csv"
    src.write_text("a,b\n1,x\n2,y\n3,z\n")
    assert cli(["ingest", src, "--kind", "tabular", "--table", "t"])[0] == 0
    code, _, err = cli(["export", "--table", "t", "--format", "csv", "--out", tmp_path / "t_out.csv"])
    assert code == 0, err
    assert pd.read_csv(tmp_path / "t_out.csv").to_dict("list") == {"a": [1, 2, 3], "b": ["x", "y", "z"]}
    code, _, err = cli(["export", "--table", "t", "--format", "parquet", "--out", tmp_path / "t.parquet"])
    assert code == 0, err
    assert pd.read_parquet(tmp_path / "t.parquet")["a"].tolist() == [1, 2, 3]
    code, _, err = cli(["export", "--table", "t", "--format", "png", "--dir", tmp_path / "p"])
    assert code == 2 and "tabular" in err

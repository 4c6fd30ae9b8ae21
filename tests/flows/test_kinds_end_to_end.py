"""Series and images through the CLI: ingest, train with the kind's default generator, generate in the stored
layout, gate with the kind's checks, export."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from PIL import Image

from generators.registry import DEFAULT_GENERATORS

# the gates' fidelity and privacy bounds off: these tests check the mechanics on tiny data, not quality
REPORT_ONLY = {"seed": 0, "sequence_thresholds": {
    "step_marginal_accuracy": None, "change_accuracy": None, "sequence_stat_accuracy": None,
    "context_accuracy": None, "discriminator_auc": None, "forecast_error_ratio": None, "copied_sequence_rate": 1.0,
    "dcr_share": None, "mia_auroc": None},
    "image_thresholds": {"frechet_ratio": None, "coverage": None, "discriminator_auc": None, "label_fidelity": None,
                         "memorisation_pixels": None, "memorisation_features": None, "exact_copy_rate": 1.0}}


@pytest.fixture
def report_only_kinds(tmp_path, monkeypatch):
    path = tmp_path / "kinds.yaml"
    path.write_text(yaml.safe_dump({"quality": REPORT_ONLY}))
    monkeypatch.setenv("SYNTHWATCH_CONFIG", str(path))
    return path


def run_json(cli, *args):
    code, out, err = cli([*args, "--json"])
    return code, (json.loads(out.strip().splitlines()[-1]) if out.strip() else None), err


def test_a_panel_of_series_end_to_end(cli, warehouse, tmp_path, report_only_kinds):
    rng = np.random.default_rng(0)
    rows = []
    for e in range(30):
        region = ["north", "south"][e % 2]
        level = 10.0 if region == "north" else 20.0
        for t in range(int(rng.integers(6, 12))):
            level += rng.normal(0.3, 0.2)
            rows.append({"store": f"s{e:02d}", "day": f"2024-01-{t + 1:02d}", "region": region,
                         "sales": round(level, 2)})
    pd.DataFrame(rows).to_csv(tmp_path / "panel.csv", index=False)
    code, _, err = cli(["ingest", tmp_path / "panel.csv", "--kind", "timeseries", "--table", "panel",
                        "--time-column", "day", "--id-column", "store"])
    assert code == 0, err
    code, trained, err = run_json(cli, "train", "--table", "panel", "--epochs", "2")
    assert code == 0, err
    assert trained["generator"] == "sequence_ar" and trained["kind"] == "timeseries"
    with warehouse.read() as con:  # the holdout holds whole series, none of them in training
        train_ids = {r[0] for r in con.execute(f"SELECT DISTINCT store FROM {trained['train_table']}").fetchall()}
        hold_ids = {r[0] for r in con.execute(f"SELECT DISTINCT store FROM {trained['holdout_table']}").fetchall()}
    assert len(hold_ids) == 6 and not train_ids & hold_ids
    code, _, err = cli(["generate", "--model", trained["model_id"], "--rows", "5", "--table", "x"])
    assert code == 2 and "--sequences" in err
    code, made, err = run_json(cli, "generate", "--model", trained["model_id"], "--sequences", "12", "--table",
                               "panel_synth", "--where", "region=south", "--seed", "3")
    assert code == 0, err
    assert made["kind"] == "timeseries" and made["items"] == 12
    synth = warehouse.read_frame("panel_synth")
    assert list(synth.columns) == ["store", "day", "region", "sales"]
    assert synth["store"].nunique() == 12 and not set(synth["store"]) & (train_ids | hold_ids)
    assert (synth["region"] == "south").all()
    with warehouse.read() as con:
        from flows.bookkeeping import catalog_entry

        entry = catalog_entry(con, "panel_synth")
        report = con.execute("SELECT passed, checks FROM main._quality_reports").fetchall()
    assert entry["kind"] == "timeseries" and entry["detail"]["id_column"] == "store"
    checks = {c["name"] for c in json.loads(report[0][1])}
    assert {"dcr_share", "discriminator_auc", "step_marginal_accuracy"} <= checks


def test_images_end_to_end_with_export(cli, warehouse, tmp_path, report_only_kinds):
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = np.isin(digits.target, [0, 1, 3])
    images = (digits.images[keep] * 16).clip(0, 255).astype(np.uint8)[..., None]
    np.savez(tmp_path / "digits.npz", images=images, labels=digits.target[keep].astype(str))
    assert cli(["ingest", tmp_path / "digits.npz", "--kind", "image", "--table", "digits"])[0] == 0
    code, trained, err = run_json(cli, "train", "--table", "digits")
    assert code == 0, err
    assert trained["generator"] == DEFAULT_GENERATORS["image"] and trained["kind"] == "image"
    with warehouse.read() as con:  # stratified: every label keeps its share in the holdout
        held = dict(con.execute(f"SELECT label, count(*) FROM {trained['holdout_table']} GROUP BY 1").fetchall())
        whole = dict(con.execute("SELECT label, count(*) FROM digits GROUP BY 1").fetchall())
    assert held == {k: round(0.2 * v) for k, v in whole.items()}
    code, _, err = cli(["generate", "--model", trained["model_id"], "--rows", "5", "--table", "y", "--where",
                        "label=7"])
    assert code == 2 and "label" in err
    code, made, err = run_json(cli, "generate", "--model", trained["model_id"], "--rows", "40", "--table",
                               "digits_synth", "--where", "label=3")
    assert code == 0, err
    synth = warehouse.read_frame("digits_synth")
    assert list(synth.columns) == ["id", "label", "height", "width", "channels", "dtype", "origin", "pixels"]
    assert len(synth) == 40 and (synth["label"] == "3").all() and (synth["height"] == 8).all()
    code, _, err = cli(["export", "--table", "digits_synth", "--format", "png", "--dir", tmp_path / "png"])
    assert code == 0, err
    files = sorted((tmp_path / "png" / "3").iterdir())
    assert len(files) == 40
    first = np.asarray(Image.open(files[0]))
    assert first.shape == (8, 8) and first.dtype == np.uint8
    code, _, err = cli(["train", "--table", "digits", "--generator", "autoregressive"])
    assert code == 2 and "image_gmm" in err


def test_a_long_series_whose_holdout_is_one_segment_is_quarantined_as_inconclusive(cli, warehouse, tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(400)
    pd.DataFrame({"t": t, "v": np.sin(t / 6) + rng.normal(0, 0.1, len(t))}).to_csv(tmp_path / "s.csv", index=False)
    code, _, err = cli(["ingest", tmp_path / "s.csv", "--kind", "timeseries", "--table", "wave", "--time-column", "t"])
    assert code == 0, err
    code, trained, err = run_json(cli, "train", "--table", "wave", "--epochs", "2")
    assert code == 0, err
    # the last 80 steps are held out: one segment as long as the sampled ones, too few for DCR share or MIA to fail
    code, _, err = cli(["generate", "--model", trained["model_id"], "--sequences", "6", "--table", "wave_synth"])
    assert code == 1 and "inconclusive" in err and "dcr_share" in err
    with warehouse.read() as con:
        schemas = {r[0] for r in con.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'wave_synth'").fetchall()}
    assert schemas == {"quarantine"}

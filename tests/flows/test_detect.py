"""Detector flows end to end through the CLI: real Prefect flow runs against a real DuckDB file."""

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def run_json(cli, *args):
    code, out, err = cli([*args, "--json"])
    lines = out.strip().splitlines()
    return code, (json.loads(lines[-1]) if lines else None), err


def write_table(warehouse, name, frame):
    with warehouse.transaction() as con:
        warehouse.write_frame(con, name, frame)


def train_iforests(cli, table, seeds=(0,), *extra):
    """Train one iforest per seed on `table` through the CLI; their model ids."""
    ids = []
    for seed in seeds:
        code, trained, err = run_json(cli, "detect", "train", "--table", table, "--detector", "iforest",
                                      "--seed", str(seed), *extra)
        assert code == 0, err
        ids.append(trained["model_id"])
    return ids


def flow_run_state(run_id):
    from prefect.client.orchestration import get_client

    async def read():
        async with get_client() as client:
            return (await client.read_flow_run(run_id)).state.type.value

    return asyncio.run(read())


def test_train_then_score_creditcard(cli, warehouse, settings, creditcard_small):
    write_table(warehouse, "cc", creditcard_small)
    code, trained, err = run_json(cli, "detect", "train", "--table", "cc", "--detector", "ganomaly",
                                  "--label-column", "Class", "--epochs", "1")
    assert code == 0, err
    model_id = trained["model_id"]
    assert trained["kind"] == "tabular" and trained["n_validation"] == 400
    # Normal rows only: the 1,600 non-validation rows minus the frauds among them (50 frauds in all).
    assert 1600 - 50 <= trained["n_train"] < 1600
    record = warehouse.read_frame("_detectors").set_index("model_id").loc[model_id]
    for metric in ("auroc", "auprc", "precision", "recall"):
        assert 0.0 <= record[metric] <= 1.0
    assert record["auroc"] > 0.7
    assert json.loads(record["feature_columns"]) == [c for c in creditcard_small.columns if c != "Class"]
    assert (settings.models_dir / model_id / "model.json").is_file()
    assert flow_run_state(record["run_id"]) == "COMPLETED"

    code, scored, err = run_json(cli, "detect", "score", "--model", model_id, "--table", "cc")
    assert code == 0, err
    scores = warehouse.read_frame("anomaly_scores")
    assert len(scores) == 2000 and scored["scored"] == 2000
    assert set(scores.columns) >= {"item_key", "score", "threshold", "is_alert", "model_id", "scored_at"}
    assert (scores["is_alert"] == (scores["score"] > scores["threshold"])).all()
    with warehouse.read() as con:
        alerts = con.execute("SELECT * FROM alerts").df()
    assert len(alerts) == int(scores["is_alert"].sum()) == scored["alerts"] > 0
    assert alerts["score"].is_monotonic_decreasing

    # Scoring the same table again replaces this model's scores instead of duplicating them.
    code, again, err = run_json(cli, "detect", "score", "--model", model_id, "--table", "cc")
    assert code == 0, err
    assert again["replaced"] == 2000 and len(warehouse.read_frame("anomaly_scores")) == 2000


@pytest.fixture
def trained_tables(cli, warehouse, tmp_path, creditcard_small):
    """A tabular, a series and an image model on small tables, with ids."""
    write_table(warehouse, "cc", creditcard_small)
    ids = {}
    code, out, err = run_json(cli, "detect", "train", "--table", "cc", "--detector", "iforest")
    assert code == 0, err
    ids["cc"] = out["model_id"]

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(folder / f"a{i}.png")
    assert cli(["ingest", folder, "--kind", "image", "--table", "imgs"])[0] == 0
    code, out, err = run_json(cli, "detect", "train", "--table", "imgs", "--detector", "iforest")
    assert code == 0, err
    ids["imgs"] = out["model_id"]
    return ids


def bad_cases(tmp_path, warehouse, creditcard_small):
    """Write the bad tables the cases below refer to; returns the folder of 10x10 images."""
    write_table(warehouse, "cc_cols", creditcard_small.drop(columns=["V1"]).assign(foo=1.0))
    write_table(warehouse, "cc_normal", creditcard_small[creditcard_small["Class"] == 0])
    nan = creditcard_small.copy()
    nan.loc[5, "Amount"] = np.nan
    write_table(warehouse, "cc_nan", nan)
    (tmp_path / "short.csv").write_text("t,v\n" + "".join(f"{i},{np.sin(i)}\n" for i in range(12)))
    big = tmp_path / "big"
    big.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((10, 10), np.uint8)).save(big / f"b{i}.png")
    return big


BAD = {
    "columns differ": (lambda ids: ["detect", "score", "--model", ids["cc"], "--table", "cc_cols"],
                       "missing ['V1'], unexpected ['foo']"),
    "one class": (lambda ids: ["detect", "train", "--table", "cc_normal", "--detector", "iforest",
                               "--label-column", "Class"], "one class only"),
    "nans": (lambda ids: ["detect", "train", "--table", "cc_nan", "--detector", "iforest"], "NaN"),
    "nans at scoring": (lambda ids: ["detect", "score", "--model", ids["cc"], "--table", "cc_nan"], "NaN"),
    "too few rows for the window": (lambda ids: ["detect", "train", "--table", "short", "--detector", "autoencoder"],
                                    "fewer than the window length 32"),
    "wrong image size": (lambda ids: ["detect", "score", "--model", ids["imgs"], "--table", "big"],
                         "resize the images to 8x8"),
    "unknown model": (lambda ids: ["detect", "score", "--model", "nope", "--table", "cc"], "unknown model 'nope'"),
    "unknown model to delete": (lambda ids: ["detect", "delete", "--model", "nope"], "unknown model 'nope'"),
    "unknown detector": (lambda ids: ["detect", "train", "--table", "cc", "--detector", "gan9"],
                         "unknown detector 'gan9'"),
    "missing table": (lambda ids: ["detect", "train", "--table", "nothere", "--detector", "iforest"],
                      "does not exist"),
    "unknown hyperparameter": (lambda ids: ["detect", "train", "--table", "cc", "--detector", "ganomaly",
                                            "--param", "depth=3"], "ganomaly has no hyperparameter 'depth'"),
    "hyperparameter of the wrong type": (lambda ids: ["detect", "train", "--table", "cc", "--detector", "ganomaly",
                                                      "--param", "latent_dim=big"], "latent_dim wants int"),
    "unknown score mode": (lambda ids: ["detect", "train", "--table", "cc", "--detector", "ganomaly",
                                        "--param", "score_mode=vibes"], "score_mode 'vibes' is not one of"),
    "hyperparameter out of range": (lambda ids: ["detect", "train", "--table", "cc", "--detector", "autoencoder",
                                                 "--param", "latent_dim=0"], "latent_dim must be a positive integer"),
    "param not NAME=VALUE": (lambda ids: ["detect", "train", "--table", "cc", "--detector", "iforest",
                                          "--param", "n_estimators"], "is not NAME=VALUE"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_error_and_changes_nothing(case, cli, warehouse, settings, tmp_path,
                                                         creditcard_small, trained_tables):
    big = bad_cases(tmp_path, warehouse, creditcard_small)
    assert cli(["ingest", tmp_path / "short.csv", "--kind", "timeseries", "--table", "short"])[0] == 0
    assert cli(["ingest", big, "--kind", "image", "--table", "big"])[0] == 0
    before = warehouse.snapshot()
    models_before = sorted(p.name for p in settings.models_dir.iterdir())
    argv, message = BAD[case]
    code, out, err = cli(argv(trained_tables))
    assert code == 2, (out, err)
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert warehouse.snapshot() == before
    assert sorted(p.name for p in settings.models_dir.iterdir()) == models_before


def test_pipeline_stage_trains_scores_and_reports_top_alerts(settings, warehouse, creditcard_small):
    from flows.detect import pipeline_stage

    write_table(warehouse, "demo", creditcard_small)
    out = pipeline_stage(settings, {"table": "demo", "detector": "autoencoder", "label_column": "Class",
                                    "normal_value": 0, "epochs": 2, "top": 5, "max_train_rows": 1000})
    assert out["scored"] == 2000 and 0 < len(out["top_alerts"]) <= 5
    record = warehouse.read_frame("_detectors").iloc[0]
    assert record["n_train"] == 1000 and record["model_id"] == out["model_id"]
    assert out["validation"]["auroc"] > 0.7
    assert "alerts" in out["text"]
    with warehouse.read() as con:
        top = con.execute("SELECT item_key FROM alerts LIMIT 5").df()["item_key"].tolist()
    assert top[: len(out["top_alerts"])] == [a["item_key"] for a in out["top_alerts"]]
    assert out["model_id"].startswith("pipeline-demo-autoencoder-") and out["retired"] == []


def test_pipeline_stage_replaces_its_previous_detector_but_not_users(cli, settings, warehouse, creditcard_small):
    from flows.detect import pipeline_stage

    write_table(warehouse, "demo", creditcard_small)
    [mine] = train_iforests(cli, "demo")
    assert cli(["detect", "score", "--model", mine, "--table", "demo"])[0] == 0
    stage = {"table": "demo", "detector": "iforest", "label_column": "Class", "normal_value": 0}
    first = pipeline_stage(settings, stage)
    second = pipeline_stage(settings, stage)
    assert second["retired"] == [first["model_id"]]
    assert set(warehouse.read_frame("_detectors")["model_id"]) == {mine, second["model_id"]}
    scores = warehouse.read_frame("anomaly_scores")
    assert scores.groupby("model_id").size().to_dict() == {mine: 2000, second["model_id"]: 2000}
    assert not (settings.models_dir / first["model_id"]).exists()
    # replace_previous: false keeps every run's detector.
    third = pipeline_stage(settings, {**stage, "replace_previous": False})
    assert third["retired"] == []
    assert len(warehouse.read_frame("_detectors")) == 3


def test_detect_list_shows_trained_detectors_newest_first(cli, warehouse, creditcard_small):
    code, out, err = run_json(cli, "detect", "list")
    assert code == 0 and out["detectors"] == []
    code, out, err = cli(["detect", "list"])
    assert code == 0 and "no trained detectors yet" in out
    write_table(warehouse, "cc", creditcard_small)
    ids = train_iforests(cli, "cc", (0, 1), "--label-column", "Class")
    code, out, err = run_json(cli, "detect", "list")
    assert code == 0, err
    assert [d["model_id"] for d in out["detectors"]] == ids[::-1]
    first = out["detectors"][-1]
    assert first["table_name"] == "cc" and first["detector"] == "iforest" and 0.0 <= first["auroc"] <= 1.0
    code, text, err = cli(["detect", "list"])
    assert code == 0 and ids[0] in text and "iforest" in text


def test_delete_retires_a_detector_with_its_scores_alerts_and_files(cli, warehouse, settings, creditcard_small):
    write_table(warehouse, "cc", creditcard_small)
    old, kept = train_iforests(cli, "cc", (0, 1))
    for model_id in (old, kept):
        assert cli(["detect", "score", "--model", model_id, "--table", "cc"])[0] == 0
    alerts_before = warehouse.read_frame("anomaly_scores").groupby("model_id")["is_alert"].sum()

    code, out, err = run_json(cli, "detect", "delete", "--model", old)
    assert code == 0, err
    [deleted] = out["deleted"]
    assert deleted["model_id"] == old
    assert deleted["scores_deleted"] == 2000 and deleted["alerts_deleted"] == alerts_before[old] > 0
    assert warehouse.read_frame("_detectors")["model_id"].tolist() == [kept]
    assert set(warehouse.read_frame("anomaly_scores")["model_id"]) == {kept}
    with warehouse.read() as con:
        assert set(con.execute("SELECT model_id FROM alerts").df()["model_id"]) == {kept}
    assert not (settings.models_dir / old).exists() and (settings.models_dir / kept).is_dir()
    assert sorted(p.name for p in settings.models_dir.iterdir()) == [kept]
    # The kept detector still scores; the deleted one is unknown now.
    assert cli(["detect", "score", "--model", kept, "--table", "cc"])[0] == 0
    code, out, err = cli(["detect", "score", "--model", old, "--table", "cc"])
    assert code == 2 and f"unknown model {old!r}" in err


def test_failed_delete_leaves_warehouse_and_files_as_they_were(cli, warehouse, settings, creditcard_small):
    from flows.detect import delete_detectors

    write_table(warehouse, "cc", creditcard_small)
    ids = train_iforests(cli, "cc", (0, 1))
    model_id = ids[1]
    # A warehouse where anomaly_scores is a view: the DELETE inside the transaction fails after both models' files
    # were moved aside, so the rollback path has to put them all back (and the first model's rows stay too).
    with warehouse.transaction() as con:
        con.execute("DROP VIEW main.alerts")
        con.execute("DROP TABLE main.anomaly_scores")
        con.execute(f"CREATE VIEW main.anomaly_scores AS SELECT '{model_id}' AS model_id, true AS is_alert")
    before = warehouse.snapshot()
    files_before = sorted(str(p.relative_to(settings.models_dir)) for p in settings.models_dir.rglob("*"))
    with pytest.raises(Exception, match="(?i)delete"):
        delete_detectors(settings, ids)
    assert warehouse.snapshot() == before
    assert sorted(str(p.relative_to(settings.models_dir)) for p in settings.models_dir.rglob("*")) == files_before


def test_delete_never_removes_files_outside_the_models_dir(warehouse, settings, tmp_path, creditcard_small, cli):
    from flows.detect import delete_detectors

    write_table(warehouse, "cc", creditcard_small)
    [model_id] = train_iforests(cli, "cc")
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("not a model")
    with warehouse.transaction() as con:
        con.execute("UPDATE main._detectors SET path = ? WHERE model_id = ?", [str(outside), model_id])
    [out] = delete_detectors(settings, [model_id])
    assert out["files_deleted"] is None
    assert (outside / "keep.txt").read_text() == "not a model"
    assert len(warehouse.read_frame("_detectors")) == 0


def test_hyperparameters_from_the_command_line(cli, warehouse, creditcard_small):
    write_table(warehouse, "cc", creditcard_small)
    code, trained, err = run_json(cli, "detect", "train", "--table", "cc", "--detector", "ganomaly", "--epochs", "1",
                                  "--param", "score_mode=density", "--param", "latent_dim=5",
                                  "--param", "learning_rate=0.002")
    assert code == 0, err
    assert trained["score_mode"] == "density"
    record = warehouse.read_frame("_detectors").set_index("model_id").loc[trained["model_id"]]
    params = json.loads(record["params"])
    assert params["latent_dim"] == 5 and params["learning_rate"] == 0.002 and params["epochs"] == 1


def test_series_train_and_score_per_point(cli, warehouse, tmp_path):
    t = np.arange(300)
    values = np.sin(2 * np.pi * t / 20)
    labels = np.zeros(300, dtype=int)
    values[270:280] += 3.0
    labels[270:280] = 1
    values[50:60] -= 3.0  # a labelled anomaly inside the training part: its windows are not trained on
    labels[50:60] = 1
    (tmp_path / "ecg.csv").write_text("t,value,label\n" + "".join(
        f"{i},{v:.5f},{lab}\n" for i, v, lab in zip(t, values, labels)))
    assert cli(["ingest", tmp_path / "ecg.csv", "--kind", "timeseries", "--table", "ecg"])[0] == 0
    code, trained, err = run_json(cli, "detect", "train", "--table", "ecg", "--detector", "iforest",
                                  "--label-column", "label")
    assert code == 0, err
    assert trained["kind"] == "timeseries" and trained["n_validation"] == 60 and trained["auroc"] > 0.8
    from detectors.base import Detector
    from detectors.windows import window_starts

    model = Detector.load(Path(trained["path"]))
    length = model.window_length
    starts = window_starts(240, length, model.window_stride)
    assert model.n_train_ == sum(1 for s in starts if not labels[s:s + length].any()) < len(starts)
    code, scored, err = run_json(cli, "detect", "score", "--model", trained["model_id"], "--table", "ecg")
    assert code == 0, err
    scores = warehouse.read_frame("anomaly_scores")
    assert len(scores) == 300 and scores["item_key"].tolist() == [str(i) for i in t]


def test_images_with_folder_labels(cli, warehouse, tmp_path):
    rng = np.random.default_rng(1)
    for label, count in (("normal", 30), ("odd", 10)):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(count):
            image = np.zeros((8, 8), np.uint8)
            if label == "normal":
                image[rng.integers(0, 8), :] = 255
            else:
                image[:, rng.integers(0, 8)] = 255
            Image.fromarray(image).save(tmp_path / "imgs" / label / f"{i}.png")
    assert cli(["ingest", tmp_path / "imgs", "--kind", "image", "--table", "imgs"])[0] == 0
    code, trained, err = run_json(cli, "detect", "train", "--table", "imgs", "--detector", "iforest",
                                  "--label-column", "label", "--normal-value", "normal")
    assert code == 0, err
    assert trained["kind"] == "image" and trained["n_validation"] == 8 and trained["auroc"] is not None
    code, scored, err = run_json(cli, "detect", "score", "--model", trained["model_id"], "--table", "imgs")
    assert code == 0 and scored["scored"] == 40, err

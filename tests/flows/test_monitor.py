"""Monitoring: the inbox, incremental scoring, drift events, feedback, the champion swap, a killed run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def run_json(cli, *args):
    code, out, err = cli([*args, "--json"])
    return code, (json.loads(out.strip().splitlines()[-1]) if out.strip() else None), err


@pytest.fixture
def monitored(cli, warehouse, settings, creditcard_small, tmp_path, monkeypatch):
    """A reference table `creditcard` with an iforest detector trained on it, a monitor config, an empty inbox."""
    creditcard_small.to_csv(tmp_path / "cc.csv", index=False)
    assert cli(["ingest", tmp_path / "cc.csv", "--kind", "tabular", "--table", "creditcard"])[0] == 0
    code, trained, err = run_json(cli, "detect", "train", "--table", "creditcard", "--detector", "iforest",
                                  "--label-column", "Class", "--normal-value", "0")
    assert code == 0, err
    config = yaml.safe_load((ROOT / "flows" / "pipeline.yaml").read_text())
    config["monitor"].update({"table": "transactions", "inbox": str(tmp_path / "inbox"),
                              "reference_table": "creditcard", "max_gap_minutes": None,
                              "retrain": {"detector": "iforest", "min_labels": 6, "max_train_rows": 2000}})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("SYNTHWATCH_CONFIG", str(path))
    (tmp_path / "inbox").mkdir()
    return {"inbox": tmp_path / "inbox", "model_id": trained["model_id"], "frame": creditcard_small}


def replay(cli, files, start=0, window=20000):
    # a live feed carries no fraud label: the replay leaves `Class` out
    code, out, err = run_json(cli, "monitor", "replay", "--table", "creditcard", "--window", str(window),
                              "--start", str(start), "--files", str(files), "--drop", "Class")
    assert code == 0, err
    return out["files"]


def test_inbox_ingests_each_file_once_rejects_bad_ones_with_reasons_and_loses_nothing(cli, warehouse, monitored):
    inbox = monitored["inbox"]
    names = replay(cli, 3)
    (inbox / "corrupt.csv").write_bytes(b"\x00\x01garbage,\n\"unterminated\n1,2,3,4\n")
    first = pd.read_csv(inbox / names[0])
    first.drop(columns=["V3"]).to_csv(inbox / "missing_column.csv", index=False)
    (inbox / "same_content_again.csv").write_bytes((inbox / names[0]).read_bytes())  # the first batch again
    (inbox / ".half-written.csv.part").write_text("Time,V1\n")    # a writer still busy: never read
    code, result, err = run_json(cli, "monitor", "run")
    assert code == 0, err
    files = {f["file"]: f for f in result["inbox"]["files"]}
    assert sum(f["status"] == "ingested" for f in files.values()) == 3
    assert files["corrupt.csv"]["status"] == "rejected"
    assert "missing column(s) V3" in files["missing_column.csv"]["reason"]
    assert files["same_content_again.csv"]["status"] == "already_ingested"
    # every file is somewhere: processed, rejected (with its reason beside it), or still waiting (the partial one)
    processed = sorted(p.name for p in (inbox / "processed").iterdir())
    rejected = sorted(p.name for p in (inbox / "rejected").iterdir())
    assert set(names) <= set(processed)
    assert "corrupt.csv" in rejected and "corrupt.csv.reason.txt" in rejected
    assert "missing column" in (inbox / "rejected" / "missing_column.csv.reason.txt").read_text()
    assert [p.name for p in inbox.iterdir() if p.is_file()] == [".half-written.csv.part"]
    with warehouse.read() as con:
        n_rows = con.execute("SELECT count(*) FROM main.transactions").fetchall()[0][0]
        batches = con.execute("SELECT status, count(*) FROM main._batches GROUP BY 1 ORDER BY 1").fetchall()
    expected = sum(len(pd.read_csv(inbox / "processed" / n)) for n in names)
    assert n_rows == expected
    assert dict(batches)["ingested"] == 3 and dict(batches)["rejected"] >= 2


def test_scores_only_new_batches_and_matches_one_run_over_the_table(cli, warehouse, settings, monitored):
    replay(cli, 2)
    code, first, err = run_json(cli, "monitor", "run")
    assert code == 0, err
    assert len(first["batches"]) == 2 and first["model_id"] == monitored["model_id"]
    code, again, err = run_json(cli, "monitor", "run")
    assert code == 0 and again["batches"] == [], err  # nothing new: nothing scored twice
    replay(cli, 3, start=2)
    code, third, err = run_json(cli, "monitor", "run")
    assert code == 0 and len(third["batches"]) == 3, err
    with warehouse.read() as con:
        batched = con.execute("SELECT item_key, score FROM main.anomaly_scores WHERE table_name = 'transactions' "
                              "ORDER BY item_key").df()
        per_batch = con.execute("SELECT batch_id, count(DISTINCT model_id), count(*) FROM main._monitor_batches "
                                "GROUP BY 1").fetchall()
        n_rows = con.execute("SELECT count(*) FROM main.transactions").fetchall()[0][0]
    assert len(batched) == n_rows and batched["item_key"].is_unique
    assert all(models == 1 and rows == 1 for _, models, rows in per_batch)
    # one run of the same detector over the whole table gives the same scores
    code, _, err = cli(["detect", "score", "--model", monitored["model_id"], "--table", "transactions"])
    assert code == 0, err
    with warehouse.read() as con:
        whole = con.execute("SELECT item_key, score FROM main.anomaly_scores WHERE table_name = 'transactions' "
                            "AND batch_id IS NULL ORDER BY item_key").df()
    assert whole["item_key"].tolist() == batched["item_key"].tolist()
    np.testing.assert_array_equal(whole["score"].to_numpy(), batched["score"].to_numpy())


def test_drift_and_alert_rate_events(cli, warehouse, monitored, tmp_path):
    inbox = monitored["inbox"]
    config = yaml.safe_load(Path(os.environ["SYNTHWATCH_CONFIG"]).read_text())
    config["monitor"]["alert_rate_max"] = 0.05
    Path(os.environ["SYNTHWATCH_CONFIG"]).write_text(yaml.safe_dump(config))
    frame = monitored["frame"]
    normal = frame[frame["Class"] == 0].drop(columns=["Class"])
    normal.sample(400, random_state=1).to_csv(inbox / "a_normal.csv", index=False)
    code, result, err = run_json(cli, "monitor", "run")
    assert code == 0 and result["batches"][0]["events"] == [], (result, err)
    for seed, name in ((2, "b_shifted.csv"), (3, "c_shifted.csv")):
        shifted = normal.sample(400, random_state=seed)
        shifted["V4"] = shifted["V4"] + 6.0  # features move far from the training data
        shifted["V14"] = shifted["V14"] - 6.0
        shifted.to_csv(inbox / name, index=False)
        code, result, err = run_json(cli, "monitor", "run")
        assert code == 0, err
    frauds = pd.concat([frame[frame["Class"] == 1], frame[frame["Class"] == 0].head(50)]).drop(columns=["Class"])
    frauds.to_csv(inbox / "d_frauds.csv", index=False)  # half of this batch is fraud
    code, result, err = run_json(cli, "monitor", "run")
    assert code == 0, err
    with warehouse.read() as con:
        events = con.execute("SELECT event_type, message, batch_id FROM main.monitoring_events "
                             "ORDER BY created_at").fetchall()
        psi_v4 = con.execute("SELECT psi FROM main._drift WHERE feature = 'V4' ORDER BY computed_at LIMIT 3"
                             ).fetchall()
        rates = [r[0] for r in con.execute("SELECT alert_rate FROM main._monitor_batches ORDER BY scored_at"
                                           ).fetchall()]
    # PSI >= 0.2 on two consecutive batches: only the second shifted batch raises the drift event
    drift = [e for e in events if e[0] == "drift"][:1]
    assert len(drift) == 1 and "V4" in drift[0][1] and "V14" in drift[0][1], events
    assert psi_v4[0][0] < 0.2 <= psi_v4[1][0] and psi_v4[2][0] >= 0.2
    # an alert-rate event for each batch over the bound, and only for those
    assert rates[0] <= 0.05 < rates[-1], rates
    assert sorted(e[2] for e in events if e[0] == "alert_rate") == sorted(
        r[0] for r in _batches_over(warehouse, 0.05)), events


def _batches_over(warehouse, bound):
    with warehouse.read() as con:
        return con.execute("SELECT batch_id FROM main._monitor_batches WHERE alert_rate > ?", [bound]).fetchall()


def test_a_run_killed_mid_batch_leaves_nothing_half_written_and_the_next_run_completes(
        cli, warehouse, settings, monitored, tmp_path):
    replay(cli, 3)
    code, _, err = cli(["monitor", "run"])  # ingest and score the first three
    assert code == 0, err
    replay(cli, 2, start=3)
    before = warehouse.snapshot()
    script = (
        "import os, sys\n"
        "import flows.monitor as m\n"
        "from flows.config import Settings\n"
        "from flows.inbox import ingest_inbox\n"
        "from flows.warehouse import Warehouse\n"
        "s = Settings.from_env(); cfg = m.MonitorSettings.from_config(s.config['monitor'])\n"
        "ingest_inbox(Warehouse(s.db_path), s.resolve_path(cfg.inbox), cfg.table)\n"
        "def die(*a, **k):\n"
        "    os._exit(9)  # killed inside the write transaction of a scored batch\n"
        "m.batch_events = die\n"
        "m.score_new_batches(s, cfg, 'killed')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 9, proc.stderr
    after = warehouse.snapshot()
    with warehouse.read() as con:
        assert con.execute("SELECT count(*) FROM main._monitor_batches").fetchall()[0][0] == 3
        assert con.execute("SELECT count(*) FROM main.anomaly_scores WHERE run_id = 'killed'").fetchall()[0][0] == 0
        assert con.execute("SELECT count(*) FROM main._batches WHERE status = 'ingested'").fetchall()[0][0] == 5
    assert after["main.anomaly_scores"] == before["main.anomaly_scores"]
    code, result, err = run_json(cli, "monitor", "run")
    assert code == 0 and len(result["batches"]) == 2, err
    with warehouse.read() as con:
        rows = con.execute("SELECT count(*) FROM main.transactions").fetchall()[0][0]
        assert con.execute("SELECT count(*) FROM main.anomaly_scores WHERE table_name = 'transactions'"
                           ).fetchall()[0][0] == rows


def test_feedback_and_the_champion_swap(cli, warehouse, settings, monitored):
    replay(cli, 4)
    code, first, err = run_json(cli, "monitor", "run")
    assert code == 0, err
    # without labels nothing shows a challenger is not worse: the champion stays, the decision is recorded
    code, kept, err = run_json(cli, "retrain")
    assert code == 0 and not kept["promoted"] and "labelled items" in kept["reason"], err
    with warehouse.read() as con:
        assert con.execute("SELECT model_id FROM main._champions").fetchall() == [(monitored["model_id"],)]
        assert con.execute("SELECT count(*) FROM main._detectors WHERE model_id = ?",
                           [kept["challenger"]]).fetchall()[0][0] == 0  # the losing challenger is retired
        # analysts label the top alerts and some normal items (the truth: the label the feed left out)
        top = con.execute("SELECT s.item_key, c.Class FROM main.anomaly_scores s JOIN (SELECT *, batch_id || ':' || "
                          "(row_number() OVER (PARTITION BY batch_id ORDER BY rowid) - 1) AS item_key FROM "
                          "main.transactions) t USING (item_key) JOIN main.creditcard c ON c.Time = t.Time AND "
                          "c.Amount = t.Amount AND c.V1 = t.V1 WHERE s.table_name = 'transactions' "
                          "ORDER BY s.score DESC LIMIT 12").fetchall()
        low = con.execute("SELECT item_key FROM main.anomaly_scores WHERE table_name = 'transactions' "
                          "ORDER BY score LIMIT 6").fetchall()
    labels = [(k, "fraud" if c == 1 else "normal") for k, c in top] + [(k, "normal") for (k,) in low]
    assert any(label == "fraud" for _, label in labels) and any(label == "normal" for _, label in labels)
    for key, label in labels:
        assert cli(["feedback", "--alert", key, "--label", label])[0] == 0
    code, decided, err = run_json(cli, "retrain")
    assert code == 0, err
    metrics = decided["metrics"]
    assert metrics["champion"]["n"] == metrics["challenger"]["n"] == len(labels)
    assert decided["promoted"] == (metrics["challenger"]["auprc"] >= metrics["champion"]["auprc"])
    champion = decided["challenger"] if decided["promoted"] else monitored["model_id"]
    with warehouse.read() as con:
        assert con.execute("SELECT model_id FROM main._champions").fetchall() == [(champion,)]
        decisions = con.execute("SELECT promoted, labelled_rows FROM main._retrain_decisions ORDER BY decided_at"
                                ).fetchall()
        assert decisions == [(False, 0), (decided["promoted"], len(labels))]
    # new batches are scored by the champion of the moment; earlier batches are never scored again
    replay(cli, 2, start=4)
    code, later, err = run_json(cli, "monitor", "run")
    assert code == 0 and len(later["batches"]) == 2 and later["model_id"] == champion, err
    with warehouse.read() as con:
        per_batch = con.execute("SELECT batch_id, count(*) FROM main._monitor_batches GROUP BY 1").fetchall()
    assert len(per_batch) == 6 and all(n == 1 for _, n in per_batch)


def test_monitor_without_a_detector_is_one_line(cli, settings, tmp_path, monkeypatch):
    config = yaml.safe_load((ROOT / "flows" / "pipeline.yaml").read_text())
    config["monitor"].update({"inbox": str(tmp_path / "inbox"), "reference_table": "nothing"})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("SYNTHWATCH_CONFIG", str(tmp_path / "config.yaml"))
    (tmp_path / "inbox").mkdir()
    pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}).to_csv(tmp_path / "inbox" / "x.csv", index=False)
    code, _, err = cli(["monitor", "run"])
    assert code == 2 and "no detector" in err and len(err.strip().splitlines()) == 1


def test_schedule_commands_without_a_server_are_one_line(cli, settings):
    code, _, err = cli(["schedule", "list"])
    assert code == 2 and "not running" in err and len(err.strip().splitlines()) == 1


def test_a_dask_cluster_of_two_workers_gives_the_same_scores(cli, warehouse, settings, monitored, tmp_path):
    import shutil

    replay(cli, 4)
    # the same arrivals, monitored twice: in process, and on a local Dask cluster of two worker processes
    copy = tmp_path / "copy.duckdb"
    shutil.copy(settings.db_path, copy)
    shutil.copytree(monitored["inbox"], tmp_path / "inbox_copy")
    code, local, err = run_json(cli, "monitor", "run")
    assert code == 0 and len(local["batches"]) == 4, err
    config = yaml.safe_load(Path(os.environ["SYNTHWATCH_CONFIG"]).read_text())
    config["monitor"]["inbox"] = str(tmp_path / "inbox_copy")
    Path(os.environ["SYNTHWATCH_CONFIG"]).write_text(yaml.safe_dump(config))
    code, dask, err = run_json(cli, "monitor", "run", "--dask-workers", "2", "--db", copy)
    assert code == 0 and len(dask["batches"]) == 4, err
    from flows.warehouse import Warehouse

    query = "SELECT item_key, score, is_alert FROM main.anomaly_scores WHERE batch_id IS NOT NULL ORDER BY item_key"
    with warehouse.read() as con:
        a = con.execute(query).df()
    with Warehouse(copy).read() as con:
        b = con.execute(query).df()
    assert len(a) > 0
    pd.testing.assert_frame_equal(a, b)


def test_inbox_appends_files_in_groups_and_blames_only_the_bad_file(tmp_path, monkeypatch):
    from flows import inbox as inbox_module
    from flows.warehouse import Warehouse

    wh = Warehouse(tmp_path / "warehouse.duckdb")
    box = tmp_path / "inbox"
    box.mkdir()
    rng = np.random.default_rng(0)
    frames = [pd.DataFrame({"amount": rng.normal(size=50), "kind": rng.integers(0, 9, 50)}) for _ in range(6)]

    def drop(name, write, stamp):
        write(box / name)
        os.utime(box / name, ns=(stamp * 10**9, stamp * 10**9))  # arrival order

    opened = []
    real = Warehouse.transaction
    monkeypatch.setattr(Warehouse, "transaction", lambda self: opened.append(1) or real(self))
    monkeypatch.setattr(inbox_module, "GROUP_ROWS", 100)  # two 50-row files per transaction
    for i in range(5):
        drop(f"f{i}.csv", lambda p, i=i: frames[i].to_csv(p, index=False), 1_000 + i)
    result = inbox_module.ingest_inbox(wh, box, "transactions")
    assert [f["status"] for f in result["files"]] == ["ingested"] * 5
    # the first file creates the table on its own; the other four go in two groups of two
    assert len(opened) == 3
    with wh.read() as con:
        assert con.execute("SELECT count(*), count(DISTINCT batch_id) FROM main.transactions").fetchall() == [(250, 5)]

    # a Parquet file with an extra column passes reading but not the append: its group is retried file by file,
    # so it alone is rejected and the file grouped with it still goes in
    opened.clear()
    drop("g0.csv", lambda p: frames[5].to_csv(p, index=False), 2_000)
    drop("g1.parquet", lambda p: frames[5].head(10).assign(extra=1).to_parquet(p), 2_001)
    drop("g2.parquet", lambda p: frames[4].to_parquet(p), 2_002)
    result = inbox_module.ingest_inbox(wh, box, "transactions")
    files = {f["file"]: f for f in result["files"]}
    assert [files[n]["status"] for n in ("g0.csv", "g1.parquet", "g2.parquet")] == ["ingested", "rejected",
                                                                                  "ingested"]
    assert "unexpected column(s) extra" in files["g1.parquet"]["reason"]
    assert (box / "rejected" / "g1.parquet.reason.txt").exists() and (box / "processed" / "g0.csv").exists()
    with wh.read() as con:
        assert con.execute("SELECT count(*) FROM main.transactions").fetchall()[0][0] == 350
        assert con.execute("SELECT status, count(*) FROM main._batches GROUP BY 1 ORDER BY 1").fetchall() == [
            ("ingested", 7), ("rejected", 1)]

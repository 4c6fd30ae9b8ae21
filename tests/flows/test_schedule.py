"""Schedules on a real local Prefect server: deployments registered with their schedules, a run triggered now is
served and scores a batch, stop pauses serving. Every process this test starts is stopped at its end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_deployments_are_served_on_a_real_local_server(cli, settings, creditcard_small, tmp_path):
    creditcard_small.to_csv(tmp_path / "cc.csv", index=False)
    assert cli(["ingest", tmp_path / "cc.csv", "--kind", "tabular", "--table", "creditcard"])[0] == 0
    code, _, err = cli(["detect", "train", "--table", "creditcard", "--detector", "iforest", "--label-column",
                        "Class", "--normal-value", "0"])
    assert code == 0, err
    config = yaml.safe_load((ROOT / "flows" / "pipeline.yaml").read_text())
    config["monitor"].update({"inbox": str(tmp_path / "inbox"), "reference_table": "creditcard"})
    config["schedule"] = {"deployments": [
        {"name": "monitor", "flow": "monitor", "interval_seconds": 3600, "retries": 1},
        {"name": "retrain", "flow": "retrain", "cron": "0 3 * * *"}]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    home = tmp_path / "prefect"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "SYNTHWATCH_PREFECT_HOME": str(home), "SYNTHWATCH_DATA_DIR": str(settings.data_dir),
           "SYNTHWATCH_CONFIG": str(tmp_path / "config.yaml")}
    env.pop("PREFECT_API_URL", None)

    def synthwatch(*args, timeout=240):
        proc = subprocess.run([sys.executable, "-m", "flows.cli", *args, "--json"], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)
        out = proc.stdout.strip().splitlines()
        return proc.returncode, (json.loads(out[-1]) if out else None), proc.stderr

    try:
        code, started, err = synthwatch("schedule", "start")
        assert code == 0 and started["started"], err
        assert started["api_url"].startswith("http://127.0.0.1:")
        import time

        deadline = time.monotonic() + 90
        while True:  # the server's scheduler creates the upcoming runs on its next pass
            code, listed, err = synthwatch("schedule", "list")
            assert code == 0, err
            by_name = {d["name"]: d for d in listed["deployments"]}
            if all(d["next_runs"] for d in by_name.values()) or time.monotonic() > deadline:
                break
            time.sleep(3)
        assert set(by_name) == {"monitor", "retrain"}
        assert not by_name["monitor"]["paused"] and by_name["monitor"]["next_runs"], by_name
        assert "3600" in by_name["monitor"]["schedules"][0] or "1:00:00" in by_name["monitor"]["schedules"][0]
        assert "0 3 * * *" in by_name["retrain"]["schedules"][0]
        # a batch arrives; a run triggered now is picked up by the serving process and scores it
        code, _, err = cli(["monitor", "replay", "--table", "creditcard", "--window", "40000", "--files", "1",
                            "--drop", "Class", "--inbox", tmp_path / "inbox"])
        assert code == 0, err
        code, run, err = synthwatch("schedule", "run", "monitor", "--wait", "180")
        assert code == 0 and run["state"] == "COMPLETED", (run, err)
        from flows.warehouse import Warehouse

        with Warehouse(settings.db_path).read() as con:
            scored = con.execute("SELECT count(*), min(run_id) FROM main._monitor_batches").fetchall()[0]
        assert scored == (1, run["flow_run_id"])
        code, stopped, err = synthwatch("schedule", "stop")
        assert code == 0 and stopped["stopped"], err
        code, listed, err = synthwatch("schedule", "list")
        assert code == 0 and all(d["paused"] for d in listed["deployments"]), listed  # nobody serves them now
    finally:
        synthwatch("schedule", "stop")
        synthwatch("server", "stop")

"""`synthwatch run`, `tables` and the local Prefect server, as a user drives them."""

import json
import socket

import pytest
import yaml


def write_config(path, raw_data, stages, ingest):
    path.write_text(yaml.safe_dump({"stages": stages, "ingest": ingest}))
    return path


def test_run_ingests_each_kind_and_summarises(cli, tmp_path, raw_data, warehouse):
    ingest = [
        {"source": str(raw_data("adult", "adult_test.csv")), "kind": "tabular", "table": "adult_test"},
        {"source": str(raw_data("mitdb", "mitdb.csv")), "kind": "timeseries", "table": "ecg"},
        {"source": str(raw_data("fashion-mnist", "t10k-images-idx3-ubyte.gz")), "kind": "image",
         "table": "fashion_test"},
    ]
    config = write_config(tmp_path / "p.yaml", raw_data, ["ingest", "summary"], ingest)
    code, out, err = cli(["run", "--config", config, "--json"])
    assert code == 0, err
    result = json.loads(out)
    rows = {t["table"]: t["rows"] for t in result["stages"]["summary"]["tables"]}
    assert rows["adult_test"] == 16281 and rows["ecg"] == 7500 and rows["fashion_test"] == 10000
    code, out, _ = cli(["tables"])
    assert code == 0 and "fashion_test" in out and "16,281" in out


def test_run_fails_cleanly_on_a_bad_stage_and_unknown_stage(cli, tmp_path, warehouse):
    (tmp_path / "ok.csv").write_text("a\n1\n")
    ingest = [{"source": str(tmp_path / "ok.csv"), "kind": "tabular", "table": "first"},
              {"source": str(tmp_path / "missing.csv"), "kind": "tabular", "table": "second"}]
    config = write_config(tmp_path / "p.yaml", None, ["ingest"], ingest)
    code, _, err = cli(["run", "--config", config])
    assert code == 2 and "stage ingest failed" in err and "missing.csv" in err
    config = write_config(tmp_path / "q.yaml", None, ["ingest", "teleport"], ingest)
    before = warehouse.snapshot()
    code, _, err = cli(["run", "--config", config])
    assert code == 2 and "unknown pipeline stage 'teleport'" in err
    assert warehouse.snapshot() == before


def test_missing_or_malformed_config(cli, tmp_path):
    code, _, err = cli(["run", "--config", tmp_path / "nope.yaml"])
    assert code == 2 and "does not exist" in err
    (tmp_path / "bad.yaml").write_text("stages: [ingest\n")
    code, _, err = cli(["run", "--config", tmp_path / "bad.yaml"])
    assert code == 2 and "not valid YAML" in err


def test_local_server_on_loopback_serves_ingest(cli, tmp_path, monkeypatch, data_dir):
    # A server of its own: PREFECT_HOME under this test's data dir, not the session's.
    monkeypatch.delenv("SYNTHWATCH_PREFECT_HOME")
    import os

    saved = {k: os.environ.get(k) for k in ("PREFECT_HOME", "PREFECT_API_URL", "PREFECT_API_DATABASE_CONNECTION_URL")}
    try:
        code, out, err = cli(["server", "start", "--json"])
        assert code == 0, err
        info = json.loads(out)
        assert info["running"] and info["api_url"].startswith("http://127.0.0.1:")
        port = int(info["api_url"].split(":")[2].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        code, out, _ = cli(["server", "status", "--json"])
        assert json.loads(out)["running"]
        code, out, _ = cli(["server", "start", "--json"])
        assert json.loads(out)["started"] is False  # idempotent
    finally:
        code, out, _ = cli(["server", "stop", "--json"])
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert code == 0 and json.loads(out)["stopped"]
    code, out, _ = cli(["server", "status", "--json"])
    assert json.loads(out)["running"] is False

"""Ingestion end to end through the CLI: real Prefect flow runs against a real DuckDB file."""

import json

import numpy as np
import pytest
from PIL import Image



def ingest(cli, *args):
    code, out, err = cli(["ingest", *args, "--json"])
    return code, json.loads(out.strip().splitlines()[-1]) if out.strip() else None, err


def test_tabular_ingest_reports_types_and_records_run(cli, warehouse, tmp_path):
    src = tmp_path / "people.csv"
    src.write_text("id,name,score,joined\n1,ann,2.5,2024-01-02\n2,bob,,2024-02-03\n")
    code, result, err = ingest(cli, src, "--kind", "tabular", "--table", "people", "--key", "id")
    assert code == 0, err
    assert result["written"] and result["rows"] == 2
    assert {c["name"]: c["type"] for c in result["columns"]} == {
        "id": "BIGINT", "name": "VARCHAR", "score": "DOUBLE", "joined": "DATE"}
    row = warehouse.read_frame("_ingestions").iloc[0]
    assert (row["table_name"], row["kind"], row["rows"], row["status"]) == ("people", "tabular", 2, "ok")
    assert row["sha256"] == result["sha256"]

    # The run id is a real Prefect flow run, visible through Prefect's API.
    from prefect.client.orchestration import get_client

    async def flow_run_state(run_id):
        async with get_client() as client:
            run = await client.read_flow_run(run_id)
            return run.state.type.value, run.flow_id

    import asyncio

    state, _ = asyncio.run(flow_run_state(row["run_id"]))
    assert state == "COMPLETED"


def test_same_content_again_writes_nothing(cli, warehouse, tmp_path):
    src = tmp_path / "t.csv"
    src.write_text("a,b\n1,x\n2,y\n")
    assert ingest(cli, src, "--kind", "tabular", "--table", "t")[0] == 0
    before = warehouse.snapshot()
    code, result, _ = ingest(cli, src, "--kind", "tabular", "--table", "t")
    assert code == 0 and result["already_ingested"] and not result["written"]
    assert warehouse.snapshot() == before
    # New content appends and is recorded.
    src2 = tmp_path / "t2.csv"
    src2.write_text("a,b\n3,z\n")
    code, result, _ = ingest(cli, src2, "--kind", "tabular", "--table", "t", "--mode", "append")
    assert code == 0 and result["written"]
    assert warehouse.read_frame("t")["a"].tolist() == [1, 2, 3]
    assert len(warehouse.read_frame("_ingestions")) == 2


def make_bad_inputs(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header_only.csv").write_text("a,b\n")
    (tmp_path / "malformed.csv").write_text("a,b,c\n1,2,3\n4,5\n6,7,8,9\n")
    (tmp_path / "noimages").mkdir()
    (tmp_path / "noimages" / "x.txt").write_text("x")
    (tmp_path / "mixed").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "mixed" / "a.png")
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp_path / "mixed" / "b.png")
    (tmp_path / "nulls.csv").write_text("id,v\n1,2\n,3\n")
    (tmp_path / "ok.csv").write_text("a\n1\n")
    (tmp_path / "ts_bad.csv").write_text("time,v\n2024-01-01,1\nyesterday,2\n")


BAD_INPUTS = [
    (["missing.csv", "--kind", "tabular"], "does not exist"),
    (["empty.csv", "--kind", "tabular"], "empty"),
    (["header_only.csv", "--kind", "tabular"], "no rows"),
    (["malformed.csv", "--kind", "tabular"], "malformed CSV"),
    (["noimages", "--kind", "image"], "no PNG or JPEG"),
    (["mixed", "--kind", "image"], "one size"),
    (["ok.csv", "--kind", "video"], "unknown kind"),
    (["nulls.csv", "--kind", "tabular", "--key", "id"], "expectation"),
    (["ts_bad.csv", "--kind", "timeseries"], "not timestamps"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS, ids=[b[1] for b in BAD_INPUTS])
def test_bad_input_is_one_line_error_and_changes_nothing(cli, warehouse, tmp_path, args, message):
    make_bad_inputs(tmp_path)
    (tmp_path / "seed.csv").write_text("a\n1\n")
    assert cli(["ingest", tmp_path / "seed.csv", "--kind", "tabular", "--table", "bad"])[0] == 0
    before = warehouse.snapshot()
    code, out, err = cli(["ingest", tmp_path / args[0], *args[1:], "--table", "bad"])
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert warehouse.snapshot() == before


@pytest.mark.parametrize("table", ['x"; DROP TABLE y; --', "../etc", "_ingestions"])
def test_hostile_table_names_are_refused(cli, warehouse, tmp_path, table):
    (tmp_path / "ok.csv").write_text("a\n1\n")
    code, out, err = cli(["ingest", tmp_path / "ok.csv", "--kind", "tabular", "--table", table, "--json"])
    assert code == 2 and "invalid table name" in err
    assert json.loads(out)["ok"] is False
    assert warehouse.list_tables() == []


def test_real_timeseries_and_images(cli, warehouse, raw_data):
    code, ts, err = ingest(cli, raw_data("mitdb", "mitdb.csv"), "--kind", "timeseries", "--table", "ecg")
    assert code == 0, err
    assert ts["rows"] == 7500 and ts["summary"]["series"] == 1 and ts["summary"]["time_column"] == "t"
    ecg = warehouse.read_frame("ecg")
    assert ecg["t"].is_monotonic_increasing and set(ecg["label"].unique()) == {0, 1}

    code, img, err = ingest(cli, raw_data("fashion-mnist", "t10k-images-idx3-ubyte.gz"), "--kind", "image",
                            "--table", "fashion")
    assert code == 0, err
    assert img["rows"] == 10000
    assert img["summary"]["labels"] == {str(i): 1000 for i in range(10)}
    from flows.readers import frame_to_images

    with warehouse.read() as con:
        first = con.execute("SELECT * FROM fashion ORDER BY id LIMIT 3").df()
    assert frame_to_images(first).shape == (3, 28, 28, 1)


def test_real_adult_csv(cli, warehouse, raw_data):
    code, result, err = ingest(cli, raw_data("adult", "adult.csv"), "--kind", "tabular", "--table", "adult")
    assert code == 0, err
    types = {c["name"]: c["type"] for c in result["columns"]}
    assert result["rows"] == 32561 and types["age"] == "BIGINT" and types["workclass"] == "VARCHAR"
    assert warehouse.read_frame("adult")["workclass"].isna().sum() == 1836  # '?' became missing


def test_datasets_list_and_unknown_name(cli):
    code, out, _ = cli(["datasets", "list", "--json"])
    names = {d["name"] for d in json.loads(out)["datasets"]}
    assert code == 0 and {"adult", "creditcard", "mitdb", "fashion-mnist"} <= names
    code, _, err = cli(["datasets", "fetch", "imagenet"])
    assert code == 2 and "unknown data set 'imagenet'" in err

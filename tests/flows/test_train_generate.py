"""train / generate / models through the CLI: real Prefect flow runs on a real DuckDB file, tiny data."""

from __future__ import annotations

import json

import pandas as pd
import pytest


def run(cli, *args):
    code, out, err = cli([*args, "--json"])
    lines = out.strip().splitlines()
    return code, (json.loads(lines[-1]) if lines else None), err


@pytest.fixture(autouse=True)
def _gate_reports_only(report_only_config):
    """These tests are about training and sampling mechanics; tests/flows/test_gate_generate.py tests the gate."""


@pytest.fixture
def adult_table(warehouse, adult_small):
    """300 real Adult rows as table `adult`, plus tables for the bad-input cases."""
    df = adult_small.iloc[:300].reset_index(drop=True)
    with warehouse.transaction() as con:
        warehouse.write_frame(con, "adult", df)
        warehouse.write_frame(con, "nothing", df.iloc[:0])
        warehouse.write_frame(con, "with_null_col", df.iloc[:50].assign(blank=pd.Series([None] * 50, dtype=object)))
    return df


def test_train_generate_and_list_models(cli, warehouse, settings, adult_table):
    code, r, err = run(cli, "train", "--table", "adult", "--generator", "cart", "--seed", "3", "--holdout", "0.2")
    assert code == 0, err
    model_id = r["model_id"]
    assert (r["train_rows"], r["holdout_rows"]) == (240, 60)
    assert (settings.models_dir / model_id / "model.json").is_file()
    row = warehouse.read_frame("_models").set_index("model_id").loc[model_id]
    assert row["generator"] == "cart" and row["source_table"] == "adult"
    assert row["source_hash"] == warehouse.table_hash("adult")
    hold = warehouse.read_frame(row["holdout_table"])
    train = warehouse.read_frame(row["train_table"])
    assert len(hold) == 60 and len(train) == 240
    # the split is a partition of the source rows
    key = lambda df: sorted(map(tuple, df.astype(object).where(df.notna(), "<null>").astype(str).to_numpy()))  # noqa: E731
    assert key(pd.concat([train, hold])) == key(adult_table)

    code, g, err = run(cli, "generate", "--model", model_id, "--rows", "80", "--table", "adult_synth",
                       "--seed", "5")
    assert code == 0, err
    synth = warehouse.read_frame("adult_synth")
    assert len(synth) == 80 and list(synth.columns) == list(adult_table.columns)
    first_hash = warehouse.table_hash("adult_synth")

    # same seed, same table; --where keeps only matching rows (the value typed as text)
    code, g, err = run(cli, "generate", "--model", model_id, "--rows", "80", "--table", "adult_synth",
                       "--seed", "5", "--replace")
    assert code == 0 and warehouse.table_hash("adult_synth") == first_hash
    code, g, err = run(cli, "generate", "--model", model_id, "--rows", "30", "--table", "rich",
                       "--where", "income=>50K", "--seed", "1")
    assert code == 0, err
    assert (warehouse.read_frame("rich")["income"] == ">50K").all() and g["conditions"] == {"income": ">50K"}
    gens = warehouse.read_frame("_generations")
    assert sorted(gens["table_name"]) == ["adult_synth", "adult_synth", "rich"]

    code, m, _ = run(cli, "models")
    assert code == 0 and [x["model_id"] for x in m["models"]] == [model_id]


@pytest.mark.parametrize("args, message", [
    (["--table", "adult", "--generator", "nope"], "unknown generator"),
    (["--table", "nothing", "--generator", "cart"], "no rows"),
    (["--table", "with_null_col", "--generator", "cart"], "entirely null"),
    (["--table", "missing", "--generator", "cart"], "does not exist"),
    (["--table", "adult", "--generator", "cart", "--holdout", "1.5"], "holdout"),
    (["--table", "adult", "--generator", "cart", "--epochs", "3"], "epochs"),
    (["--table", "bad-name", "--generator", "cart"], "invalid table name"),
])
def test_train_bad_input_writes_nothing(cli, warehouse, settings, adult_table, args, message):
    before = warehouse.snapshot()
    code, r, err = run(cli, "train", *args)
    assert code == 2 and message in err and r["ok"] is False
    assert warehouse.snapshot() == before
    assert not settings.models_dir.exists() or not any(settings.models_dir.iterdir())


@pytest.fixture
def trained(warehouse, settings, adult_table):
    """A cart model trained through the library path (no flow run needed for the bad-input cases)."""
    from flows.train import train_model

    return train_model(str(settings.db_path), str(settings.models_dir), "adult", "cart", {}, 0, 0.2)


@pytest.mark.parametrize("args, message", [
    (["--rows", "0"], "--rows"),
    (["--rows", "-4"], "--rows"),
    (["--rows", "10", "--model", "adult_cart_nope"], "unknown model id"),
    (["--rows", "10", "--where", "Klass=1"], "unknown column"),
    (["--rows", "10", "--where", "income=maybe"], "impossible"),
    (["--rows", "10", "--where", "income"], "bad --where"),
    (["--rows", "10", "--table", "adult"], "never writes over it"),
    (["--rows", "10", "--table", "ADULT"], "never writes over it"),
    (["--rows", "10", "--table", "anomaly_scores"], "reserved"),
    (["--rows", "10", "--table", "9lives"], "invalid table name"),
])
def test_generate_bad_input_writes_nothing(cli, warehouse, trained, args, message):
    before = warehouse.snapshot()
    argv = ["generate", "--model", trained["model_id"], "--table", "out", *args]
    code, r, err = run(cli, *argv)
    assert code == 2 and message in err, err
    assert warehouse.snapshot() == before


def test_refusing_to_overwrite_the_source_happens_in_the_transaction(warehouse, settings, trained):
    from flows.errors import TableExists
    from flows.generate import publish_synthetic

    before = warehouse.snapshot()
    synthetic = warehouse.read_frame("adult").iloc[:10]
    with pytest.raises(TableExists):
        with warehouse.transaction() as con:
            publish_synthetic(settings, con, "Adult", synthetic, trained)
    assert warehouse.snapshot() == before


def test_pipeline_stages_train_then_generate(cli, warehouse, adult_small, tmp_path, report_only_config):
    import yaml

    src = tmp_path / "adult.csv"
    adult_small.iloc[:200].to_csv(src, index=False)
    config = tmp_path / "p.yaml"
    config.write_text(yaml.safe_dump({
        "stages": ["ingest", "train", "generate"],
        "ingest": [{"source": str(src), "kind": "tabular", "table": "adult"}],
        "train": {"models": [{"table": "adult", "generator": "cart", "seed": 1}]},
        "generate": {"tables": [{"source_table": "adult", "generator": "cart", "rows": 50, "table": "adult_synth"}]},
        "quality": yaml.safe_load(report_only_config.read_text())["quality"],
    }))
    code, out, err = cli(["run", "--config", config, "--json"])
    assert code == 0, err
    stages = json.loads(out.strip().splitlines()[-1])["stages"]
    assert stages["train"]["models"][0]["train_rows"] == 160
    assert stages["generate"]["tables"][0]["rows"] == 50
    assert len(warehouse.read_frame("adult_synth")) == 50

"""Shared fixtures: an isolated data dir per test, one Prefect home per session, small real data frames."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="synthwatch-tests-"))

# Before anything imports prefect, sdv or torch: keep their state out of the home dir and off the network.
os.environ["SYNTHWATCH_PREFECT_HOME"] = str(_SESSION_DIR / "prefect")
os.environ.setdefault("SYNTHWATCH_BUSY_TIMEOUT", "5")
# Flows run on an ephemeral server inside the test process; no test leaves a background server behind (the one
# test of the automatic local server turns it on for its own subprocesses).
os.environ["SYNTHWATCH_AUTO_SERVER"] = "0"
from flows.prefect_env import configure_prefect  # noqa: E402

configure_prefect(_SESSION_DIR / "prefect", _SESSION_DIR)


def raw_file(dataset: str, name: str) -> Path:
    """A file of a fetched real data set, fetching it into data/raw/ on first use."""
    path = ROOT / "data" / "raw" / dataset / name
    if not path.is_file():
        from flows.datasets import fetch

        fetch(dataset, ROOT / "data" / "raw")
    return path


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    monkeypatch.setenv("SYNTHWATCH_DATA_DIR", str(d))
    monkeypatch.delenv("SYNTHWATCH_DB", raising=False)
    return d


@pytest.fixture
def settings(data_dir):
    from flows.config import Settings

    return Settings.from_env(data_dir=data_dir)


@pytest.fixture
def warehouse(settings):
    from flows.warehouse import Warehouse

    return Warehouse(settings.db_path)


@pytest.fixture
def cli(data_dir, capsys):
    """Run the CLI in-process: cli([...]) -> (exit_code, stdout, stderr)."""
    from flows.cli import main

    def run(argv: list[str]) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def adult_frame():
    import pandas as pd

    return pd.read_csv(raw_file("adult", "adult.csv"))


@pytest.fixture
def adult_small(adult_frame):
    """600 real Adult rows (a fresh copy per test)."""
    return adult_frame.sample(600, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="session")
def creditcard_frame():
    import duckdb

    path = str(raw_file("creditcard", "creditcard.csv")).replace("'", "''")
    # Every 145th normal transaction and the first 50 frauds, in file order: the same rows on every machine.
    return duckdb.execute(
        f"WITH t AS (SELECT *, row_number() OVER () AS rn FROM read_csv('{path}')) "
        f"(SELECT * EXCLUDE (rn) FROM t WHERE Class = 0 AND rn % 145 = 0 ORDER BY rn LIMIT 1950) "
        f"UNION ALL (SELECT * EXCLUDE (rn) FROM t WHERE Class = 1 ORDER BY rn LIMIT 50)"
    ).df()


@pytest.fixture
def creditcard_small(creditcard_frame):
    """2,000 real transactions: 1,950 normal and 50 frauds, sorted by Time."""
    return creditcard_frame.sort_values("Time").reset_index(drop=True)


@pytest.fixture(scope="session")
def raw_data():
    """raw_data('adult', 'adult.csv') -> path of a fetched real data file."""
    return raw_file


# A gate that only reports (fidelity and privacy thresholds off, expectations wide): for tests of the generate
# mechanics on tiny data, where sampling noise alone would fail the real thresholds.
REPORT_ONLY_QUALITY = {"seed": 0, "thresholds": {
    "accuracy": None, "discriminator_auc": None, "dcr_share": None, "nndr_ratio": None, "mia_auroc": None,
    "utility_drop": None, "exact_copy_rate": 1.0, "null_tolerance": 1.0, "range_tolerance": 1.0,
    "hard_range_margin": 100.0}}


@pytest.fixture
def use_quality(tmp_path, monkeypatch):
    """use_quality({...}) -> path of a pipeline config with that quality section, used by every later command."""
    import yaml

    from flows.config import load_config

    def apply(quality: dict, name: str = "quality.yaml"):
        config = load_config()
        config["quality"] = quality
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config))
        monkeypatch.setenv("SYNTHWATCH_CONFIG", str(path))
        return path

    return apply


@pytest.fixture
def report_only_config(use_quality):
    """A pipeline config whose quality gate reports without failing."""
    return use_quality(REPORT_ONLY_QUALITY, "report-only.yaml")


@pytest.fixture
def restore_export():
    """restore_export(folder, db_path) -> an open connection to db_path rebuilt from a DuckDB `EXPORT DATABASE`
    fixture folder (its schema.sql and load.sql, which name their files `export_vN/...`)."""
    import duckdb

    def restore(folder: Path, db_path: Path):
        db_path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(db_path))
        for script in ("schema.sql", "load.sql"):
            sql = (folder / script).read_text()
            sql = sql.replace(f"'export_{folder.name.split('_')[-1]}/", f"'{folder}/")
            for statement in filter(str.strip, sql.split(";\n")):
                con.execute(statement)
        return con

    return restore

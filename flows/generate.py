"""Generate flow: load a trained model, sample rows (optionally under conditions), publish them as a table."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.states import Failed

from flows.errors import SynthwatchError
from flows.warehouse import Warehouse, validate_table_name

GENERATIONS_DDL = """
CREATE TABLE IF NOT EXISTS main._generations (
    table_name VARCHAR NOT NULL,
    model_id VARCHAR NOT NULL,
    rows BIGINT NOT NULL,
    seed BIGINT,
    conditions JSON,
    created_at TIMESTAMP NOT NULL
)
"""


class GenerateError(SynthwatchError):
    """Generation input that cannot be used: a row count, a --where clause, a target table."""


def parse_where(where: str | None) -> dict[str, str]:
    """`"Class=1"` or `"Class=1,sex=Male"` -> {column: value as text}; the model coerces and checks the values."""
    if where is None or not where.strip():
        return {}
    out: dict[str, str] = {}
    for part in where.split(","):
        col, sep, value = part.partition("=")
        col, value = col.strip(), value.strip()
        if not sep or not col or not value:
            raise GenerateError(f"bad --where {where!r}: write column=value, several joined by commas "
                                "(e.g. --where \"Class=1\")")
        out[col] = value.strip("'\"")
    return out


def check_generate_args(rows: int, table: str, where: str | None) -> dict[str, str]:
    if isinstance(rows, bool) or not isinstance(rows, int) or rows <= 0:
        raise GenerateError(f"--rows must be a positive whole number, got {rows}")
    validate_table_name(table)
    return parse_where(where)


def publish_synthetic(settings, con, table: str, df: pd.DataFrame, model_row: dict) -> dict:
    """Write the synthetic table and its `_generations` row on an open transaction `con`.

    The one place a synthetic table reaches the warehouse (the quality gate wraps this step).
    """
    validate_table_name(table)
    if table == model_row.get("source_table"):
        raise GenerateError(f"refusing to overwrite the real table {table} with synthetic rows; choose another "
                            "--table")
    con.execute(GENERATIONS_DDL)
    Warehouse.write_frame(con, table, df, mode="replace")
    meta = model_row.get("_generation", {})
    con.execute("INSERT INTO main._generations VALUES (?, ?, ?, ?, ?, ?)",
                [table, model_row["model_id"], len(df), meta.get("seed"), json.dumps(meta.get("conditions") or {}),
                 datetime.now(timezone.utc).replace(tzinfo=None)])
    return {"table": table, "rows": len(df), "schema": "main", "published": True}


def sample_model(model_row: dict, rows: int, seed: int | None, conditions: dict) -> pd.DataFrame:
    """Load the model from its directory (no pickle) and draw the rows."""
    from generators.base import Generator

    gen = Generator.load(model_row["path"])
    return gen.sample(rows, seed=seed, conditions=conditions or None)


def generate_table(settings, model_id: str, rows: int, table: str, seed: int | None = None,
                   where: str | None = None, progress=None) -> dict:
    """Sample from a trained model and publish the table in one transaction; nothing is written on failure."""
    from flows.train import get_model_row

    conditions = check_generate_args(rows, table, where)
    model_row = get_model_row(settings, model_id)
    started = time.perf_counter()
    df = sample_model(model_row, rows, seed, conditions)
    sample_seconds = time.perf_counter() - started
    if progress is not None:
        progress.info("sampled %d rows from %s in %.1fs", len(df), model_id, sample_seconds)
    wh = Warehouse(settings.db_path)
    row = dict(model_row, _generation={"seed": seed, "conditions": conditions})
    with wh.transaction() as con:
        published = publish_synthetic(settings, con, table, df, row)
    return {**published, "model_id": model_id, "generator": model_row["generator"], "seed": seed,
            "conditions": conditions, "sample_seconds": round(sample_seconds, 3),
            "columns": [str(c) for c in df.columns]}


@task(cache_policy=NONE)
def generate_task(db_path: str, data_dir: str, model_id: str, rows: int, table: str, seed: int | None,
                  where: str | None) -> dict:
    """Sample from one trained model into one table."""
    from flows.config import Settings
    from flows.train import user_errors

    settings = Settings.from_env(db=db_path, data_dir=data_dir)
    try:
        return generate_table(settings, model_id, rows, table, seed, where, progress=get_run_logger())
    except user_errors() as exc:
        return {"error": str(exc), "error_type": type(exc).__name__,
                "exit_code": getattr(exc, "exit_code", 2)}


@flow(name="generate", log_prints=False)
def generate_flow(db_path: str, data_dir: str, model_id: str, rows: int, table: str, seed: int | None = None,
                  where: str | None = None):
    """Generate a synthetic table from a trained model."""
    logger = get_run_logger()
    result = generate_task(db_path, data_dir, model_id, rows, table, seed, where)
    if "error" in result:
        logger.info("generation into %s failed: %s", table, result["error"])
        return Failed(message=result["error"], data=result)
    logger.info("wrote %d synthetic rows to %s from model %s", result["rows"], table, model_id)
    return result


def run_generate(settings, model_id: str, rows: int, table: str, *, seed: int | None = None,
                 where: str | None = None) -> dict:
    """Check the cheap things (rows, table name, --where syntax, model id), then run the generate flow."""
    from flows.commands import state_result
    from flows.train import get_model_row

    conditions = check_generate_args(rows, table, where)
    row = get_model_row(settings, model_id)
    if table == row["source_table"]:
        raise GenerateError(f"refusing to overwrite the real table {table} with synthetic rows; choose another "
                            "--table")
    if conditions:  # a missing column or impossible value fails here, before any flow starts
        from generators.base import Generator

        Generator.load(row["path"]).codec_.check_conditions(conditions)
    state = generate_flow(str(settings.db_path), str(settings.data_dir), model_id, rows, table, seed, where,
                          return_state=True)
    return state_result(state)


def pipeline_stage(settings, stage_config: dict) -> dict:
    """`synthwatch run` stage: sample from the newest model of each configured source table and generator."""
    from flows.train import list_models

    done = []
    for job in (stage_config or {}).get("tables") or []:
        source, generator = job["source_table"], job.get("generator", "autoregressive")
        models = [m for m in list_models(settings) if m["source_table"] == source and m["generator"] == generator]
        if not models:
            raise GenerateError(f"no {generator} model trained on {source}; add it to the train stage")
        result = run_generate(settings, models[0]["model_id"], int(job.get("rows", 1000)), job["table"],
                              seed=job.get("seed"), where=job.get("where"))
        done.append({k: result[k] for k in ("table", "rows", "model_id", "sample_seconds")})
    return {"tables": done}

"""Generate flow: load a trained model, sample rows (optionally under conditions), publish them as a table."""

from __future__ import annotations

import json
import os
import time

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from flows.bookkeeping import insert_row, now_utc, record_table
from flows.errors import GateFailed, SynthwatchError
from flows.warehouse import Warehouse, check_write_target, validate_table_name

# The checks a person looks at first; every check is in the report and in `_quality_reports`.
HEADLINE_CHECKS = ("accuracy", "discriminator_auc", "dcr_share", "exact_copy_rate", "mia_auroc", "utility_drop")


class GenerateError(SynthwatchError):
    """Generation input that cannot be used: a row count, a --where clause, a target table."""


def parse_where(where: str | None) -> dict:
    """`"Class=1"`, `"Class=1,sex=Male"` or `"Amount>100,Class=1"` -> conditions (values as text, ranges as
    `generators.conditions.Range`); the model types and checks the values."""
    from generators.conditions import parse_conditions
    from generators.errors import ConditionError

    try:
        return parse_conditions(where)
    except ConditionError as exc:
        raise GenerateError(f"bad --where {where!r}: {exc}") from None


def conditions_text(conditions: dict) -> str:
    """Conditions as the text --where takes (for messages)."""
    from generators.conditions import format_conditions

    return format_conditions(conditions) if conditions else ""


def conditions_json(conditions: dict) -> dict:
    """Conditions as JSON for the warehouse's records and --json: {column: value, or a range's bounds}."""
    from generators.conditions import Range

    return {c: (v.to_dict() if isinstance(v, Range) else v) for c, v in (conditions or {}).items()}


def max_rows() -> int:
    """The most rows one generate may ask for (`SYNTHWATCH_MAX_ROWS`, default 10 million)."""
    raw = os.environ.get("SYNTHWATCH_MAX_ROWS", "10000000")
    try:
        value = int(raw)
    except ValueError:
        raise GenerateError(f"SYNTHWATCH_MAX_ROWS must be a whole number, got {raw!r}") from None
    return max(value, 1)


def check_generate_args(rows: int | None, table: str, where: str | None, *, sequences: int | None = None,
                        length: int | None = None) -> dict[str, str]:
    for flag, value in (("--rows", rows), ("--sequences", sequences), ("--length", length)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise GenerateError(f"{flag} must be a positive whole number, got {value}")
    if rows is not None and rows > max_rows():
        raise GenerateError(f"--rows {rows:,} is more than one generate may write ({max_rows():,}); ask for fewer "
                            "rows, or raise SYNTHWATCH_MAX_ROWS if the machine has the memory")
    validate_table_name(table, writing=True)
    return parse_where(where)


def model_kind(model_row: dict) -> str:
    """The kind of data a model learned (its generator's kind in the registry)."""
    from generators.registry import get_entry

    return get_entry(model_row["generator"]).kind


def check_counts(kind: str, rows: int | None, sequences: int | None, length: int | None) -> None:
    """Refuse count flags that do not fit the model's kind, naming the ones that do."""
    if kind == "timeseries":
        if rows is not None:
            raise GenerateError("this model generates sequences: give --sequences N (and --length L for a model of "
                                "one long series), not --rows")
    elif sequences is not None or length is not None:
        raise GenerateError(f"--sequences and --length are for series models; this model generates {kind} data: "
                            f"give --rows N")


def publish_synthetic(settings, con, table: str, df: pd.DataFrame, model_row: dict,
                      gate: dict | None = None, replace: bool = False) -> dict:
    """Write the synthetic table and its `_generations` row on an open transaction `con`.

    The one place a synthetic table reaches the warehouse: with a gate result, a table that failed goes to the
    `quarantine` schema only and the gate's verdict is recorded in `_quality_reports` in the same transaction.
    """
    from flows.gate import quarantine_or_publish, record_gate

    check_write_target(con, table, command="generate", replace=replace)  # decided here, inside the transaction
    passed = True if gate is None else bool(gate["passed"])
    schema = quarantine_or_publish(Warehouse(settings.db_path), con, table, df, passed)
    meta = model_row.get("_generation", {})
    insert_row(con, "_generations", {
        "table_name": table, "model_id": model_row["model_id"], "rows": len(df), "seed": meta.get("seed"),
        "conditions": json.dumps(conditions_json(meta.get("conditions") or {})), "published_schema": schema,
        "created_at": now_utc()})
    record_table(con, table, schema=schema, kind=meta.get("kind", "tabular"), origin="generated",
                 detail={"model_id": model_row["model_id"], "source_table": model_row.get("source_table"),
                         "passed_gate": passed, **(meta.get("roles") or {})}, run_id=meta.get("run_id"))
    if gate is not None:
        record_gate(con, gate, published_schema=schema, run_id=meta.get("run_id"))
    return {"table": table, "rows": len(df), "schema": schema, "published": schema == "main"}


def read_training_split(settings, model_row: dict) -> tuple[pd.DataFrame, pd.DataFrame | None, dict]:
    """The model's training rows, its holdout (None when it kept none) and the training table's catalog detail."""
    from flows.bookkeeping import catalog_entry

    wh = Warehouse(settings.db_path)
    real = wh.read_frame(model_row["train_table"], internal=True)
    holdout = wh.read_frame(model_row["holdout_table"], internal=True) if model_row.get("holdout_table") else None
    with wh.read() as con:
        entry = catalog_entry(con, model_row["train_table"]) or {}
    return real, holdout, entry.get("detail") or {}


def gate_synthetic(settings, model_row: dict, table: str, df: pd.DataFrame, conditions: dict, *,
                   gen=None, split: tuple | None = None, roles: dict | None = None) -> dict:
    """Run the quality gate of a new synthetic table against the model's training rows and holdout.

    Conditional samples are compared with the real rows (sequences, images) that meet the same conditions.
    """
    from flows.gate import quality_config, run_gate

    qcfg = quality_config(settings)
    real, holdout, detail = split if split is not None else read_training_split(settings, model_row)
    kind = model_kind(model_row)

    typed = None
    if conditions and kind == "tabular":  # typed by the model, ranges included, as the sample met them
        if gen is None:
            from generators.base import Generator

            gen = Generator.load(model_row["path"])
        typed = gen.check_conditions(conditions)

    def matching(frame: pd.DataFrame | None) -> pd.DataFrame | None:
        if frame is None or not conditions:
            return frame
        if typed is not None:
            from generators.codec import matches

            return frame[matches(frame, typed)].reset_index(drop=True)
        mask = pd.Series(True, index=frame.index)
        for column, value in conditions.items():
            mask &= frame[column].astype(str) == str(value)
        return frame[mask].reset_index(drop=True)

    # The expectation suite describes the population: every real row at hand, unconditioned.
    full_real = real if holdout is None else pd.concat([real, holdout], ignore_index=True)
    real, holdout = matching(real), matching(holdout)
    if len(real) < 2:
        raise GenerateError(f"only {len(real)} training row(s) meet {conditions_text(conditions)}: too few to "
                            "check the synthetic data against; train on more data or relax --where")
    if holdout is not None and len(holdout) < 2:
        holdout = None
    source = {"model_id": model_row["model_id"], "generator": model_row["generator"],
              "real": model_row["train_table"], "holdout": model_row.get("holdout_table"),
              "source_table": model_row["source_table"], "conditions": conditions_json(conditions),
              "command": "generate"}
    if kind != "tabular":
        return run_gate(settings, real, df, holdout, table=table, thresholds=qcfg["kind_thresholds"][kind],
                        source=source, seed=qcfg["seed"], kind=kind, detail=detail, synthetic_roles=roles)
    target = qcfg["targets"].get(model_row["source_table"])
    if target is not None and (target in conditions or target not in real.columns):
        target = None  # a conditioned target has one class: no utility to measure
    if gen is None:
        from generators.base import Generator

        gen = Generator.load(model_row["path"])
    # The model's own schema says which columns are ids (generated fresh, so checked for uniqueness).
    id_columns = [c.name for c in gen.schema_.columns if c.kind == "id"]
    return run_gate(settings, real, df, holdout, table=table, thresholds=qcfg["thresholds"], source=source,
                    target=target, seed=qcfg["seed"], id_columns=id_columns, expectation_reference=full_real)


def sample_model(gen, kind: str, count: int, seed: int | None, conditions: dict, length: int | None = None,
                 start_id: int = 0) -> tuple[pd.DataFrame, dict]:
    """Draw `count` items (rows, sequences, images) from a loaded model, as a table in the kind's stored layout,
    with the roles its catalog entry records (a series' time and entity columns)."""
    from flows.kinds import to_frame

    extra = {"length": length} if length is not None else {}
    data = gen.sample(count, seed=seed, conditions=conditions or None, **extra)
    roles = {"time_column": data.time, "id_column": data.entity} if kind == "timeseries" else {}
    return to_frame(kind, data, start_id=start_id), roles


def generate_table(settings, model_id: str, rows: int | None, table: str, seed: int | None = None,
                   where: str | None = None, progress=None, replace: bool = False, sequences: int | None = None,
                   length: int | None = None) -> dict:
    """Sample from a trained model and publish the table in one transaction; nothing is written on failure."""
    from flows.kinds import count_of
    from flows.train import get_model_row
    from generators.base import Generator

    conditions = check_generate_args(rows, table, where, sequences=sequences, length=length)
    model_row = get_model_row(settings, model_id)
    kind = model_kind(model_row)
    check_counts(kind, rows, sequences, length)
    check_target(settings, table, replace)
    gen = Generator.load(model_row["path"])  # once per generate: sampling and the gate share it
    split = read_training_split(settings, model_row)
    count = sequences if kind == "timeseries" else rows
    if count is None:  # as many as the model learned (a long series: as many windows, at most 200 segments)
        if kind == "timeseries":
            learned = getattr(gen, "n_train_sequences_", None) or count_of(kind, split[0], split[2])
            count = int(learned if split[2].get("id_column") else min(learned, 200))
        else:
            count = int(model_row["train_rows"])
    # how the sample meets --where: natively (conditioned columns sampled first) or by rejection (said so)
    method = gen.conditioning_method(conditions) if hasattr(gen, "conditioning_method") else (
        "native" if conditions else "none")
    started = time.perf_counter()
    df, roles = sample_model(gen, kind, count, seed, conditions, length)
    if len(df) > max_rows():
        raise GenerateError(f"the sample has {len(df):,} rows, more than one generate may write ({max_rows():,}); "
                            "ask for fewer or shorter sequences, or raise SYNTHWATCH_MAX_ROWS")
    sample_seconds = time.perf_counter() - started
    if progress is not None:
        progress.info("sampled %d %s from %s in %.1fs", count, {"timeseries": "sequences", "image": "images"}.get(
            kind, "rows"), model_id, sample_seconds)
    gate = gate_synthetic(settings, model_row, table, df, conditions, gen=gen, split=split, roles=roles)
    from flows.gate import inconclusive_checks
    if progress is not None:
        progress.info("quality gate of %s: %s (report %s)", table, "passed" if gate["passed"] else "FAILED",
                      gate["report_path"])
    wh = Warehouse(settings.db_path)
    from prefect.runtime import flow_run

    row = dict(model_row, _generation={"seed": seed, "conditions": conditions, "kind": kind, "roles": roles,
                                       "run_id": str(flow_run.get_id() or "")})
    with wh.transaction() as con:
        published = publish_synthetic(settings, con, table, df, row, gate=gate, replace=replace)
    return {**published, "kind": kind, "items": count, "model_id": model_id, "generator": model_row["generator"],
            "seed": seed, "conditions": conditions_json(conditions), "where": conditions_text(conditions),
            "conditioning": method,
            # how a native condition is resampled to the model's joint (autoregressive: "fast", "exact", "proposal")
            "conditioning_mode": getattr(gen, "conditioning", None) if method == "native" else None,
            "sample_seconds": round(sample_seconds, 3),
            "columns": [str(c) for c in df.columns],
            "quality": {"passed": gate["passed"], "failing": gate["failing"], "report_path": gate["report_path"],
                        "report_id": gate["report_id"], "inconclusive": inconclusive_checks(gate),
                        "values": {c["name"]: c["value"] for c in gate["checks"] if c["name"] in HEADLINE_CHECKS}}}


@task(cache_policy=NONE)
def generate_task(db_path: str, data_dir: str, model_id: str, rows: int | None, table: str, seed: int | None,
                  where: str | None, config_path: str | None = None, replace: bool = False,
                  sequences: int | None = None, length: int | None = None) -> dict:
    """Sample from one trained model into one table; a failed gate raises GateFailed after the quarantine write."""
    from flows.config import Settings
    from flows.gate import failure_message

    settings = Settings.from_env(db=db_path, data_dir=data_dir, config=config_path)
    result = generate_table(settings, model_id, rows, table, seed, where, progress=get_run_logger(), replace=replace,
                            sequences=sequences, length=length)
    if not result["quality"]["passed"]:
        gate = {"table": table, **result["quality"]}
        raise GateFailed(f"{failure_message(gate)}; written to quarantine.{table}, not published", result=result)
    return result


@flow(name="generate", log_prints=False)
def generate_flow(db_path: str, data_dir: str, model_id: str, rows: int | None, table: str, seed: int | None = None,
                  where: str | None = None, config_path: str | None = None, replace: bool = False,
                  sequences: int | None = None, length: int | None = None) -> dict:
    """Generate a synthetic table from a trained model and gate it: publish if it passes, else quarantine."""
    result = generate_task(db_path, data_dir, model_id, rows, table, seed, where, config_path, replace, sequences,
                           length)
    get_run_logger().info("wrote %d synthetic rows to %s from model %s", result["rows"], table, model_id)
    return result


def check_target(settings, table: str, replace: bool) -> None:
    """Refuse up front a --table that generate may not write (ingested data, a table made elsewhere, or one it
    made earlier without --replace); the same check decides again inside the write transaction."""
    wh = Warehouse(settings.db_path)
    if not settings.db_path.exists():
        return
    with wh.read() as con:
        check_write_target(con, table, command="generate", replace=replace)


def run_generate(settings, model_id: str, rows: int | None, table: str, *, seed: int | None = None,
                 where: str | None = None, replace: bool = False, sequences: int | None = None,
                 length: int | None = None) -> dict:
    """Check the cheap things (counts, table name, --where syntax, model id), then run the generate flow."""
    from flows.commands import run_flow, state_result
    from flows.train import get_model_row

    conditions = check_generate_args(rows, table, where, sequences=sequences, length=length)
    row = get_model_row(settings, model_id)
    check_counts(model_kind(row), rows, sequences, length)
    check_target(settings, table, replace)
    if conditions:  # a missing column or impossible value fails here, before any flow starts
        from generators.base import Generator

        Generator.load(row["path"]).check_conditions(conditions)
    from flows.gate import quality_config

    quality_config(settings)  # a bad threshold in the config fails here, before any flow starts
    config_path = str(settings.config_path) if settings.config_path else None
    state = run_flow(generate_flow, str(settings.db_path), str(settings.data_dir), model_id, rows, table, seed,
                     where, config_path, replace, sequences, length)
    return state_result(state)


def pipeline_stage(settings, stage_config: dict) -> dict:
    """`synthwatch run` stage: sample from the newest model of each configured source table and generator."""
    from flows.kinds import table_kind
    from flows.train import list_models
    from generators.registry import default_generator

    done = []
    for job in (stage_config or {}).get("tables") or []:
        source, generator = job["source_table"], job.get("generator")
        if generator is None:
            generator = default_generator(table_kind(Warehouse(settings.db_path), source)[0])
        models = [m for m in list_models(settings) if m["source_table"] == source and m["generator"] == generator]
        if not models:
            raise GenerateError(f"no {generator} model trained on {source}; add it to the train stage")
        # The pipeline owns its synthetic tables: each run replaces the table its previous run generated
        # (never an ingested one: check_write_target refuses that whatever `replace` says).
        try:
            result = run_generate(settings, models[0]["model_id"], job.get("rows"), job["table"],
                                  seed=job.get("seed"), where=job.get("where"),
                                  replace=bool(job.get("replace", True)), sequences=job.get("sequences"),
                                  length=job.get("length"))
        except GateFailed as exc:
            # the table is in quarantine, never published; with `allow_quarantine` the run records that and goes on
            if not job.get("allow_quarantine") or exc.result is None:
                raise
            result = exc.result
        done.append({**{k: result[k] for k in ("table", "rows", "model_id", "sample_seconds")},
                     "published": result["quality"]["passed"],
                     "quality": {k: result["quality"].get(k) for k in ("passed", "failing", "values", "report_path")}})
    return {"tables": done}

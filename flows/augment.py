"""Augment a rare class of a warehouse table: real rows plus synthetic rows of the rare value, flagged, gated.

The generator learns the whole table with the target first in its column order, so it samples the rare value
natively (`generators.augment`); the synthetic part is gated against the real rows of that value; the output table
holds every real row (flag False) and the synthetic rows (flag True). A failed gate writes the output to the
quarantine schema only, like `generate`.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from flows.bookkeeping import now_utc
from flows.errors import GateFailed, SynthwatchError
from flows.warehouse import Warehouse, check_write_target, validate_table_name


class AugmentError(SynthwatchError):
    """Augmentation that cannot run: a table of another kind, a missing target, a bad size."""


def check_augment_args(settings, table: str, target: str, out: str, rows: int | None, ratio: float | None,
                       replace: bool) -> None:
    """The cheap checks, before any flow starts: names, the table's kind and columns, the size, the target table."""
    from flows.kinds import table_kind

    validate_table_name(table)
    validate_table_name(out, writing=True)
    if (rows is None) == (ratio is None):
        raise AugmentError("give exactly one of --rows N and --ratio R")
    if rows is not None and rows <= 0:
        raise AugmentError(f"--rows must be a positive whole number, got {rows}")
    if ratio is not None and not ratio > 0:
        raise AugmentError(f"--ratio must be positive, got {ratio}")
    wh = Warehouse(settings.db_path)
    if not wh.table_exists(table):
        wh.read_frame(table)  # TableNotFound naming the tables
    kind, _ = table_kind(wh, table)
    if kind != "tabular":
        raise AugmentError(f"table {table} holds {kind} data; augment adds rows to tables")
    with wh.read() as con:
        columns = [r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()]
        if target not in columns:
            raise AugmentError(f"target column {target!r} is not in table {table}; columns: {', '.join(columns)}")
        check_write_target(con, out, command="generate", replace=replace)


def augment_table(settings, table: str, target: str, out: str, *, value: str | None = None, rows: int | None = None,
                  ratio: float | None = None, generator: str = "autoregressive", seed: int = 0,
                  replace: bool = False, progress=None) -> dict:
    """Fit, sample the rare value natively, gate the synthetic part, write real + synthetic rows in one transaction."""
    from flows.gate import quality_config, quarantine_or_publish, record_gate, run_gate
    from generators.augment import FLAG_COLUMN, copied_rows, fit_for_augmentation, rare_value, synthesize_rare

    wh = Warehouse(settings.db_path)
    frame = wh.read_frame(table)
    if FLAG_COLUMN in frame.columns:
        raise AugmentError(f"table {table} already has a column {FLAG_COLUMN!r}: it looks augmented already")
    started = time.perf_counter()
    gen = fit_for_augmentation(frame, target, generator, seed=seed)
    fit_seconds = time.perf_counter() - started
    wanted = gen.check_conditions({target: rare_value(frame, target) if value is None else value})[target]
    real_rare = frame[frame[target] == wanted].reset_index(drop=True)
    n_rows = rows if rows is not None else max(int(round(ratio * len(real_rare))), 1)
    started = time.perf_counter()
    synthetic = synthesize_rare(gen, target, wanted, n_rows, seed=seed, real=frame)
    sample_seconds = time.perf_counter() - started
    if progress is not None:
        progress.info("%d synthetic rows of %s=%s in %.1fs (fit %.1fs)", len(synthetic), target, wanted,
                      sample_seconds, fit_seconds)
    copies = int(copied_rows(synthetic, frame).sum())
    if len(real_rare) < 2:
        raise AugmentError(f"table {table} has {len(real_rare)} row(s) with {target}={wanted}: too few to learn "
                           "and check them against")
    qcfg = quality_config(settings)
    gate = run_gate(settings, real_rare, synthetic, None, table=out, thresholds=qcfg["thresholds"],
                    source={"command": "augment", "source_table": table, "target": target, "value": str(wanted),
                            "generator": generator}, seed=qcfg["seed"], expectation_reference=frame)
    out_frame = pd.concat([frame.assign(**{FLAG_COLUMN: False}), synthetic.assign(**{FLAG_COLUMN: True})],
                          ignore_index=True)
    from flows.bookkeeping import record_table
    from prefect.runtime import flow_run

    run_id = str(flow_run.get_id() or "")
    with wh.transaction() as con:
        check_write_target(con, out, command="generate", replace=replace)  # decided here
        schema = quarantine_or_publish(wh, con, out, out_frame, bool(gate["passed"]))
        record_table(con, out, schema=schema, kind="tabular", origin="generated", run_id=run_id,
                     detail={"augmented_from": table, "target": target, "value": str(wanted),
                             "synthetic_rows": len(synthetic), "flag_column": FLAG_COLUMN, "generator": generator,
                             "passed_gate": bool(gate["passed"]), "created_at": str(now_utc())})
        record_gate(con, gate, published_schema=schema, run_id=run_id)
    from flows.gate import inconclusive_checks

    result = {"table": out, "schema": schema, "published": schema == "main", "source_table": table,
              "target": target, "value": str(wanted), "real_rows": len(frame), "real_rare_rows": len(real_rare),
              "synthetic_rows": len(synthetic), "exact_copies": copies, "flag_column": FLAG_COLUMN,
              "fit_seconds": round(fit_seconds, 3), "sample_seconds": round(sample_seconds, 3),
              "quality": {"passed": gate["passed"], "failing": gate["failing"], "report_path": gate["report_path"],
                          "inconclusive": inconclusive_checks(gate)}}
    if not gate["passed"]:
        from flows.gate import failure_message

        raise GateFailed(f"{failure_message(gate)}; written to quarantine.{out}, not published", result=result)
    return result


@task(cache_policy=NONE)
def augment_task(db_path: str, data_dir: str, config_path: str | None, options: dict[str, Any]) -> dict:
    """Augment one table's rare class; a failed gate raises GateFailed after the quarantine write."""
    from flows.config import Settings

    settings = Settings.from_params(db_path, data_dir, config_path)
    return augment_table(settings, progress=get_run_logger(), **options)


@flow(name="augment", log_prints=False)
def augment_flow(db_path: str, data_dir: str, config_path: str | None, options: dict[str, Any]) -> dict:
    """Real rows plus gated synthetic rows of a rare value, flagged, in a new table."""
    return augment_task(db_path, data_dir, config_path, options)

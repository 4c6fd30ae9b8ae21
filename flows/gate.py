"""The quality gate: evaluate a synthetic table, write its HTML report, record it, publish or quarantine it."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.runtime import flow_run

from flows.bookkeeping import forget_table, insert_row, now_utc as _now
from flows.config import Settings
from flows.errors import GateFailed
from flows.warehouse import Warehouse, qualified, validate_table_name

def quality_config(settings: Settings) -> dict[str, Any]:
    """The `quality:` section of the pipeline config: thresholds (validated now, so a typo fails fast), target."""
    from quality.gate import resolve_thresholds

    from flows.config_schema import suggest
    from flows.errors import ConfigError
    from quality.gate import DEFAULT_THRESHOLDS

    section = dict(settings.config.get("quality") or {})
    thresholds = dict(section.get("thresholds") or {})
    for key in thresholds:
        if key not in DEFAULT_THRESHOLDS:
            raise ConfigError(f"quality.thresholds.{key}: unknown threshold{suggest(key, list(DEFAULT_THRESHOLDS))}")
    resolve_thresholds(thresholds)
    kind_thresholds = {}
    for kind, (key, _) in KIND_GATES.items():
        given = dict(section.get(key) or {})
        known = list(_kind_defaults(kind)) if given else []
        for name in given:
            if name not in known:
                raise ConfigError(f"quality.{key}.{name}: unknown threshold{suggest(name, known)}")
        kind_thresholds[kind] = given
    return {"thresholds": thresholds, "kind_thresholds": kind_thresholds,
            "targets": dict(section.get("targets") or {}), "seed": int(section.get("seed", 0))}


# The gate of each kind beyond tables: (its config key under `quality:`, (evaluate, render, default thresholds)),
# names the `quality` package exports.
KIND_GATES = {
    "timeseries": ("sequence_thresholds",
                   ("evaluate_sequences", "render_sequence_report", "DEFAULT_SEQUENCE_THRESHOLDS")),
    "image": ("image_thresholds", ("evaluate_images", "render_image_report", "DEFAULT_IMAGE_THRESHOLDS")),
}


def _kind_gate(kind: str):
    import quality

    return tuple(getattr(quality, n) for n in KIND_GATES[kind][1])


def _kind_defaults(kind: str) -> dict:
    return _kind_gate(kind)[2]


def _evaluate_kind(kind: str, real: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame | None,
                   detail: dict, thresholds: dict | None, seed: int, title: str, path: Path,
                   synthetic_roles: dict | None = None):
    """The gate of a series or image table: the kind's evaluation on the stored layouts, and its HTML report.

    A single long series is compared segment by segment: the real series (and its holdout, the series' last steps)
    cut into consecutive segments as long as the synthetic ones."""
    from flows.kinds import images_of, series_roles

    evaluate, render, _ = _kind_gate(kind)
    if kind == "timeseries":
        time, entity = series_roles(detail, real)
        if entity is None:
            from quality.sequence import segment_series

            entity = (synthetic_roles or {}).get("id_column") or "segment"
            length = int(synthetic.groupby(entity).size().max())
            real = segment_series(real, length, time=time, column=entity)
            # a holdout shorter than a segment is one shorter segment: too few to judge privacy, and said so
            holdout = (segment_series(holdout, min(length, len(holdout)), time=time, column=entity)
                       if holdout is not None and len(holdout) >= 2 else None)
        report = evaluate(real, synthetic, holdout, time=time, entity=entity, thresholds=thresholds, seed=seed)
        render(report, real, synthetic, time=time, entity=entity, title=title, path=path)
        return report
    r, s = images_of(real), images_of(synthetic)
    h = images_of(holdout) if holdout is not None else None
    report = evaluate(r.pixels, r.labels, s.pixels, s.labels, None if h is None else h.pixels,
                      None if h is None else h.labels, thresholds=thresholds, seed=seed)
    render(report, r.pixels, r.labels, s.pixels, s.labels, title=title, path=path)
    return report


def summary_markdown(result: dict[str, Any]) -> str:
    """The Prefect artifact: verdict, failing checks, and the gated checks as a table."""
    verdict = "PASSED" if result["passed"] else "FAILED"
    lines = [f"# Quality gate {verdict}: `{result['table']}`", "",
             f"Failing checks: {', '.join(result['failing']) or 'none'}", "",
             f"Report: `{result['report_path']}`", "",
             "| check | value | threshold | result |", "|---|---|---|---|"]
    for check in result["checks"]:
        if check["threshold"] is None and check["passed"]:
            continue
        if check["kind"] == "expectation" and check["passed"]:
            continue
        value = "—" if check["value"] is None else f"{check['value']:.4g}"
        bound = "—" if check["threshold"] is None else (
            ("≤ " if check["direction"] == "max" else "≥ ") + f"{check['threshold']:.4g}")
        lines.append(f"| {check['name']} | {value} | {bound} | {'pass' if check['passed'] else '**FAIL**'} |")
    n_expect = sum(1 for c in result["checks"] if c["kind"] == "expectation")
    n_expect_failed = sum(1 for c in result["checks"] if c["kind"] == "expectation" and not c["passed"])
    lines += ["", f"Expectations: {n_expect - n_expect_failed}/{n_expect} passed."]
    return "\n".join(lines)


def _artifact_key(table: str) -> str:
    return "quality-" + re.sub(r"[^a-z0-9-]+", "-", table.lower()).strip("-")


def run_gate(settings: Settings, real: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame | None, *,
             table: str, thresholds: dict | None, source: dict, target: str | None = None,
             seed: int = 0, id_columns: list[str] | None = None,
             expectation_reference: pd.DataFrame | None = None, kind: str = "tabular",
             detail: dict | None = None, synthetic_roles: dict | None = None) -> dict[str, Any]:
    """Evaluate `synthetic` against `real` (and `holdout`) with the gate of their kind, write the HTML report,
    publish a Prefect artifact when inside a flow run; return a plain dict (passed, failing, report_path...).

    Series and images are given in their stored layouts (`detail`: the series' catalog detail)."""
    report_id = uuid.uuid4().hex[:12]
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    path = settings.reports_dir / f"{table}-{_now():%Y%m%dT%H%M%S}-{report_id}.html"
    title = f"Quality report: {table}"
    if kind == "tabular":
        from quality import evaluate, render_report
        from quality.gate import resolve_thresholds

        report = evaluate(real, synthetic, holdout, thresholds=thresholds, target=target, seed=seed,
                          id_columns=id_columns, expectation_reference=expectation_reference)
        render_report(report, real, synthetic, title=title, path=path)
        resolved = resolve_thresholds(thresholds)
    else:
        report = _evaluate_kind(kind, real, synthetic, holdout, detail or {}, thresholds, seed, title, path,
                                synthetic_roles)
        from quality.checks import overlay_thresholds

        resolved = overlay_thresholds(_kind_defaults(kind), thresholds, f"{kind} quality")
    data = report.to_dict()
    result = {"report_id": report_id, "table": table, "passed": report.passed, "failing": report.failing,
              "report_path": str(path), "checks": data["checks"], "timings": data["timings"],
              "thresholds": resolved, "source": dict(source), "target": target, "kind": kind,
              "n_real": len(real), "n_synthetic": len(synthetic),
              "n_holdout": None if holdout is None else len(holdout)}
    if flow_run.get_id():
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(key=_artifact_key(table), markdown=summary_markdown(result),
                                 description=f"quality gate of {table}")
    return result


def record_gate(con, result: dict[str, Any], *, published_schema: str | None = None,
                run_id: str | None = None) -> str:
    """Append one row to `_quality_reports` (created if missing) inside the caller's transaction."""
    insert_row(con, "_quality_reports", {
        "report_id": result["report_id"], "table_name": result["table"], "passed": bool(result["passed"]),
        "failing": json.dumps(result["failing"]), "checks": json.dumps(result["checks"]),
        "thresholds": json.dumps(result["thresholds"]), "source": json.dumps(result["source"], default=str),
        "published_schema": published_schema, "report_path": result["report_path"],
        "n_real": int(result["n_real"]), "n_synthetic": int(result["n_synthetic"]),
        "n_holdout": None if result["n_holdout"] is None else int(result["n_holdout"]),
        "seconds": float(result["timings"].get("total", 0.0)), "run_id": run_id, "created_at": _now()})
    return result["report_id"]


def quarantine_or_publish(wh: Warehouse, con, table: str, df: pd.DataFrame, passed: bool) -> str:
    """Write a gated table: to `main` when it passed (dropping any quarantined copy), else to `quarantine` only."""
    validate_table_name(table, writing=True)
    if passed:
        wh.write_frame(con, table, df, mode="replace", schema="main")
        con.execute(f"DROP TABLE IF EXISTS {qualified(table, 'quarantine')}")
        forget_table(con, table, schema="quarantine")
        return "main"
    wh.write_frame(con, table, df, mode="replace", schema="quarantine")
    return "quarantine"


def inconclusive_checks(result: dict[str, Any]) -> list[str]:
    """Names of the checks too small to fail at these sizes (they fail the gate: see quality.checks)."""
    return [c["name"] for c in result.get("checks", []) if (c.get("details") or {}).get("inconclusive")]


def failure_message(result: dict[str, Any]) -> str:
    failing = result["failing"]
    undecided = set(result.get("inconclusive") or ()) | set(inconclusive_checks(result))
    named = [f"{name} (inconclusive: too few holdout items to judge it)" if name in undecided else name
             for name in failing]
    shown = ", ".join(named[:8]) + (f" and {len(named) - 8} more" if len(named) > 8 else "")
    return f"quality gate failed for {result['table']}: {shown} (report: {result['report_path']})"


# ------------------------------------------------------------------ Prefect task and flow
def _read(wh: Warehouse, table: str | None) -> pd.DataFrame | None:
    return None if table is None else wh.read_frame(table)


@task(cache_policy=NONE)
def gate_task(db_path: str, data_dir: str, real: str, synthetic: str, holdout: str | None, target: str | None,
              thresholds: dict, seed: int) -> dict:
    """Read the three tables, run the gate and record it in `_quality_reports`."""
    settings = Settings.from_env(db=db_path, data_dir=data_dir)
    wh = Warehouse(settings.db_path)
    frames = [_read(wh, t) for t in (real, synthetic, holdout)]
    result = run_gate(settings, frames[0], frames[1], frames[2], table=synthetic, thresholds=thresholds,
                      target=target, seed=seed, source={"real": real, "synthetic": synthetic,
                                                        "holdout": holdout, "command": "validate"})
    with wh.transaction() as con:
        record_gate(con, result, run_id=str(flow_run.get_id() or ""))
    return result


@flow(name="quality-validate")
def validate_flow(db_path: str, data_dir: str, real: str, synthetic: str, holdout: str | None = None,
                  target: str | None = None, thresholds: dict | None = None, seed: int = 0) -> dict:
    """Run every quality check of one synthetic table against its real (and holdout) table."""
    result = gate_task(db_path, data_dir, real, synthetic, holdout, target, thresholds or {}, seed)
    if not result["passed"]:
        raise GateFailed(failure_message(result), result=result)
    get_run_logger().info("quality gate passed for %s (report %s)", synthetic, result["report_path"])
    return result


def check_validate_request(settings: Settings, real: str, synthetic: str, holdout: str | None,
                           target: str | None) -> None:
    """Cheap checks before Prefect starts: names, tables, the target column, the config's thresholds."""
    from quality.errors import TargetError

    wh = Warehouse(settings.db_path)
    for name in (real, synthetic, holdout):
        if name is None:
            continue
        validate_table_name(name)
        if not wh.table_exists(name):
            wh.read_frame(name)  # raises TableNotFound listing the tables
    if target is not None:
        with wh.read() as con:
            columns = [r[0] for r in con.execute(f"DESCRIBE {qualified(real)}").fetchall()]
        if target not in columns:
            raise TargetError(f"target column {target!r} is not in table {real}; columns: {', '.join(columns)}")
    quality_config(settings)


__all__ = ["run_gate", "record_gate", "quarantine_or_publish", "validate_flow",
           "failure_message", "inconclusive_checks", "summary_markdown", "quality_config", "check_validate_request"]

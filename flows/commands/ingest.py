"""`synthwatch ingest SOURCE --kind K --table T`."""

from __future__ import annotations

import argparse

from flows.commands import CommandResult, add_common, run_flow, state_result


def register(subparsers) -> None:
    p = subparsers.add_parser("ingest", help="Load a tabular, time-series or image source into the warehouse.")
    add_common(p)
    p.add_argument("source", help="file or folder to ingest")
    p.add_argument("--kind", required=True, help="tabular, timeseries or image")
    p.add_argument("--table", required=True, help="target table name (letters, digits, '_')")
    p.add_argument("--mode", default="replace", help="replace (default) or append")
    p.add_argument("--delimiter", help="CSV delimiter (detected when omitted)")
    header = p.add_mutually_exclusive_group()
    header.add_argument("--header", dest="header", action="store_const", const=True, help="CSV has a header row")
    header.add_argument("--no-header", dest="header", action="store_const", const=False, help="CSV has no header")
    p.add_argument("--columns", help="comma-separated column names for a headerless CSV")
    p.add_argument("--skip", type=int, help="CSV: leading lines to skip (a preamble before the header)")
    p.add_argument("--key", action="append", default=[], help="column that must not be null (repeatable)")
    p.add_argument("--time-column", help="timeseries: timestamp column (detected when omitted)")
    p.add_argument("--id-column", help="timeseries: series id column (long layout)")
    p.add_argument("--layout", default="long", help="timeseries: long (default) or wide (one series per column)")
    p.set_defaults(handler=run_ingest)


def ingest_options(args: argparse.Namespace | dict) -> dict:
    get = args.get if isinstance(args, dict) else lambda k, d=None: getattr(args, k, d)
    columns = get("columns")
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",")]
    options = {"delimiter": get("delimiter"), "header": get("header"), "columns": columns,
               "key_columns": list(get("key") or get("key_columns") or []), "time_column": get("time_column"),
               "id_column": get("id_column"), "skip": get("skip"), "layout": get("layout") or "long", "format": get("format")}
    return {k: v for k, v in options.items() if v is not None}


def run_ingest_source(settings, source: str, kind: str, table: str, mode: str, options: dict) -> dict:
    """Validate the cheap things first (no Prefect start for a typo), then run the ingest flow."""
    from flows.readers import KINDS, check_source
    from flows.errors import IngestError
    from flows.warehouse import validate_table_name

    if kind not in KINDS:
        raise IngestError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")
    if mode not in ("replace", "append"):
        raise IngestError(f"unknown mode {mode!r}: use replace or append")
    validate_table_name(table, writing=True)
    path = check_source(source)
    from flows.ingest import ingest_flow

    state = run_flow(ingest_flow, str(settings.db_path), str(path.resolve()), kind, table, mode, options)
    return state_result(state)


def format_ingest(result: dict) -> str:
    if not result["written"]:
        return (f"{result['table']}: already ingested (same content, run {result['previous_run_id']}); "
                f"nothing written")
    cols = ", ".join(f"{c['name']} {c['type']}" for c in result["columns"][:12])
    more = f" (+{len(result['columns']) - 12} more)" if len(result["columns"]) > 12 else ""
    lines = [f"{result['table']}: {result['rows']} rows ({result['kind']}, {result['mode']}) written",
             f"  columns: {cols}{more}"]
    s = result.get("summary", {})
    if result["kind"] == "timeseries":
        lines.append(f"  series: {s['series']}, length {s['min_length']}..{s['max_length']}, "
                     f"frequency {s['frequency']}, gaps {s['gaps']}, from {s['start']} to {s['end']}")
    if result["kind"] == "image":
        lines.append(f"  images: {s['images']} of {s['height']}x{s['width']}x{s['channels']} {s['dtype']}, "
                     f"labels: {len(s['labels'])}")
    return "\n".join(lines)


def run_ingest(args, settings) -> CommandResult:
    result = run_ingest_source(settings, args.source, args.kind, args.table, args.mode, ingest_options(args))
    data = {"ok": True, **{k: result[k] for k in ("table", "kind", "rows", "written", "already_ingested",
                                                  "columns", "sha256", "source")}}
    data["summary"] = result.get("summary", {})
    return CommandResult(data=data, text=format_ingest(result))

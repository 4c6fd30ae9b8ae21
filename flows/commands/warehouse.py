"""`synthwatch tables`: what the warehouse holds."""

from __future__ import annotations

from flows.commands import CommandResult, add_common


def register(subparsers) -> None:
    p = subparsers.add_parser("tables", help="List the warehouse's tables with row counts.")
    add_common(p)
    p.set_defaults(handler=run_tables)


def run_tables(args, settings) -> CommandResult:
    from flows.pipeline import format_summary, warehouse_summary

    summary = warehouse_summary(settings)
    return CommandResult(data={"ok": True, **summary}, text=format_summary(summary))

"""`synthwatch tables`: what the warehouse holds; `synthwatch gc`: what it holds for nothing."""

from __future__ import annotations

from flows.commands import CommandResult, add_common


def register(subparsers) -> None:
    p = subparsers.add_parser("tables", help="List the warehouse's tables with row counts.")
    add_common(p)
    p.set_defaults(handler=run_tables)

    p = subparsers.add_parser("gc", help="Report and remove what crashes and deletions left behind (orphan model "
                                         "folders, split tables of deleted models, stale catalog rows...).")
    add_common(p)
    p.add_argument("--dry-run", action="store_true", help="only report what would be removed")
    p.set_defaults(handler=run_gc)


def run_tables(args, settings) -> CommandResult:
    from flows.queries import format_summary, warehouse_summary

    summary = warehouse_summary(settings)
    return CommandResult(data={"ok": True, **summary}, text=format_summary(summary))


def run_gc(args, settings) -> CommandResult:
    from flows.lifecycle import collect_garbage, format_garbage

    result = collect_garbage(settings, dry_run=args.dry_run)
    return CommandResult(data={"ok": True, **result}, text=format_garbage(result))

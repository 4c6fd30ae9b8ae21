"""`synthwatch export`: a warehouse table as PNG files (images, one folder per label) or a CSV/Parquet file."""

from __future__ import annotations

from flows.commands import CommandResult, add_common


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="Write a table to files: PNGs per label for images, CSV or Parquet.")
    add_common(p)
    p.add_argument("--table", required=True, help="warehouse table to export")
    p.add_argument("--format", required=True, choices=["png", "csv", "parquet"], help="png for image tables")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--dir", help="new folder for the PNGs (one subfolder per label)")
    target.add_argument("--out", help="new CSV or Parquet file")
    p.add_argument("--quarantined", action="store_true", help="export the quarantined table of that name")
    p.set_defaults(handler=run_export)


def run_export(args, settings) -> CommandResult:
    from flows.export import ExportError, export_table

    if args.format == "png" and args.dir is None:
        raise ExportError("--format png writes a folder: give --dir")
    if args.format != "png" and args.out is None:
        raise ExportError(f"--format {args.format} writes one file: give --out")
    r = export_table(settings, args.table, args.format, args.dir or args.out,
                     schema="quarantine" if args.quarantined else "main")
    if args.format == "png":
        text = (f"{r['images']} images of {args.table} written to {r['path']} in "
                f"{len(r['folders'])} label folder(s): " + ", ".join(f"{k} ({v})" for k, v in r["folders"].items()))
    else:
        text = f"{r['rows']} rows of {args.table} written to {r['path']}"
    return CommandResult(data={"ok": True, **r}, text=text)

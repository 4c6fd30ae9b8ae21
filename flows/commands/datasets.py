"""`synthwatch datasets list|fetch`."""

from __future__ import annotations

from flows.commands import CommandResult, add_common


def register(subparsers) -> None:
    p = subparsers.add_parser("datasets", help="List or fetch the bundled real data sets.")
    sub = p.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    lst = add_common(sub.add_parser("list", help="List the catalog and what is already fetched."))
    lst.set_defaults(handler=run_list)
    fetch = add_common(sub.add_parser("fetch", help="Fetch data sets into data/raw/ (all when none is named)."))
    fetch.add_argument("names", nargs="*", help="data set names (see `synthwatch datasets list`)")
    fetch.add_argument("--force", action="store_true", help="fetch again even when present")
    fetch.set_defaults(handler=run_fetch)


def run_list(args, settings) -> CommandResult:
    from flows.datasets import catalog_rows

    rows = catalog_rows(settings.raw_dir)
    text = "\n".join(f"{r['name']:<14} {r['kind']:<10} {'fetched' if r['fetched'] else '-':<8} "
                     f"{r['license']:<34} {r['source']}" for r in rows)
    return CommandResult(data={"ok": True, "datasets": rows}, text=text)


def run_fetch(args, settings) -> CommandResult:
    from flows.datasets import CATALOG, dataset, fetch

    names = args.names or list(CATALOG)
    for name in names:
        dataset(name)  # unknown names fail before anything is downloaded
    results = [fetch(name, settings.raw_dir, force=args.force) for name in names]
    text = "\n".join(f"{r['name']}: {'fetched' if r['fetched'] else 'already present'} "
                     f"({', '.join(r['files'])}) from {r['source']}" for r in results)
    return CommandResult(data={"ok": True, "datasets": results}, text=text)

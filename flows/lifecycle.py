"""`synthwatch gc`: what crashed writers and hand edits left behind, found by the records and removed in one
write transaction.

Only what the records make unambiguous is collected: model folders marked for this warehouse that no row names,
staging folders of dead processes, folders a dead delete set aside, split tables the catalog files under a model
that no longer exists, catalog rows of tables that no longer exist, and quarantined copies of generated tables a
later generate published. Tables are found by their catalog entry (origin and the model it names), never by their
name, so a table made by hand is never collected; folders of other warehouses and unmarked folders are never
touched (`flows.modelstore`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from flows.bookkeeping import forget_table
from flows.modelstore import find_aside, find_orphans
from flows.warehouse import Warehouse, qualified

GARBAGE_KINDS = ("model_folders", "aside_folders", "orphan_tables", "stale_catalog", "superseded_quarantine")


def _tables(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    return {(s, n.lower()) for s, n in con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema IN ('main', 'quarantine')").fetchall()}


def find_garbage(con: duckdb.DuckDBPyConnection, models_dir: Path, db_path: Path) -> dict[str, list[dict]]:
    """Everything `gc` would collect, by kind; reads only."""
    found: dict[str, list[dict]] = {kind: [] for kind in GARBAGE_KINDS}
    found["model_folders"] = [{"name": f.name, "path": str(f)} for f in find_orphans(con, models_dir, db_path)]
    found["aside_folders"] = [{"name": f.name, "path": str(f), "action": "restore" if back else "remove",
                               "restore_to": str(back) if back else None}
                              for f, back in find_aside(con, models_dir, db_path)]
    if not Warehouse.exists(con, "_catalog"):
        return found
    existing = _tables(con)
    catalog = con.execute("SELECT table_schema, table_name, origin, json_extract_string(detail, '$.model_id') "
                          "FROM main._catalog ORDER BY 1, 2").fetchall()
    models = {r[0] for r in con.execute("SELECT model_id FROM main._models").fetchall()} \
        if Warehouse.exists(con, "_models") else set()
    for schema, name, origin, model_id in catalog:
        if (schema, name.lower()) not in existing:
            found["stale_catalog"].append({"schema": schema, "table": name, "origin": origin})
        elif origin == "pipeline" and model_id and model_id not in models:
            found["orphan_tables"].append({"schema": schema, "table": name, "model_id": model_id})
    if Warehouse.exists(con, "_generations"):
        origin_of = {(s, n.lower()): o for s, n, o, _ in catalog}
        newest = dict(con.execute("SELECT lower(table_name), arg_max(published_schema, created_at) "
                                  "FROM main._generations GROUP BY 1").fetchall())
        for schema, key in sorted(existing):
            if (schema == "quarantine" and newest.get(key) == "main" and ("main", key) in existing
                    and origin_of.get(("quarantine", key)) == "generated"
                    and origin_of.get(("main", key)) == "generated"):
                name = Warehouse.stored_name(con, key, "quarantine")
                found["superseded_quarantine"].append({"schema": "quarantine", "table": name})
    return found


def remove_garbage(con: duckdb.DuckDBPyConnection, found: dict[str, list[dict]]) -> None:
    """Remove what `find_garbage` found, inside the caller's write transaction: the warehouse first, files last,
    so a failing statement rolls back before any folder is touched."""
    for item in found["orphan_tables"] + found["superseded_quarantine"]:
        con.execute(f"DROP TABLE IF EXISTS {qualified(item['table'], item['schema'])}")
        forget_table(con, item["table"], schema=item["schema"])
    for item in found["stale_catalog"]:
        forget_table(con, item["table"], schema=item["schema"])
    for item in found["aside_folders"]:
        folder = Path(item["path"])
        if item["action"] == "restore":
            folder.rename(item["restore_to"])
        else:
            shutil.rmtree(folder, ignore_errors=True)
    for item in found["model_folders"]:
        shutil.rmtree(item["path"], ignore_errors=True)


def collect_garbage(settings, *, dry_run: bool = False) -> dict:
    """Find (and unless `dry_run`, remove in one write transaction) what `find_garbage` describes."""
    wh = Warehouse(settings.db_path)
    if not settings.db_path.exists():
        # No warehouse: nothing is recorded, so nothing is unambiguous (and a read must not create the file).
        return {"dry_run": dry_run, "found": {kind: [] for kind in GARBAGE_KINDS},
                "removed": {kind: [] for kind in GARBAGE_KINDS}}
    if dry_run:
        with wh.read() as con:
            found = find_garbage(con, settings.models_dir, settings.db_path)
        return {"dry_run": True, "found": found, "removed": {kind: [] for kind in GARBAGE_KINDS}}
    with wh.transaction() as con:
        found = find_garbage(con, settings.models_dir, settings.db_path)
        remove_garbage(con, found)
    return {"dry_run": False, "found": found, "removed": found}


def format_garbage(result: dict) -> str:
    labels = {"model_folders": "model folder with no record", "aside_folders": "folder a dead delete set aside",
              "orphan_tables": "table of a deleted model", "stale_catalog": "catalog row of a missing table",
              "superseded_quarantine": "quarantined copy of a published table"}
    verb = "would remove" if result["dry_run"] else "removed"
    lines = []
    for kind in GARBAGE_KINDS:
        for item in result["found"][kind]:
            what = item.get("name") or f"{item['schema']}.{item['table']}"
            action = f"{'would restore' if result['dry_run'] else 'restored'}" \
                if item.get("action") == "restore" else verb
            lines.append(f"{action} {labels[kind]}: {what}")
    if not lines:
        return "nothing to collect"
    return "\n".join(lines)

"""`synthwatch train`, `synthwatch generate`, `synthwatch models` and `synthwatch models delete`."""

from __future__ import annotations

from flows.commands import CommandResult, add_common


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="Fit a generator on a warehouse table (keeps a holdout split).")
    add_common(p)
    p.add_argument("--table", required=True, help="warehouse table to learn")
    p.add_argument("--generator", default=None,
                   help="generator name (see synthwatch generators); default: the default one for the table's kind "
                        "(autoregressive for tables)")
    p.add_argument("--epochs", type=int, help="maximum training epochs (neural generators)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the fit (default 0)")
    p.add_argument("--holdout", type=float, default=0.2, help="share of rows kept out of training (default 0.2)")
    p.set_defaults(handler=run_train_command)

    p = subparsers.add_parser("generators", help="List the generators, the kind of data each learns, the defaults.")
    add_common(p)
    p.set_defaults(handler=run_generators_command)

    p = subparsers.add_parser("generate", help="Sample a synthetic table from a trained model.")
    add_common(p)
    p.add_argument("--model", required=True, help="model id (see synthwatch models)")
    p.add_argument("--rows", type=int,
                   help="number of rows (tables) or images to generate (default: as many as the model learned)")
    p.add_argument("--sequences", type=int,
                   help="series: number of sequences to generate (default: as many as the model learned)")
    p.add_argument("--length", type=int, help="a model of one long series: steps per generated segment")
    p.add_argument("--table", required=True, help="new table to write the synthetic rows to")
    p.add_argument("--replace", action="store_true",
                   help="write over --table if an earlier generate made it (never over ingested or other tables)")
    p.add_argument("--seed", type=int, help="seed: the same seed gives the same rows")
    p.add_argument("--where", help='only rows with these values, e.g. --where "Class=1" or "sex=Male,income=>50K"')
    p.set_defaults(handler=run_generate_command)

    p = subparsers.add_parser("models", help="List trained generator models (or retire some: models delete).")
    add_common(p)
    p.set_defaults(handler=run_models_command)
    sub = p.add_subparsers(dest="models_command", metavar="[ACTION]")
    listing = sub.add_parser("list", help="List trained generator models, newest first (the default).")
    add_common(listing)
    listing.set_defaults(handler=run_models_command)
    delete = sub.add_parser("delete", help="Retire generator models: records, _train_/_holdout_ tables, files "
                                           "(tables generated from them stay).")
    add_common(delete)
    delete.add_argument("--model", required=True, action="append", help="model id shown by models (repeatable)")
    delete.set_defaults(handler=run_models_delete_command)


def run_train_command(args, settings) -> CommandResult:
    from flows.train import run_train

    r = run_train(settings, args.table, args.generator, epochs=args.epochs, seed=args.seed, holdout=args.holdout)
    epochs = f", {r['epochs_run']} epochs" if r.get("epochs_run") else ""
    text = (f"model {r['model_id']}: {r['generator']} on {r['source_table']} ({r['train_rows']} rows, "
            f"{r['holdout_rows']} held out) in {r['fit_seconds']:.1f}s{epochs}\n  saved to {r['path']}")
    return CommandResult(data={"ok": True, **r}, text=text)


def run_generate_command(args, settings) -> CommandResult:
    from flows.generate import run_generate

    r = run_generate(settings, args.model, args.rows, args.table, seed=args.seed, where=args.where,
                     replace=args.replace, sequences=args.sequences, length=args.length)
    cond = (f" where {r['where']} ({'by rejection' if r.get('conditioning') == 'rejection' else 'natively'})"
            if r["conditions"] else "")
    what = {"timeseries": f"{r['items']} synthetic sequences ({r['rows']} rows)",
            "image": f"{r['items']} synthetic images"}.get(r["kind"], f"{r['rows']} synthetic rows")
    text = (f"{r['table']}: {what} from {r['model_id']}{cond} in {r['sample_seconds']:.1f}s; "
            f"quality gate passed, published (report: {r['quality']['report_path']})")
    return CommandResult(data={"ok": True, **r}, text=text)


def run_generators_command(args, settings) -> CommandResult:
    from generators.registry import DEFAULT_GENERATORS, REGISTRY

    rows = [{"name": e.name, "kind": e.kind, "default": DEFAULT_GENERATORS.get(e.kind) == e.name,
             "summary": e.summary} for e in REGISTRY.values()]
    lines = [f"{'generator':<18} {'kind':<11} summary"]
    lines += [f"{r['name']:<18} {r['kind']:<11} {r['summary']}{' [default]' if r['default'] else ''}" for r in rows]
    return CommandResult(data={"ok": True, "generators": rows}, text="\n".join(lines))


def run_models_command(args, settings) -> CommandResult:
    from flows.queries import list_models

    models = list_models(settings)
    if not models:
        text = "no trained models yet: run synthwatch train --table T"
    else:
        lines = [f"{'model':<40} {'generator':<16} {'source':<20} {'train':>8} {'holdout':>8} {'fit s':>8}  created"]
        for m in models:
            lines.append(f"{m['model_id']:<40} {m['generator']:<16} {m['source_table']:<20} {m['train_rows']:>8} "
                         f"{m['holdout_rows']:>8} {m['fit_seconds']:>8.1f}  {m['created_at'][:19]}")
        text = "\n".join(lines)
    return CommandResult(data={"ok": True, "models": models}, text=text)


def run_models_delete_command(args, settings) -> CommandResult:
    from flows.train import delete_models

    deleted = delete_models(settings, args.model)
    lines = []
    for d in deleted:
        kept = f"; kept {', '.join(d['generated_kept'])} (lineage marked)" if d["generated_kept"] else ""
        lines.append(f"deleted model {d['model_id']} (trained on {d['source_table']}): dropped "
                     f"{', '.join(d['tables_dropped']) or 'no tables'}"
                     + (", files removed" if d["files_deleted"] else ", no files to remove") + kept)
    return CommandResult(data={"ok": True, "deleted": deleted}, text="\n".join(lines))

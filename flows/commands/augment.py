"""`synthwatch augment`: a table's real rows plus synthetic rows of a rare value (flagged), gated."""

from __future__ import annotations

from flows.commands import CommandResult, add_common


def register(subparsers) -> None:
    p = subparsers.add_parser("augment", help="Add synthetic rows of a rare class to a table (flagged, gated).")
    add_common(p)
    p.add_argument("--table", required=True, help="the table to augment")
    p.add_argument("--target", required=True, help="the class column")
    p.add_argument("--value", help="the value to add rows of (default: the rarest)")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--rows", type=int, help="synthetic rows to add")
    size.add_argument("--ratio", type=float, help="synthetic rows as a multiple of the real rows of that value")
    p.add_argument("--out", required=True, help="new table: the real rows plus the synthetic ones")
    p.add_argument("--generator", default="autoregressive", help="tabular generator (default autoregressive)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--replace", action="store_true", help="write over --out if an earlier augment made it")
    p.set_defaults(handler=run_augment)


def run_augment(args, settings) -> CommandResult:
    from flows.augment import augment_flow, check_augment_args
    from flows.commands import run_flow, state_result
    from flows.errors import GateFailed
    from generators.registry import get_entry

    if get_entry(args.generator).kind != "tabular":
        from flows.augment import AugmentError

        raise AugmentError(f"generator {args.generator!r} learns {get_entry(args.generator).kind} data; augment "
                           "needs a tabular generator")
    check_augment_args(settings, args.table, args.target, args.out, args.rows, args.ratio, args.replace)
    options = {"table": args.table, "target": args.target, "out": args.out, "value": args.value, "rows": args.rows,
               "ratio": args.ratio, "generator": args.generator, "seed": args.seed, "replace": args.replace}
    state = run_flow(augment_flow, str(settings.db_path), str(settings.data_dir),
                     str(settings.config_path) if settings.config_path else None, options)
    failure = state.result(raise_on_failure=False) if state.is_failed() else None
    if isinstance(failure, GateFailed) and failure.result is not None:
        r = failure.result
        return CommandResult(data={"ok": False, **r}, exit_code=1, text=(
            f"{r['table']}: quality gate FAILED ({', '.join(r['quality']['failing'])}); written to "
            f"quarantine.{r['table']} (report: {r['quality']['report_path']})"))
    r = state_result(state)
    return CommandResult(data={"ok": True, **r}, text=(
        f"{r['table']}: {r['real_rows']:,} real rows + {r['synthetic_rows']:,} synthetic rows of "
        f"{r['target']}={r['value']} (flagged in column {r['flag_column']!r}; {r['exact_copies']} exact copies), "
        f"quality gate passed (report: {r['quality']['report_path']})"))

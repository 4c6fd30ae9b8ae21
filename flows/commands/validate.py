"""`synthwatch validate`: run every quality check of a synthetic table against a real (and holdout) table."""

from __future__ import annotations

from flows.commands import CommandResult, add_common, run_flow, state_result


def register(subparsers) -> None:
    p = subparsers.add_parser("validate", help="Run the quality gate on a synthetic table (exit 1 when it fails).")
    add_common(p)
    p.add_argument("--real", required=True, help="the real table the synthetic one was trained on")
    p.add_argument("--synthetic", required=True, help="the synthetic table to check")
    p.add_argument("--holdout", help="real rows kept out of training (enables DCR share, NNDR, membership)")
    p.add_argument("--target", help="a column to measure train-synthetic/test-real utility on "
                                    "(default: quality.targets[<real table>] in the config)")
    p.add_argument("--seed", type=int, help="seed of the sampling inside the checks (default: config or 0)")
    p.set_defaults(handler=run_validate)


def _text(result: dict) -> str:
    gated = [c for c in result["checks"] if c["threshold"] is not None and c["kind"] != "expectation"]
    n_exp = sum(c["kind"] == "expectation" for c in result["checks"])
    n_exp_ok = sum(c["kind"] == "expectation" and c["passed"] for c in result["checks"])
    lines = [f"{result['table']}: quality gate {'PASSED' if result['passed'] else 'FAILED'}"]
    for c in gated:
        bound = ("<=" if c["direction"] == "max" else ">=") + f" {c['threshold']:.4g}"
        value = "n/a" if c["value"] is None else f"{c['value']:.4g}"
        lines.append(f"  {'ok  ' if c['passed'] else 'FAIL'} {c['name']:<20} {value:>10}  ({bound})")
    lines.append(f"  expectations: {n_exp_ok}/{n_exp} passed")
    if not result["passed"]:
        lines.append(f"failing checks: {', '.join(result['failing'])}")
    lines.append(f"report: {result['report_path']}")
    return "\n".join(lines)


def run_validate(args, settings) -> CommandResult:
    from flows.gate import check_validate_request, quality_config, validate_flow

    config = quality_config(settings)
    # the config's `targets` maps a real table to its utility target; --target overrides it
    target = args.target or config["targets"].get(args.real)
    check_validate_request(settings, args.real, args.synthetic, args.holdout, target)
    seed = config["seed"] if args.seed is None else args.seed
    state = run_flow(validate_flow, str(settings.db_path), str(settings.data_dir), args.real, args.synthetic,
                     args.holdout, target, config["thresholds"], seed)
    from flows.errors import GateFailed

    failure = state.result(raise_on_failure=False) if state.is_failed() else None
    if isinstance(failure, GateFailed) and failure.result is not None:
        # a failed gate is a result, not a crash: keep every check in --json and name the failures
        return CommandResult(data={"ok": False, **failure.result}, text=_text(failure.result), exit_code=1)
    result = state_result(state)
    return CommandResult(data={"ok": True, **result}, text=_text(result))

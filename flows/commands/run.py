"""`synthwatch run`: the whole pipeline from a config file."""

from __future__ import annotations

import json

from flows.commands import CommandResult, add_common, run_flow, state_result


def register(subparsers) -> None:
    p = subparsers.add_parser("run", help="Run the whole pipeline from a config file (bundled default).")
    add_common(p)
    p.add_argument("--stages", help="comma-separated subset of the config's stages to run")
    p.set_defaults(handler=run_pipeline)


def _stage_text(name: str, out: dict) -> str:
    if "skipped" in out:
        return f"[{name}] skipped: {out['skipped']}"
    if name == "summary":
        from flows.queries import format_summary

        return f"[summary]\n{format_summary(out)}"
    if name == "generate" and out.get("tables"):
        lines = [f"[generate] ({out.get('seconds', '?')}s)"]
        for t in out["tables"]:
            q = t["quality"]
            values = ", ".join(f"{k} {v:.3f}" for k, v in q["values"].items() if v is not None)
            lines.append(f"  {t['table']}: {t['rows']:,} rows from {t['model_id']}; quality gate "
                         f"{'passed' if q['passed'] else 'FAILED'} ({values})\n  report: {q['report_path']}")
        return "\n".join(lines)
    if "text" in out:
        return f"[{name}] ({out.get('seconds', '?')}s)\n{out['text']}"
    shown = {k: v for k, v in out.items() if k not in ("seconds",)}
    return f"[{name}] ({out.get('seconds', '?')}s) {json.dumps(shown, default=str)[:600]}"


def run_pipeline(args, settings) -> CommandResult:
    from flows.errors import ConfigError
    from flows.pipeline import check_pipeline, pipeline_flow

    stages = settings.config.get("stages") or []
    if args.stages:
        wanted = [s.strip() for s in args.stages.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in stages]
        if unknown:
            raise ConfigError(f"stage(s) {', '.join(unknown)} not in the config; it has {', '.join(stages)}")
        stages = wanted
    check_pipeline(settings, stages)  # unknown stages, keys and hyperparameters fail before Prefect starts
    result = state_result(run_flow(pipeline_flow, **settings.to_params(), stages=stages))
    text = "\n".join(_stage_text(name, out) for name, out in result["stages"].items())
    return CommandResult(data={"ok": True, **result}, text=text)

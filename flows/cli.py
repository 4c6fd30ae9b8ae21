"""The synthwatch command line: one subcommand per stage, one-line errors, --json for machines."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

# Stage command modules, imported lazily; a stage that has not landed yet is simply absent.
COMMAND_MODULES = (
    "flows.commands.ingest",
    "flows.commands.datasets",
    "flows.commands.server",
    "flows.commands.run",
    "flows.commands.train",
    "flows.commands.validate",
    "flows.commands.detect",
    "flows.commands.warehouse",
    "flows.commands.export",
    "flows.commands.feedback",
    "flows.commands.monitor",
    "flows.commands.dashboard",
)


def _user_errors() -> tuple[type[BaseException], ...]:
    from flows.errors import user_error_types

    return user_error_types()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synthwatch",
        description="Safe, faithful synthetic data and anomaly watch over a DuckDB warehouse.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(subparsers)
    return parser


def _quiet_prefect_console() -> None:
    """Prefect logs a failed task's traceback on the console; the CLI's promise is one line, so the console only
    shows critical records (the run logs on the Prefect server keep everything). PREFECT_LOGGING_* overrides it."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")


def _release_frames(exc: BaseException) -> None:
    """Drop the tracebacks a reported error keeps alive (and with them open DuckDB handles in their frames), so the
    interpreter exits without native-extension leak reports."""
    import gc

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = None
        exc = exc.__cause__ or exc.__context__
    gc.collect()


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 1 quality gate failed, 2 bad input)."""
    _quiet_prefect_console()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    from flows.config import Settings
    from flows.errors import SynthwatchError
    from flows.prefect_env import configure_prefect

    try:
        settings = Settings.from_env(db=getattr(args, "db", None), config=getattr(args, "config", None))
        configure_prefect(settings.prefect_home, settings.data_dir)
        result = args.handler(args, settings)
    except _user_errors() as exc:  # evaluated only when an error arrives, after the libraries it names loaded
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _release_frames(exc)
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "error": message, "error_type": type(exc).__name__}))
        print(f"error: {message}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2)) if isinstance(exc, SynthwatchError) else 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if getattr(args, "json", False):
        print(json.dumps(result.data, default=str))
    elif result.text:
        print(result.text)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())

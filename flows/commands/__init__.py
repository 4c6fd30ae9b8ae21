"""CLI command modules: each has register(subparsers) and handlers returning a CommandResult."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CommandResult:
    """What a command did: data for --json, text for people, and the exit code."""

    data: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    exit_code: int = 0


def add_common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options every command takes: the warehouse file, the config file and machine-readable output."""
    parser.add_argument("--db", help="warehouse file (default: $SYNTHWATCH_DB or data/warehouse.duckdb)")
    parser.add_argument("--config", help="pipeline config YAML (default: the bundled flows/pipeline.yaml)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the result")
    return parser


def state_result(state) -> dict:
    """The dict a flow returned, or raise the one-line error it failed with."""
    from flows.errors import SynthwatchError

    if state.is_failed() or state.is_crashed():
        try:
            data = state.result(raise_on_failure=False)
        except Exception:
            data = None
        message = state.message or "flow run failed"
        if isinstance(data, dict) and data.get("error"):
            message = data["error"]
        err = SynthwatchError(message)
        if isinstance(data, dict) and data.get("exit_code"):
            err.exit_code = int(data["exit_code"])
        raise err
    return state.result()

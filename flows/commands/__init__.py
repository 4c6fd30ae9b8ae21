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


def run_flow(flow, *args, **kwargs):
    """Run a flow for a command and return its final state: on the local Prefect server (started in the background
    when none answers, see `use_local_server`), without the flow-run heartbeat unless
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY asks for it (Prefect's heartbeat thread holds up the end of every run for up
    to a second)."""
    import os

    from flows.prefect_env import use_local_server

    use_local_server()
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    if os.environ.get("PREFECT_FLOWS_HEARTBEAT_FREQUENCY") or os.environ.get("PREFECT_RUNNER_HEARTBEAT_FREQUENCY"):
        return flow(*args, return_state=True, **kwargs)
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        return flow(*args, return_state=True, **kwargs)


def state_result(state) -> dict:
    """The dict a flow returned, or raise the error it failed with (a user error as itself: one line, its code)."""
    from flows.errors import SynthwatchError, user_error_types

    if state.is_failed() or state.is_crashed():
        try:
            data = state.result(raise_on_failure=False)
        except Exception:  # noqa: BLE001 - a crashed run may hold no result at all
            data = None
        if isinstance(data, user_error_types()):
            raise data
        if isinstance(data, BaseException):
            err = SynthwatchError(f"internal error: {type(data).__name__}: {data}".splitlines()[0]
                                  + " (a bug: the Prefect run log has the traceback)")
            err.exit_code = 3
            raise err
        raise SynthwatchError(state.message or "flow run failed")
    return state.result()

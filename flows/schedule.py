"""Schedules: the `schedule:` deployments of pipeline.yaml, served on the local Prefect server.

`start` starts (or reuses) the local server on 127.0.0.1 and a background process that serves every configured
deployment (`python -m flows.schedule --serve`, Prefect's `serve`): the server schedules runs, the serving process
executes them, the Prefect UI shows each one. `stop` stops that process; Prefect pauses the deployments' schedules as
it shuts down, so nothing is scheduled that nobody would run. `list` reads the deployments and their next runs from
the server; `run NAME` asks the server for a run now, which the serving process picks up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flows.errors import ServerError, SynthwatchError

STATE_FILE = "schedule.json"
FLOWS = {"monitor": "flows.monitor_flows:monitor_flow", "retrain": "flows.monitor_flows:retrain_flow",
         "pipeline": "flows.pipeline:pipeline_flow"}


class ScheduleError(SynthwatchError):
    """A schedule command that cannot run: no deployments configured, an unknown name, nothing serving."""


def deployments_of(settings) -> list[dict]:
    deployments = (settings.config.get("schedule") or {}).get("deployments") or []
    if not deployments:
        raise ScheduleError("pipeline.yaml declares no deployments: add them under schedule.deployments "
                            "(name, flow, interval_seconds or cron)")
    for d in deployments:
        if (d.get("interval_seconds") is None) == (d.get("cron") is None):
            raise ScheduleError(f"schedule.deployments {d['name']}: give exactly one of interval_seconds and cron")
    return deployments


def _state_path(settings) -> Path:
    return settings.prefect_home / STATE_FILE


def _read_state(settings) -> dict | None:
    try:
        info = json.loads(_state_path(settings).read_text())
    except (OSError, ValueError):
        return None
    from flows.prefect_env import process_identity

    identity = process_identity(int(info.get("pid", 0) or 0))
    if identity is None or identity["started"] != info.get("started"):
        return None  # that process is gone (or the pid now belongs to another one)
    return info


def _import(target: str):
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def build_deployments(settings) -> list:
    """Prefect RunnerDeployments of the configured deployments: JSON parameters naming this warehouse and config."""
    params = {"db_path": str(settings.db_path), "data_dir": str(settings.data_dir),
              "config_path": str(settings.config_path) if settings.config_path else None}
    built = []
    for d in deployments_of(settings):
        flow = _import(FLOWS[d["flow"]]).with_options(retries=int(d.get("retries", 0)),
                                                      retry_delay_seconds=float(d.get("retry_delay_seconds", 10)))
        parameters = dict(params)
        if d["flow"] == "pipeline":
            parameters["stages"] = list(settings.config.get("stages") or [])
        schedule = {"interval": float(d["interval_seconds"])} if d.get("interval_seconds") else {"cron": d["cron"]}
        built.append(flow.to_deployment(name=d["name"], parameters=parameters, paused=bool(d.get("paused")),
                                        tags=["synthwatch"], **schedule))
    return built


def serve_forever(settings) -> None:
    """The serving process: serve every configured deployment until SIGTERM (Prefect pauses them on the way out)."""
    from prefect import serve

    serve(*build_deployments(settings), print_starting_message=False, pause_on_shutdown=True)


def start(settings, *, timeout: float = 120.0) -> dict:
    """Start (or reuse) the local server and the serving process; returns where to watch."""
    from flows import server

    deployments_of(settings)  # a config without deployments fails before anything starts
    srv = server.start(settings.prefect_home)
    current = _read_state(settings)
    if current is not None:
        return {"started": False, "pid": current["pid"], "api_url": srv["api_url"], "log": current["log"],
                "deployments": current["deployments"]}
    log_path = settings.prefect_home / "schedule.log"
    env = {**os.environ, "PREFECT_API_URL": srv["api_url"], "PREFECT_HOME": str(settings.prefect_home),
           "SYNTHWATCH_DATA_DIR": str(settings.data_dir), "SYNTHWATCH_DB": str(settings.db_path),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                       os.environ.get("PYTHONPATH")]))}
    if settings.config_path:
        env["SYNTHWATCH_CONFIG"] = str(settings.config_path)
    cmd = [sys.executable, "-m", "flows.schedule", "--serve"]
    with open(log_path, "ab") as log:  # from the project root: deployments name their flows by path from there
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=Path(__file__).resolve().parents[1])
    from flows.prefect_env import process_identity

    identity = None
    deadline = time.monotonic() + 10
    while identity is None and time.monotonic() < deadline and proc.poll() is None:
        identity = process_identity(proc.pid)
        time.sleep(0.05)
    names = [d["name"] for d in deployments_of(settings)]
    state = {"pid": proc.pid, "started": identity["started"] if identity else None, "log": str(log_path),
             "api_url": srv["api_url"], "deployments": names}
    _state_path(settings).write_text(json.dumps(state))
    # served once every deployment is registered on the server
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _state_path(settings).unlink(missing_ok=True)
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise ScheduleError(f"the serving process exited with code {proc.returncode}: "
                                f"{' | '.join(tail) or '(empty log)'} (log: {log_path})")
        try:
            if {d["name"] for d in list_deployments(settings)} >= set(names):
                return {"started": True, **state}
        except ServerError:
            pass
        time.sleep(0.5)
    stop(settings)
    raise ScheduleError(f"the deployments were not registered within {timeout:.0f}s (log: {log_path})")


def stop(settings) -> dict:
    """Stop the serving process (its deployments' schedules are paused as it shuts down); the server stays."""
    info = _read_state(settings)
    _state_path(settings).unlink(missing_ok=True) if info is None else None
    if info is None:
        return {"stopped": False, "note": "nothing was serving"}
    try:
        os.killpg(info["pid"], signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 30
    from flows.prefect_env import process_identity

    while time.monotonic() < deadline and process_identity(info["pid"]) is not None:
        time.sleep(0.2)
    if process_identity(info["pid"]) is not None:
        os.killpg(info["pid"], signal.SIGKILL)
    _state_path(settings).unlink(missing_ok=True)
    paused = pause_deployments(settings)
    return {"stopped": True, "pid": info["pid"], "deployments": info["deployments"], "paused": paused}


def pause_deployments(settings) -> list[str]:
    """Pause every synthwatch deployment on the server (Prefect's own pause on shutdown may not reach them all
    before the serving process ends): nothing stays scheduled that nobody serves. Names of those paused now."""
    from flows.prefect_env import running_server_url

    if running_server_url(settings.prefect_home, timeout=1.0) is None:
        return []
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    async def pause(client):
        done = []
        for d in await client.read_deployments(
                deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=["synthwatch"]))):
            if not d.paused:
                await client.pause_deployment(d.id)
                done.append(d.name)
        return done

    return _client_call(settings, pause)


def _client_call(settings, coro_fn):
    import asyncio

    from flows.prefect_env import running_server_url

    url = running_server_url(settings.prefect_home, timeout=1.0)
    if url is None:
        raise ServerError("the local prefect server is not running: start the schedules with "
                          "`synthwatch schedule start`")
    os.environ["PREFECT_API_URL"] = url
    from prefect.client.orchestration import get_client

    async def run():
        async with get_client() as client:
            return await coro_fn(client)

    return asyncio.run(run())


def list_deployments(settings) -> list[dict]:
    """The synthwatch deployments on the server: schedule, paused or not, and their next scheduled runs."""
    from prefect.client.schemas.filters import (DeploymentFilter, DeploymentFilterTags, FlowRunFilter,
                                                FlowRunFilterState, FlowRunFilterStateType)
    from prefect.client.schemas.objects import StateType

    async def fetch(client):
        out = []
        deployments = await client.read_deployments(
            deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=["synthwatch"])))
        for d in deployments:
            flow = await client.read_flow(d.flow_id)
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id={"any_": [d.id]}),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
                    any_=[StateType.SCHEDULED]))), sort="EXPECTED_START_TIME_ASC", limit=3)
            recent = await client.read_flow_runs(deployment_filter=DeploymentFilter(id={"any_": [d.id]}),
                                                 sort="START_TIME_DESC", limit=1)
            schedules = [str(s.schedule) for s in (d.schedules or [])]
            out.append({"name": d.name, "flow": flow.name, "full_name": f"{flow.name}/{d.name}",
                        "paused": bool(d.paused), "schedules": schedules,
                        "next_runs": [str(r.expected_start_time) for r in runs],
                        "last_run": ({"id": str(recent[0].id), "state": recent[0].state_type.value,
                                      "start": str(recent[0].start_time)} if recent else None)})
        return sorted(out, key=lambda d: d["name"])

    return _client_call(settings, fetch)


def run_now(settings, name: str, *, wait: float | None = None) -> dict:
    """Ask the server for a run of deployment `name` now (served by `schedule start`); with `wait`, wait up to
    that many seconds for it to finish."""
    known = {d["name"]: d for d in list_deployments(settings)}
    if name not in known:
        raise ScheduleError(f"no deployment named {name!r} on the server; known: "
                            f"{', '.join(known) or 'none (run synthwatch schedule start)'}")

    async def create(client):
        deployment = await client.read_deployment_by_name(known[name]["full_name"])
        run = await client.create_flow_run_from_deployment(deployment.id)
        if wait:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                run = await client.read_flow_run(run.id)
                if run.state is not None and run.state.is_final():
                    break
                import asyncio

                await asyncio.sleep(0.5)
        return {"flow_run_id": str(run.id), "name": run.name, "state": run.state_type.value if run.state_type
                else None}

    return {"deployment": known[name]["full_name"], **_client_call(settings, create)}


if __name__ == "__main__" and "--serve" in sys.argv:
    from flows.config import Settings
    from flows.prefect_env import configure_prefect

    _settings = Settings.from_env()
    configure_prefect(_settings.prefect_home, _settings.data_dir)
    serve_forever(_settings)

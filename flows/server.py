"""A local Prefect server on loopback: started once, reused by every command so none waits for an ephemeral one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from flows.errors import ServerError
from flows.prefect_env import running_server_url, server_state_path


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def status(prefect_home: Path) -> dict:
    state_file = server_state_path(prefect_home)
    url = running_server_url(prefect_home, timeout=2.0)
    info = json.loads(state_file.read_text()) if state_file.is_file() else {}
    return {"running": url is not None, "api_url": url, "pid": info.get("pid"), "log": info.get("log")}


def start(prefect_home: Path, *, host: str = "127.0.0.1", port: int | None = None, timeout: float = 180.0) -> dict:
    """Start `prefect server start` in the background and wait until it answers; no-op when already up."""
    current = status(prefect_home)
    if current["running"]:
        return {**current, "started": False}
    port = port or _free_port(host)
    log_path = Path(prefect_home) / "server.log"
    env = {**os.environ, "PREFECT_HOME": str(prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "DO_NOT_TRACK": "1", "PREFECT_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    prefect_bin = Path(sys.executable).with_name("prefect")
    cmd = [str(prefect_bin), "server", "start", "--host", host, "--port", str(port), "--no-ui"]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    api_url = f"http://{host}:{port}/api"
    server_state_path(prefect_home).write_text(json.dumps({"pid": proc.pid, "api_url": api_url,
                                                           "log": str(log_path)}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(empty log)"]
            server_state_path(prefect_home).unlink(missing_ok=True)
            raise ServerError(f"prefect server exited with code {proc.returncode}: {tail[0]} (log: {log_path})")
        if running_server_url(prefect_home, timeout=1.0):
            return {"running": True, "api_url": api_url, "pid": proc.pid, "log": str(log_path), "started": True}
        time.sleep(0.5)
    stop(prefect_home)
    raise ServerError(f"prefect server did not answer on {api_url} within {timeout:.0f}s (log: {log_path})")


def stop(prefect_home: Path) -> dict:
    state_file = server_state_path(prefect_home)
    if not state_file.is_file():
        return {"running": False, "stopped": False}
    pid = json.loads(state_file.read_text()).get("pid")
    stopped = False
    if pid and _alive(pid):
        try:
            os.killpg(pid, signal.SIGTERM)
        except OSError:
            os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not _alive(pid):
                break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
        stopped = True
    state_file.unlink(missing_ok=True)
    return {"running": False, "stopped": stopped}

"""A local Prefect server on loopback: started once, reused by every command so none waits for an ephemeral one."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flows.errors import ServerError
from flows.prefect_env import (process_identity, read_server_state, running_server_url, server_mismatch,
                               server_state_path)

LOOPBACK_NAMES = ("localhost", "ip6-localhost")


def is_loopback(host: str) -> bool:
    """True for an address that only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def remote_warning(host: str) -> str:
    return (f"the prefect server will listen on {host}, reachable from the network, and it has no "
            "authentication: anyone who can reach it can read and change flow runs")


def _url_host(host: str) -> str:
    """The address a client uses to reach a server bound to `host`."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _write_state(prefect_home: Path, info: dict) -> None:
    """Write server.json whole or not at all: a temp file in the same folder, then a rename."""
    state_file = server_state_path(prefect_home)
    fd, tmp = tempfile.mkstemp(prefix=".server.", suffix=".json", dir=state_file.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(info, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, state_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _server_lock(prefect_home: Path) -> Iterator[None]:
    """One start or stop at a time per Prefect home, across processes: two commands that find no server at the
    same moment start one, and the second uses it. (The server does not inherit the lock: Popen closes other fds.)"""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): starts are not serialised there
        yield
        return
    Path(prefect_home).mkdir(parents=True, exist_ok=True)
    with open(Path(prefect_home) / "server.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _public(info: dict) -> dict:
    return {"pid": info.get("pid"), "log": info.get("log")}


def status(prefect_home: Path) -> dict:
    """Whether the server this tool started still runs and answers; a stale or corrupt state file is named."""
    state_file = server_state_path(prefect_home)
    info, problem = read_server_state(prefect_home)
    url = running_server_url(prefect_home, timeout=2.0)
    result = {"running": url is not None, "api_url": url, **_public(info or {})}
    if problem:
        result["note"] = f"state file {state_file} is unusable ({problem}); start replaces it, stop removes it"
    elif info and url is None and (reason := server_mismatch(info)):
        result["note"] = f"state file {state_file} is stale: {reason}; start replaces it, stop removes it"
    return result


def start(prefect_home: Path, *, host: str = "127.0.0.1", port: int | None = None, allow_remote: bool = False,
          timeout: float = 180.0) -> dict:
    """Start `prefect server start` in the background and wait until it answers; no-op when already up."""
    if not is_loopback(host) and not allow_remote:
        raise ServerError(f"--host {host} is not a loopback address and the server has no authentication; "
                          "pass --allow-remote to expose it anyway, or omit --host for 127.0.0.1")
    if port is not None and not 0 < port < 65536:
        raise ServerError(f"--port {port} is not a port number (1-65535)")
    with _server_lock(prefect_home):
        return _start(prefect_home, host=host, port=port, timeout=timeout)


def _start(prefect_home: Path, *, host: str, port: int | None, timeout: float) -> dict:
    current = status(prefect_home)
    if current["running"]:
        return {**current, "started": False}
    info, problem = read_server_state(prefect_home)
    note = {"note": f"replaced an unusable state file ({problem})"} if problem else {}
    if info and server_mismatch(info) is None:
        raise ServerError(f"the prefect server synthwatch started (pid {info['pid']}) runs but does not answer on "
                          f"{info['api_url']}; run `synthwatch server stop` first (log: {info.get('log')})")
    server_state_path(prefect_home).unlink(missing_ok=True)  # corrupt or stale: nothing can use it
    try:
        port = port or _free_port(host)
    except OSError as exc:
        raise ServerError(f"cannot bind --host {host}: {exc.strerror or exc}") from None
    log_path = Path(prefect_home) / "server.log"
    env = {**os.environ, "PREFECT_HOME": str(prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "DO_NOT_TRACK": "1", "PREFECT_UI_ENABLED": "false"}
    # new deployments get their scheduled runs within seconds, not at the next minute's scheduler pass
    env.setdefault("PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS", "5")
    env.pop("PREFECT_API_URL", None)
    prefect_bin = Path(sys.executable).with_name("prefect")
    cmd = [str(prefect_bin), "server", "start", "--host", host, "--port", str(port), "--no-ui"]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    api_url = f"http://{_url_host(host)}:{port}/api"
    identity = _settled_identity(proc, cmd)
    if identity is None:
        proc.wait()
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(empty log)"]
        raise ServerError(f"prefect server exited with code {proc.returncode}: {tail[0]} (log: {log_path})")
    _write_state(prefect_home, {"pid": proc.pid, "started": identity["started"], "cmdline": identity["cmdline"],
                                "host": host, "port": port, "api_url": api_url, "log": str(log_path)})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(empty log)"]
            server_state_path(prefect_home).unlink(missing_ok=True)
            raise ServerError(f"prefect server exited with code {proc.returncode}: {tail[0]} (log: {log_path})")
        if running_server_url(prefect_home, timeout=1.0):
            return {"running": True, "api_url": api_url, "pid": proc.pid, "log": str(log_path), "started": True,
                    **note}
        time.sleep(0.2)
    _stop(prefect_home)
    raise ServerError(f"prefect server did not answer on {api_url} within {timeout:.0f}s (log: {log_path})")


def _settled_identity(proc: subprocess.Popen, cmd: list[str], timeout: float = 10.0) -> dict | None:
    """The new process's identity once its command line is that of `cmd` (it reads empty for a moment after exec);
    None if it exited first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        identity = process_identity(proc.pid)
        if identity and identity["cmdline"][-(len(cmd) - 1):] == cmd[1:]:
            return identity
        if time.monotonic() > deadline:
            # Still our child (not yet waited for), so its pid cannot have been reused: safe to signal.
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            raise ServerError(f"the new prefect server (pid {proc.pid}) did not show its command line within "
                              f"{timeout:.0f}s, so it could not be recorded; it was stopped")
        time.sleep(0.01)
    return None


def _signal_server(pid: int, started: str, sig: int) -> None:
    """Signal the server's process group (it leads its own session), or only it if the group is gone."""
    identity = process_identity(pid)
    if identity is None or identity["started"] != started:
        return
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def stop(prefect_home: Path) -> dict:
    """Stop the server this tool started; a pid that is no longer that server is never signalled."""
    with _server_lock(prefect_home):
        return _stop(prefect_home)


def _stop(prefect_home: Path) -> dict:
    state_file = server_state_path(prefect_home)
    info, problem = read_server_state(prefect_home)
    if info is None and problem is None:
        return {"running": False, "stopped": False}
    if problem:
        state_file.unlink(missing_ok=True)
        return {"running": False, "stopped": False, "stale": True,
                "note": f"removed unusable state file {state_file} ({problem}); no process was signalled"}
    reason = server_mismatch(info)
    if reason:
        state_file.unlink(missing_ok=True)
        return {"running": False, "stopped": False, "stale": True, "pid": info["pid"],
                "note": f"removed stale state file {state_file}: {reason}; no process was signalled"}
    pid, started = info["pid"], info["started"]
    _signal_server(pid, started, signal.SIGTERM)
    for _ in range(100):
        if server_mismatch(info) is not None:
            break
        time.sleep(0.1)
    else:
        _signal_server(pid, started, signal.SIGKILL)
    state_file.unlink(missing_ok=True)
    return {"running": False, "stopped": True, "pid": pid}

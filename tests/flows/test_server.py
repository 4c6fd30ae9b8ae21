"""`synthwatch server`: a pid is signalled only when it is still the server this tool started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from flows import server
from flows.prefect_env import server_state_path


@pytest.fixture
def prefect_home(tmp_path, monkeypatch, data_dir):
    """A Prefect home of this test's own; the CLI's changes to the environment are undone afterwards."""
    saved = dict(os.environ)
    home = tmp_path / "prefect"
    home.mkdir()
    monkeypatch.setenv("SYNTHWATCH_PREFECT_HOME", str(home))
    yield home
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def failing_prefect(tmp_path, monkeypatch):
    """`prefect` beside sys.executable is a script that fails at once, so no test starts a real server."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "prefect"
    fake.write_text("#!/bin/sh\necho 'boom: fake prefect'\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    return fake


@pytest.fixture
def sleeper():
    """A process of our own in its own session, standing for whatever now holds a recorded pid."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def lookalike_server(tmp_path, port: int) -> subprocess.Popen:
    """A process whose command line is `.../prefect server start --host 127.0.0.1 --port PORT --no-ui`."""
    from flows.prefect_env import process_identity

    script = tmp_path / "lookalike" / "prefect"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\nsleep 60\n")
    script.chmod(0o755)
    proc = subprocess.Popen([str(script), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
                            start_new_session=True)
    deadline = time.monotonic() + 10
    while not process_identity(proc.pid)["cmdline"] and time.monotonic() < deadline:  # empty just after exec
        time.sleep(0.01)
    return proc


def run_json(cli, *args):
    code, out, err = cli([*args, "--json"])
    return code, json.loads(out.strip().splitlines()[-1]), err


def test_stop_does_not_signal_a_pid_that_is_no_longer_the_server(cli, prefect_home, sleeper):
    # A server.json as the previous version wrote it; the pid now belongs to an unrelated process.
    server_state_path(prefect_home).write_text(json.dumps(
        {"pid": sleeper.pid, "api_url": "http://127.0.0.1:9/api", "log": "server.log"}))
    code, result, err = run_json(cli, "server", "stop")
    assert code == 0, err
    assert sleeper.poll() is None  # still alive
    assert result["stopped"] is False and result["stale"] is True and "no process was signalled" in result["note"]
    assert f"older synthwatch, without the start time that identifies pid {sleeper.pid}" in result["note"]
    assert not server_state_path(prefect_home).exists()


@pytest.mark.parametrize("change", ["start time", "command line", "port"])
def test_stop_verifies_start_time_and_command_line(cli, prefect_home, tmp_path, change):
    from flows.prefect_env import process_identity

    proc = lookalike_server(tmp_path, 8765)
    try:
        identity = process_identity(proc.pid)
        state = {"pid": proc.pid, "started": identity["started"], "cmdline": identity["cmdline"], "port": 8765,
                 "api_url": "http://127.0.0.1:8765/api", "log": "server.log"}
        if change == "start time":
            state["started"] = str(int(identity["started"]) + 1)
        elif change == "command line":
            state["cmdline"] = identity["cmdline"][:-1]
        else:
            state["port"] = 8766
        server_state_path(prefect_home).write_text(json.dumps(state))
        code, result, err = run_json(cli, "server", "stop")
        assert code == 0, err
        assert proc.poll() is None and result["stale"] is True and not server_state_path(prefect_home).exists()
    finally:
        proc.kill()
        proc.wait()


def test_stop_signals_the_server_it_started_and_its_group(cli, prefect_home, tmp_path):
    from flows.prefect_env import process_identity

    proc = lookalike_server(tmp_path, 8765)
    identity = process_identity(proc.pid)
    server_state_path(prefect_home).write_text(json.dumps(
        {"pid": proc.pid, "started": identity["started"], "cmdline": identity["cmdline"], "port": 8765,
         "api_url": "http://127.0.0.1:8765/api", "log": "server.log"}))
    code, result, err = run_json(cli, "server", "stop")
    assert code == 0, err
    assert result == {"ok": True, "running": False, "stopped": True, "pid": proc.pid}
    assert proc.wait(timeout=5) is not None and not server_state_path(prefect_home).exists()


CORRUPT = ["{not json", "", "[1, 2]", '{"pid": "123", "api_url": "http://127.0.0.1:9/api"}',
           '{"pid": true, "api_url": "http://127.0.0.1:9/api"}', "\udcff"]


@pytest.mark.parametrize("content", CORRUPT)
def test_corrupt_state_file_is_reported_not_a_traceback(cli, prefect_home, content):
    state_file = server_state_path(prefect_home)
    state_file.write_bytes(content.encode(errors="surrogateescape"))
    code, result, err = run_json(cli, "server", "status")
    assert code == 0, err
    assert result["running"] is False and f"state file {state_file} is unusable" in result["note"]
    code, result, err = run_json(cli, "server", "stop")
    assert code == 0, err
    assert result["stopped"] is False and result["note"].startswith(f"removed unusable state file {state_file}")
    assert not state_file.exists()


def test_start_proceeds_past_a_corrupt_state_file(prefect_home, failing_prefect):
    server_state_path(prefect_home).write_text("{not json")
    with pytest.raises(server.ServerError, match=r"prefect server exited with code 3: boom: fake prefect"):
        server.start(prefect_home, timeout=5)
    assert not server_state_path(prefect_home).exists()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.org"])
def test_a_non_loopback_host_needs_allow_remote(cli, prefect_home, failing_prefect, host):
    code, out, err = cli(["server", "start", "--host", host])
    assert code == 2 and out == ""
    assert err.splitlines() == [f"error: --host {host} is not a loopback address and the server has no "
                                "authentication; pass --allow-remote to expose it anyway, or omit --host for "
                                "127.0.0.1"]
    assert list(prefect_home.iterdir()) == []


def test_allow_remote_warns_then_starts(cli, prefect_home, failing_prefect):
    code, _, err = cli(["server", "start", "--host", "0.0.0.0", "--allow-remote"])
    lines = err.splitlines()
    assert lines[0].startswith("warning: the prefect server will listen on 0.0.0.0, reachable from the network")
    assert code == 2 and lines[1].startswith("error: prefect server exited with code 3: boom")


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("127.0.0.2", True), ("0.0.0.0", False), ("10.0.0.1", False)])
def test_is_loopback(host, loopback):
    assert server.is_loopback(host) is loopback


def test_state_is_written_whole(prefect_home, sleeper):
    from flows.prefect_env import process_identity, read_server_state

    identity = process_identity(sleeper.pid)
    state = {"pid": sleeper.pid, "started": identity["started"], "cmdline": identity["cmdline"], "port": 1,
             "api_url": "http://127.0.0.1:1/api", "log": "server.log"}
    server._write_state(prefect_home, state)
    assert read_server_state(prefect_home) == (state, None)
    assert [p.name for p in prefect_home.iterdir()] == ["server.json"]

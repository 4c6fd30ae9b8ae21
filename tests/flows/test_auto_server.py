"""A command that runs a flow starts the local Prefect server when none runs; later commands reuse it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from flows import server

ROOT = Path(__file__).resolve().parents[2]


def sessions_of(prefect_home: Path) -> set[int]:
    """Session ids of the processes running with this Prefect home (a server leads its own session)."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            if f"PREFECT_HOME={prefect_home}".encode() in environ and int(proc.name) != os.getpid():
                found.add(os.getsid(int(proc.name)))
        except (OSError, ProcessLookupError):
            continue
    return found


@pytest.fixture
def auto_env(tmp_path, data_dir):
    """Environment for CLI subprocesses with the automatic server on; every server they start is ended after."""
    home = tmp_path / "prefect"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "SYNTHWATCH_AUTO_SERVER": "1", "SYNTHWATCH_PREFECT_HOME": str(home), "SYNTHWATCH_DATA_DIR": str(data_dir)}
    env.pop("PREFECT_API_URL", None)
    yield env, home
    server.stop(home)
    if Path("/proc/self/environ").exists():
        for sid in sessions_of(home):  # a second server would be a bug; never leave one running
            try:
                os.killpg(sid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def synthwatch(env: dict, *args: str, wait: bool = True):
    cmd = [sys.executable, "-m", "flows.cli", *args, "--json"]
    if not wait:
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # capture_output waits for EOF on the pipes: a server that kept them open would hang here (and hang CI)
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def flow_runs(api_url: str) -> int:
    """How many flow runs the server at api_url has recorded."""
    request = urllib.request.Request(api_url + "/flow_runs/count", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return int(json.load(resp))


def test_flow_commands_start_one_server_and_reuse_it(auto_env, tmp_path):
    env, home = auto_env
    csv = tmp_path / "ten.csv"
    csv.write_text("a,b\n" + "".join(f"{i},x{i}\n" for i in range(10)))
    assert synthwatch(env, "server", "status")["running"] is False

    # Two commands find no server at the same moment: one starts it, the other waits for it and uses it.
    both = [synthwatch(env, "ingest", str(csv), "--kind", "tabular", "--table", f"t{i}", wait=False)
            for i in range(2)]
    for proc in both:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert "warning" not in err, err
    first = synthwatch(env, "server", "status")
    assert first["running"] is True and first["api_url"].startswith("http://127.0.0.1:")
    if Path("/proc/self/environ").exists():
        assert sessions_of(home) == {first["pid"]}, "more than one server was started"
    assert flow_runs(first["api_url"]) == 2  # both ingests ran on it, neither on an ephemeral server

    # A later command reuses it: same process, same address, one more run recorded there.
    synthwatch(env, "ingest", str(csv), "--kind", "tabular", "--table", "t2")
    again = synthwatch(env, "server", "status")
    assert (again["pid"], again["api_url"]) == (first["pid"], first["api_url"])
    assert flow_runs(first["api_url"]) == 3

    stopped = synthwatch(env, "server", "stop")
    assert stopped["stopped"] is True and stopped["pid"] == first["pid"]
    assert synthwatch(env, "server", "status")["running"] is False


def test_auto_server_off_keeps_the_ephemeral_server(auto_env, tmp_path):
    env, home = auto_env
    env["SYNTHWATCH_AUTO_SERVER"] = "0"
    csv = tmp_path / "ten.csv"
    csv.write_text("a,b\n1,x\n")
    assert synthwatch(env, "ingest", str(csv), "--kind", "tabular", "--table", "t")["written"] is True
    assert synthwatch(env, "server", "status")["running"] is False
    assert not (home / "server.json").exists()

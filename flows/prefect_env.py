"""Prefect runs offline with its state under the project's data dir; a local server is used when one runs."""

from __future__ import annotations

import json
import logging
import os
import sys
import urllib.request
from contextlib import contextmanager
from pathlib import Path

SERVER_STATE = "server.json"
AUTO_SERVER = "SYNTHWATCH_AUTO_SERVER"  # 0 = every flow command starts Prefect's ephemeral server, as before
_start_failed = False


class _WarningsOnly(logging.Filter):
    synthwatch = True

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def server_state_path(prefect_home: Path) -> Path:
    return Path(prefect_home) / SERVER_STATE


def read_server_state(prefect_home: Path) -> tuple[dict | None, str | None]:
    """The recorded server state, or why it cannot be used; (None, None) when there is no state file."""
    try:
        raw = server_state_path(prefect_home).read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"unreadable ({exc.strerror})"
    try:
        info = json.loads(raw)
    except ValueError:
        return None, "not valid JSON"
    if not isinstance(info, dict):
        return None, "not a JSON object"
    wrong = [key for key, ok in (
        ("pid", isinstance(info.get("pid"), int) and not isinstance(info.get("pid"), bool) and info["pid"] > 0),
        ("api_url", isinstance(info.get("api_url"), str) and info["api_url"].startswith("http")),
        ("port", isinstance(info.get("port"), int) and not isinstance(info.get("port"), bool)),
        ("started", isinstance(info.get("started"), str) and bool(info["started"])),
        ("cmdline", isinstance(info.get("cmdline"), list) and all(isinstance(a, str) for a in info["cmdline"])),
    ) if not ok]
    if wrong and "pid" not in wrong and "api_url" not in wrong and "started" in wrong:
        return None, (f"written by an older synthwatch, without the start time that identifies pid {info['pid']}; "
                      "if that server still runs, end it yourself")
    if wrong:
        return None, f"missing or malformed {', '.join(wrong)}"
    return info, None


def process_identity(pid: int) -> dict | None:
    """A live process's start time and command line; None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
        return _ps_identity(pid)
    except OSError:
        return None
    # Fields after the parenthesised command name (which may hold spaces): state is field 3, starttime field 22.
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return {"started": fields[19].decode(), "cmdline": [a.decode(errors="replace") for a in cmdline.split(b"\0") if a]}


def _ps_identity(pid: int) -> dict | None:
    """process_identity where there is no /proc (macOS, BSD): ps's start time and command."""
    import subprocess

    fields = {}
    for field in ("lstart", "stat", "command"):
        done = subprocess.run(["ps", "-p", str(pid), "-o", f"{field}="], capture_output=True, text=True)
        if done.returncode != 0 or not done.stdout.strip():
            return None
        fields[field] = done.stdout.strip()
    if fields["stat"].startswith("Z"):
        return None
    return {"started": fields["lstart"], "cmdline": fields["command"].split()}


def server_mismatch(info: dict) -> str | None:
    """None when the recorded pid is still the `prefect server start` this tool started, else why it is not."""
    pid = info["pid"]
    identity = process_identity(pid)
    if identity is None:
        return f"pid {pid} is no longer running"
    if identity["started"] != info["started"]:
        return f"pid {pid} now belongs to another process (its start time differs)"
    cmdline = identity["cmdline"]
    args = cmdline[1:]
    ours = (any(Path(a).name.startswith("prefect") for a in cmdline[:2]) and "server" in args and "start" in args
            and ["--port", str(info["port"])] in [args[i:i + 2] for i in range(len(args) - 1)])
    if cmdline != info["cmdline"] or not ours:
        return f"pid {pid} is not the prefect server synthwatch started (it runs {' '.join(cmdline)[:80]!r})"
    return None


def running_server_url(prefect_home: Path, timeout: float = 0.5) -> str | None:
    """The API URL of the `synthwatch server start` server, if it still runs and answers its health check."""
    info, _ = read_server_state(prefect_home)
    if info is None or server_mismatch(info) is not None:
        return None
    try:
        with urllib.request.urlopen(info["api_url"].rstrip("/") + "/health", timeout=timeout) as resp:
            return info["api_url"] if resp.status == 200 else None
    except Exception:
        return None


def configure_prefect(prefect_home: Path, data_dir: Path | None = None) -> str | None:
    """Set Prefect's environment before it is imported; returns the local server URL in use, if any."""
    prefect_home = Path(prefect_home)
    prefect_home.mkdir(parents=True, exist_ok=True)
    data_dir = Path(data_dir) if data_dir else prefect_home.parent
    env = {
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{prefect_home / 'prefect.db'}",
        "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING"),
        # A failed task's traceback stays in the run's logs on the server; the console gets the CLI's one line.
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": os.environ.get("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL",
                                                                 "CRITICAL"),
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
        "XDG_DATA_HOME": str(data_dir / ".xdg"),
        "TORCHINDUCTOR_CACHE_DIR": str(data_dir / ".torchinductor"),
        "MPLCONFIGDIR": str(data_dir / ".matplotlib"),
    }
    os.environ.update(env)
    # Great Expectations announces every ephemeral context at INFO on a logger of its own; keep it off the console.
    # (it sets that logger to INFO when imported, so a filter, which survives setLevel, does the quieting).
    gx_logger = logging.getLogger("great_expectations.data_context.types.base")
    if not any(getattr(f, "synthwatch", False) for f in gx_logger.filters):
        gx_logger.addFilter(_WarningsOnly())
    url = running_server_url(prefect_home)
    if url:
        os.environ["PREFECT_API_URL"] = url
    else:
        os.environ.pop("PREFECT_API_URL", None)
    return url


def auto_server_enabled() -> bool:
    return os.environ.get(AUTO_SERVER, "1").strip().lower() not in ("0", "false", "no", "off")


def use_local_server() -> str | None:
    """Just before a command runs a flow: point Prefect at the local server of this PREFECT_HOME, starting it in the
    background when none answers, so this command and every later one skip Prefect's ephemeral server.

    Returns the server's API URL; None when SYNTHWATCH_AUTO_SERVER=0 or the server cannot start (then the flow
    runs on an ephemeral server, as it did before, after a one-line warning).
    """
    if os.environ.get("PREFECT_API_URL"):  # configure_prefect found a running server, or an earlier call started it
        return os.environ["PREFECT_API_URL"]
    global _start_failed
    if not auto_server_enabled() or not os.environ.get("PREFECT_HOME") or _start_failed:
        return None
    from flows import server
    from flows.errors import ServerError

    try:
        url = server.start(Path(os.environ["PREFECT_HOME"]))["api_url"]
    except ServerError as exc:
        _start_failed = True  # once per process: a pipeline's nested flows do not try (and warn) again
        print(f"warning: could not start the local prefect server ({exc}); this command uses an ephemeral one "
              f"(set {AUTO_SERVER}=0 to skip trying)", file=sys.stderr)
        return None
    os.environ["PREFECT_API_URL"] = url
    context = sys.modules.get("prefect.context")
    if context is not None:  # Prefect read its settings from the environment when imported; read them again
        context.refresh_global_settings_context()
    return url


class _ToRunLogger(logging.Handler):
    def __init__(self, run_logger):
        super().__init__(logging.INFO)
        self.run_logger = run_logger

    def emit(self, record: logging.LogRecord) -> None:
        self.run_logger.info(record.getMessage())


@contextmanager
def library_progress(library: str, run_logger):
    """Forward a library's INFO progress (epochs, losses) to a Prefect run logger while the block runs; a no-op
    without a run logger."""
    if run_logger is None:
        yield
        return
    library_log = logging.getLogger(library)
    handler = _ToRunLogger(run_logger)
    library_log.addHandler(handler)
    previous = library_log.level
    library_log.setLevel(logging.INFO)
    try:
        yield
    finally:
        library_log.removeHandler(handler)
        library_log.setLevel(previous)

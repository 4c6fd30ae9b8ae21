"""`synthwatch dashboard`: serve the fraud-monitoring dashboard (Streamlit) on this machine until Ctrl-C."""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from flows.commands import CommandResult, add_common
from flows.errors import SynthwatchError

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
LOOPBACK = "127.0.0.1"


class DashboardError(SynthwatchError):
    """The dashboard cannot start: no warehouse, a host beyond loopback without --allow-remote, a busy port."""


def register(subparsers) -> None:
    p = subparsers.add_parser("dashboard", help="Serve the fraud-monitoring dashboard in the browser (127.0.0.1).")
    add_common(p)
    p.add_argument("--port", type=int, help="port to serve on (default: a free one)")
    p.add_argument("--host", default=LOOPBACK, help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a --host other machines can reach (the dashboard has no login: anyone who reaches "
                        "the port reads the alerts and can label them)")
    p.set_defaults(handler=run_dashboard)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def check_port(host: str, port: int) -> None:
    if not 0 < port < 65536:
        raise DashboardError(f"--port {port} is not a port number (1-65535)")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as the server binds: connections of a server just stopped (TIME_WAIT) do not hold the port, a listener does
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(1)
        except OSError as exc:
            raise DashboardError(f"cannot serve on {host}:{port}: {exc.strerror or exc}; choose another --port "
                                 "(or leave it out for a free one)") from None


def streamlit_command(host: str, port: int) -> list[str]:
    """`streamlit run` headless, without usage statistics, file watching or a browser of its own."""
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", host, "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--server.runOnSave", "false", "--global.developmentMode", "false", "--client.toolbarMode", "viewer",
            "--theme.base", "light"]


def dashboard_env(settings) -> dict[str, str]:
    """The settings handed to the app, and Streamlit's own files kept under the data dir (not the home dir)."""
    root = str(APP.parent.parent.parent)
    home = settings.data_dir / "dashboard"
    env = {**os.environ, "SYNTHWATCH_DB": str(settings.db_path), "SYNTHWATCH_DATA_DIR": str(settings.data_dir),
           "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
           "HOME": str(home), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    if settings.config_path:
        env["SYNTHWATCH_CONFIG"] = str(settings.config_path)
    return env


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run_dashboard(args, settings) -> CommandResult:
    host = args.host
    if not is_loopback(host) and not args.allow_remote:
        raise DashboardError(f"--host {host} lets other machines reach the dashboard, which has no login; pass "
                             "--allow-remote as well if that is what you want")
    if not settings.db_path.is_file():
        raise DashboardError(f"no warehouse at {settings.db_path}: run make demo (or synthwatch run) first")
    if args.port is None:
        port = free_port(host)
    else:
        port = int(args.port)
        check_port(host, port)
    if not is_loopback(host):
        print(f"warning: serving on {host}:{port}: every machine that reaches this address can read the alerts "
              "and label them (no login)", file=sys.stderr, flush=True)
    home = settings.data_dir / "dashboard"
    home.mkdir(parents=True, exist_ok=True)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    # With --json, stdout carries only the final JSON object: the address goes to stderr.
    print(f"dashboard at {url} (warehouse {settings.db_path}); Ctrl-C stops it", flush=True,
          file=sys.stderr if args.json else sys.stdout)
    process = subprocess.Popen(streamlit_command(host, port), env=dashboard_env(settings), cwd=home,
                               stdout=subprocess.DEVNULL if args.json else None)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a terminated command stops its server too
    try:
        code = process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        code = 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code not in (0, -15):
        raise DashboardError(f"the dashboard server stopped with exit code {code} (its output above says why)")
    return CommandResult(data={"ok": True, "url": url, "db": str(settings.db_path)}, text="dashboard stopped")

"""Prefect runs offline with its state under the project's data dir; a local server is used when one runs."""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from pathlib import Path

SERVER_STATE = "server.json"


class _WarningsOnly(logging.Filter):
    synthwatch = True

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def server_state_path(prefect_home: Path) -> Path:
    return Path(prefect_home) / SERVER_STATE


def running_server_url(prefect_home: Path, timeout: float = 0.5) -> str | None:
    """The API URL of a `synthwatch server start` server that answers its health check, else None."""
    state_file = server_state_path(prefect_home)
    if not state_file.is_file():
        return None
    try:
        url = json.loads(state_file.read_text())["api_url"]
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout) as resp:
            return url if resp.status == 200 else None
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

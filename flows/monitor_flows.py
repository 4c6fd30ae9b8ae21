"""The monitor and retrain flows: thin Prefect tasks over flows.monitor, with JSON parameters so each can be served
as a scheduled deployment (flows/schedule.py)."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.runtime import flow_run

from flows.config import Settings
from flows.monitor import MonitorSettings


def monitor_settings(settings: Settings) -> MonitorSettings:
    return MonitorSettings.from_config(settings.config.get("monitor"))


def _run_id() -> str:
    import uuid

    return str(flow_run.get_id() or uuid.uuid4())


@task(cache_policy=NONE)
def ingest_inbox_task(db_path: str, data_dir: str, config_path: str | None) -> dict | None:
    """Ingest every new file of the inbox as a batch (bad files rejected with their reason, never fatal)."""
    from flows.inbox import ingest_inbox
    from flows.warehouse import Warehouse

    settings = Settings.from_params(db_path, data_dir, config_path)
    cfg = monitor_settings(settings)
    if not cfg.inbox:
        return None
    return ingest_inbox(Warehouse(settings.db_path), settings.resolve_path(cfg.inbox), cfg.table, run_id=_run_id(),
                        progress=get_run_logger())


@task(cache_policy=NONE)
def score_batches_task(db_path: str, data_dir: str, config_path: str | None) -> dict:
    """Score the batches no detector scored yet with the table's champion; record figures, drift and events."""
    from flows.monitor import score_new_batches

    settings = Settings.from_params(db_path, data_dir, config_path)
    return score_new_batches(settings, monitor_settings(settings), _run_id(), progress=get_run_logger())


@task(cache_policy=NONE)
def gap_task(db_path: str, data_dir: str, config_path: str | None) -> str | None:
    """Raise a gap event when nothing arrived for too long."""
    from flows.monitor import check_gap
    from flows.warehouse import Warehouse

    settings = Settings.from_params(db_path, data_dir, config_path)
    event = check_gap(Warehouse(settings.db_path), monitor_settings(settings), _run_id())
    return event["message"] if event else None


@flow(name="monitor", log_prints=False)
def monitor_flow(db_path: str, data_dir: str, config_path: str | None = None) -> dict:
    """Ingest what arrived in the inbox, score only the new batches, measure drift, raise events."""
    inbox = ingest_inbox_task(db_path, data_dir, config_path)
    scored = score_batches_task(db_path, data_dir, config_path)
    gap = gap_task(db_path, data_dir, config_path)
    get_run_logger().info("monitor: %s file(s) ingested, %s rejected; %d batch(es) scored, %d rows, %d alerts",
                          inbox["ingested"] if inbox else 0, inbox["rejected"] if inbox else 0,
                          len(scored["batches"]), scored["rows"], scored["alerts"])
    return {"inbox": inbox, **scored, "gap_event": gap}


@task(cache_policy=NONE)
def retrain_task(db_path: str, data_dir: str, config_path: str | None) -> dict:
    """Train a challenger and promote it only when it is not worse on the labelled items."""
    from flows.monitor import retrain

    settings = Settings.from_params(db_path, data_dir, config_path)
    return retrain(settings, monitor_settings(settings), _run_id(), progress=get_run_logger())


@flow(name="retrain", log_prints=False)
def retrain_flow(db_path: str, data_dir: str, config_path: str | None = None) -> dict:
    """Retrain the monitored table's detector with a champion/challenger decision."""
    return retrain_task(db_path, data_dir, config_path)

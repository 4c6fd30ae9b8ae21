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
def prepare_chunk_task(db_path: str, table: str, batches: list[dict], model_id: str, reference) -> list:
    """Read and score a few batches (pure reading: runs on any worker of the task runner)."""
    from flows.monitor import prepare_chunk_by_id

    return prepare_chunk_by_id(db_path, table, batches, model_id, reference)


def score_batches(db_path: str, data_dir: str, config_path: str | None, parallel: bool) -> dict:
    """Score the batches no detector scored yet with the table's champion; record figures, drift and events.

    With `parallel`, the chunks are scored by tasks of the flow's task runner (a Dask cluster when asked) and
    recorded here, one transaction per chunk, in arrival order."""
    from flows.monitor import score_new_batches

    settings = Settings.from_params(db_path, data_dir, config_path)
    cfg = monitor_settings(settings)

    def prepare_many(chunks, model_id, reference):
        futures = [prepare_chunk_task.submit(db_path, cfg.table, chunk, model_id, reference) for chunk in chunks]
        for future in futures:
            yield future.result()

    return score_new_batches(settings, cfg, _run_id(), progress=get_run_logger(),
                             prepare_many=prepare_many if parallel else None)


@task(cache_policy=NONE)
def score_batches_task(db_path: str, data_dir: str, config_path: str | None) -> dict:
    """Score the batches no detector scored yet with the table's champion; record figures, drift and events."""
    return score_batches(db_path, data_dir, config_path, parallel=False)


@task(cache_policy=NONE)
def gap_task(db_path: str, data_dir: str, config_path: str | None) -> str | None:
    """Raise a gap event when nothing arrived for too long."""
    from flows.monitor import check_gap
    from flows.warehouse import Warehouse

    settings = Settings.from_params(db_path, data_dir, config_path)
    event = check_gap(Warehouse(settings.db_path), monitor_settings(settings), _run_id())
    return event["message"] if event else None


@flow(name="monitor", log_prints=False)
def monitor_flow(db_path: str, data_dir: str, config_path: str | None = None, dask_workers: int = 0) -> dict:
    """Ingest what arrived in the inbox, score only the new batches, measure drift, raise events.

    `dask_workers` > 0 scores the batches on a local Dask cluster of that many worker processes (prefect-dask),
    with the same scores as the default runner."""
    inbox = ingest_inbox_task(db_path, data_dir, config_path)
    if dask_workers > 0:
        scored = score_batches(db_path, data_dir, config_path, parallel=True)
    else:
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


def with_dask(flow_fn, workers: int):
    """The flow run on a local Dask cluster of `workers` single-threaded worker processes (prefect-dask)."""
    from prefect_dask import DaskTaskRunner

    return flow_fn.with_options(task_runner=DaskTaskRunner(
        cluster_kwargs={"n_workers": int(workers), "threads_per_worker": 1, "processes": True,
                        "dashboard_address": None}))

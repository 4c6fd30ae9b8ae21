"""`synthwatch run`: the whole pipeline from a config file, each stage a Prefect flow or task."""

from __future__ import annotations

import importlib
import time

from prefect import flow, get_run_logger

from flows.config import Settings
from flows.errors import ConfigError, SynthwatchError, user_error_types
from flows.queries import format_summary, warehouse_summary  # noqa: F401 - re-exported for callers

# Stage name -> "module:function"; each function takes (settings, stage_config) and returns a summary dict.
STAGES = {
    "fetch": "flows.pipeline:fetch_stage",
    "ingest": "flows.pipeline:ingest_stage",
    "train": "flows.train:pipeline_stage",
    "generate": "flows.generate:pipeline_stage",
    "detect": "flows.detect:pipeline_stage",
    "summary": "flows.pipeline:summary_stage",
}


def resolve_stage(name: str):
    """The stage function, or None when its module has not landed in this build."""
    if name not in STAGES:
        raise ConfigError(f"unknown pipeline stage {name!r}: known stages are {', '.join(STAGES)}")
    module_name, func = STAGES[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise
    return getattr(module, func)


def fetch_stage(settings: Settings, cfg: dict) -> dict:
    from flows.datasets import fetch

    results = [fetch(name, settings.raw_dir) for name in cfg.get("datasets", [])]
    return {"datasets": [r["name"] for r in results], "fetched": [r["name"] for r in results if r["fetched"]]}


def ingest_stage(settings: Settings, cfg: list) -> dict:
    from flows.commands.ingest import ingest_options, run_ingest_source

    if not isinstance(cfg, list):
        raise ConfigError("the ingest section must be a list of {dataset|source, kind, table} entries")
    done = []
    for entry in cfg:
        if entry.get("source"):
            source = settings.resolve_path(entry["source"])
        elif entry.get("dataset") and entry.get("file"):
            source = settings.raw_dir / entry["dataset"] / entry["file"]
        else:
            raise ConfigError(f"ingest entry {entry} needs 'source', or 'dataset' and 'file'")
        result = run_ingest_source(settings, str(source), entry["kind"], entry["table"], entry.get("mode", "replace"),
                                   ingest_options(entry))
        done.append({"table": result["table"], "kind": result["kind"], "rows": result["rows"],
                     "written": result["written"]})
    return {"tables": done}


def check_pipeline(settings: Settings, stages: list[str]) -> None:
    """Before Prefect starts: every stage exists, and the hyperparameters the config names are the models' own."""
    for name in stages:
        resolve_stage(name)
    config = settings.config
    if "train" in stages:
        from flows.train import check_train_args

        for i, job in enumerate(config["train"]["models"]):
            try:  # no generator named: the table's kind decides once it is ingested (run_train checks then)
                if job["generator"] is not None:
                    check_train_args(job["generator"], job["holdout"], job["epochs"], job["params"])
            except user_error_types() as exc:
                raise ConfigError(f"train.models.{i}: {exc}") from None
    if "generate" in stages:
        from flows.generate import check_generate_args

        for i, job in enumerate(config["generate"]["tables"]):
            try:
                check_generate_args(job["rows"], job["table"], job["where"], sequences=job["sequences"],
                                    length=job["length"])
            except user_error_types() as exc:
                raise ConfigError(f"generate.tables.{i}: {exc}") from None
    if "generate" in stages or "train" in stages:
        from flows.gate import quality_config

        quality_config(settings)
    if "detect" in stages:
        from detectors.registry import get_detector_class
        from flows.detect_checks import check_params

        detect = config["detect"]
        try:
            check_params(detect["params"], get_detector_class(detect["detector"]), where="detect.params.")
        except user_error_types() as exc:
            raise ConfigError(f"config: {exc}") from None


def summary_stage(settings: Settings, cfg: dict) -> dict:
    return warehouse_summary(settings)


@flow(name="pipeline")
def pipeline_flow(db_path: str, data_dir: str, config_path: str | None, stages: list[str]) -> dict:
    """Run the configured stages in order; stop at the first that fails."""
    settings = Settings.from_params(db_path, data_dir, config_path)
    logger = get_run_logger()
    results: dict[str, dict] = {}
    for name in stages:
        fn = resolve_stage(name)
        if fn is None:
            results[name] = {"skipped": "stage not available in this build"}
            logger.warning("stage %s is not available in this build; skipped", name)
            continue
        started = time.perf_counter()
        try:
            out = fn(settings, settings.config.get(name, {}))
        except user_error_types() as exc:
            error = SynthwatchError(f"stage {name} failed: {exc}".splitlines()[0])
            error.exit_code = int(getattr(exc, "exit_code", 2))
            raise error from exc
        results[name] = {**(out or {}), "seconds": round(time.perf_counter() - started, 2)}
        logger.info("stage %s done in %.1fs", name, results[name]["seconds"])
    return {"stages": results}

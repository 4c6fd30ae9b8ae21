"""Train flow: split off a holdout, fit a generator on the rest, store the model and its `_models` row."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from flows.bookkeeping import catalog_entry, forget_table, insert_row, mark_table, now_utc, record_table
from flows.errors import ModelNotFound, SynthwatchError, WarehouseBusy
from flows.kinds import table_kind
from flows.prefect_env import library_progress
from flows.modelstore import folders_set_aside, recording_model
from flows.queries import MODEL_COLUMNS, get_model_row, list_models  # noqa: F401 - re-exported for callers
from flows.warehouse import Warehouse, qualified, validate_table_name


class TrainError(SynthwatchError):
    """Training input that cannot be used: unknown generator, bad holdout share, unusable table."""


def check_train_args(generator: str, holdout: float, epochs: int | None, params: dict | None = None) -> dict:
    """Validate the cheap arguments; returns the generator's hyperparameters (seed added by the caller)."""
    import inspect

    from generators.registry import get_generator_class

    cls = get_generator_class(generator)  # UnknownGeneratorError names the choices
    if not 0.0 <= holdout < 0.9:
        raise TrainError(f"--holdout must be a share in [0, 0.9), got {holdout}")
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    params = dict(params or {})
    if epochs is not None:
        if epochs < 1:
            raise TrainError(f"--epochs must be at least 1, got {epochs}")
        if "epochs" not in accepted:
            raise TrainError(f"generator {generator!r} does not train in epochs; drop --epochs")
        params["epochs"] = int(epochs)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise TrainError(f"generator {generator!r} has no parameters {unknown}; it takes {sorted(accepted)}")
    return params


def choose_generator(kind: str, generator: str | None, table: str) -> str:
    """The generator to train on a table of `kind`: the named one if it learns that kind, else the kind's default.

    A mismatch is one line naming the generators that fit.
    """
    from generators.registry import REGISTRY, default_generator, get_entry

    fitting = sorted(n for n, e in REGISTRY.items() if kind in e.kinds)
    if generator is None:
        if not fitting:
            raise TrainError(f"table {table} holds {kind} data and no generator learns {kind} data yet")
        return default_generator(kind)
    entry = get_entry(generator)  # UnknownGeneratorError names the choices
    if kind not in entry.kinds:
        raise TrainError(f"table {table} holds {kind} data and generator {generator!r} learns {entry.kind} data; "
                         f"generators for {kind} data: {', '.join(fitting) if fitting else 'none yet'}")
    return generator


def check_trainable_table(wh: Warehouse, table: str, generator: str | None = None) -> str:
    """Raise before any flow starts if the table is missing, holds a kind of data the generator does not learn,
    has no rows or has an all-null column; returns the generator to use (the kind's default when None)."""
    from flows.warehouse import quote_ident

    if not wh.table_exists(table):
        wh.read_frame(table)  # raises TableNotFound listing the tables
    kind, _ = table_kind(wh, table)
    generator = choose_generator(kind, generator, table)
    with wh.read() as con:
        cols = [r[0] for r in con.execute(f"DESCRIBE {qualified(table)}").fetchall()]
        counts = con.execute("SELECT count(*), " + ", ".join(f"count({quote_ident(c)})" for c in cols)
                             + f" FROM {qualified(table)}").fetchall()[0]
    if counts[0] == 0:
        raise TrainError(f"table {table} has no rows; ingest data into it before training")
    empty = [c for c, n in zip(cols, counts[1:]) if n == 0 and not (kind == "image" and c == "label")]
    if empty:
        raise TrainError(f"table {table} has columns that are entirely null: {', '.join(empty)}; "
                         "drop them (or fill them) before training")
    return generator


def split_holdout(data: pd.DataFrame, share: float, seed: int, kind: str = "tabular",
                  detail: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) of a table of `kind` (see `flows.kinds.split_holdout`); TrainError when it cannot."""
    from flows.kinds import KindError, split_holdout as split

    try:
        return split(kind, data, share, seed, detail)
    except KindError as exc:
        raise TrainError(str(exc)) from None


def new_model_id(table: str, generator: str) -> str:
    return f"{table}_{generator}_{uuid.uuid4().hex[:8]}"


@dataclass
class TrainingSplit:
    """A table read for training: its kind, catalog detail and content hash, and its train/holdout split."""

    table: str
    kind: str
    detail: dict
    source_hash: str
    train: pd.DataFrame
    holdout: pd.DataFrame


def load_training_split(db_path: str, table: str, holdout: float, seed: int) -> TrainingSplit:
    """Read the table (read-only) and split off its holdout the way its kind needs."""
    wh = Warehouse(db_path)
    validate_table_name(table)
    kind, detail = table_kind(wh, table)
    data = wh.read_frame(table)
    source_hash = wh.table_hash(table)
    if len(data) == 0:
        raise TrainError(f"table {table} has no rows; ingest data into it before training")
    train, hold = split_holdout(data, holdout, seed, kind, detail)
    return TrainingSplit(table, kind, detail, source_hash, train, hold)


def fit_generator(split: TrainingSplit, generator: str, params: dict, seed: int, progress=None):
    """(fitted generator, seconds): the kind's container of the training split, learned with no connection open."""
    from flows.kinds import KindError, to_container
    from generators.registry import make_generator

    try:
        learn = to_container(split.kind, split.train, split.detail)
    except KindError as exc:
        raise TrainError(f"table {split.table}: {exc}") from None
    gen = make_generator(generator, **params, seed=seed)
    with library_progress("generators", progress):
        started = time.perf_counter()
        gen.fit(learn)
        return gen, time.perf_counter() - started


def persist_model(db_path: str, models_dir: str, split: TrainingSplit, gen, generator: str, seed: int,
                  fit_seconds: float, made_by: str = "cli") -> dict:
    """Save the model's files and record it with its splits in one transaction (all of it or nothing)."""
    wh = Warehouse(db_path)
    table = split.table
    model_id = new_model_id(table, generator)
    path = Path(models_dir) / model_id
    train, hold = split.train, split.holdout
    train_table, holdout_table = f"_train_{model_id}", (f"_holdout_{model_id}" if len(hold) else None)
    row = {"model_id": model_id, "generator": generator, "params": json.dumps(gen.get_params()),
           "source_table": table, "source_hash": split.source_hash, "train_table": train_table,
           "holdout_table": holdout_table, "train_rows": len(train), "holdout_rows": len(hold), "seed": seed,
           "fit_seconds": round(fit_seconds, 3), "path": str(path),
           "created_at": now_utc(), "made_by": made_by}
    roles = {k: split.detail[k] for k in ("time_column", "id_column") if k in split.detail}
    with recording_model(wh, Path(models_dir), model_id, gen.save) as con:
        source = catalog_entry(con, table)
        for name, frame in ((train_table, train), (holdout_table, hold)):
            if name:
                Warehouse.write_frame(con, name, frame, internal=True)
                record_table(con, name, kind=source["kind"] if source else split.kind, origin="pipeline",
                             detail={"model_id": model_id, "source_table": table, "made_by": made_by, **roles})
        insert_row(con, "_models", {c: row[c] for c in MODEL_COLUMNS})
    out = {k: (str(v) if k == "created_at" else v) for k, v in row.items()}
    out["params"] = gen.get_params()
    out["epochs_run"] = getattr(gen, "epochs_run_", None)
    out["kind"] = split.kind
    return out


def train_model(db_path: str, models_dir: str, table: str, generator: str, params: dict, seed: int,
                holdout: float, progress=None, made_by: str = "cli") -> dict:
    """Read the table, split, fit, save under models_dir/<id>/ and record it; nothing is kept on failure.

    `made_by` records who asked: `pipeline` (`synthwatch run`, whose later runs retire this model) or `cli`.
    """
    split = load_training_split(db_path, table, holdout, seed)
    gen, seconds = fit_generator(split, generator, params, seed, progress)
    return persist_model(db_path, models_dir, split, gen, generator, seed, seconds, made_by)


def _busy(task, task_run, state) -> bool:
    """Retry a persist only when another writer held the warehouse (the write is all-or-nothing, so it is safe)."""
    try:
        state.result()
    except WarehouseBusy:
        return True
    except BaseException:  # noqa: BLE001 - any other failure is final
        return False
    return False


@task(cache_policy=NONE)
def load_task(db_path: str, table: str, holdout: float, seed: int) -> TrainingSplit:
    """Read one warehouse table and split off its holdout."""
    return load_training_split(db_path, table, holdout, seed)


@task(cache_policy=NONE)
def fit_task(split: TrainingSplit, generator: str, params: dict, seed: int):
    """Fit one generator on a training split; bad input raises, so Prefect records the run as Failed."""
    return fit_generator(split, generator, params, seed, progress=get_run_logger())


@task(cache_policy=NONE, retries=3, retry_delay_seconds=2, retry_condition_fn=_busy)
def persist_task(db_path: str, models_dir: str, split: TrainingSplit, fitted, generator: str, seed: int,
                 made_by: str) -> dict:
    """Save and record a fitted model; retried when the warehouse was busy (never refits)."""
    gen, seconds = fitted
    return persist_model(db_path, models_dir, split, gen, generator, seed, seconds, made_by)


@flow(name="train", log_prints=False)
def train_flow(db_path: str, models_dir: str, table: str, generator: str, params: dict | None = None,
               seed: int = 0, holdout: float = 0.2, made_by: str = "cli") -> dict:
    """Train a generator on a warehouse table of any kind, keeping a holdout split for the privacy checks."""
    split = load_task(db_path, table, holdout, seed)
    fitted = fit_task(split, generator, params or {}, seed)
    result = persist_task(db_path, models_dir, split, fitted, generator, seed, made_by)
    get_run_logger().info("model %s trained on %s rows of %s in %.1fs", result["model_id"], result["train_rows"],
                          table, result["fit_seconds"])
    return result


def run_train(settings, table: str, generator: str | None = None, *, epochs: int | None = None, seed: int = 0,
              holdout: float = 0.2, params: dict | None = None, made_by: str = "cli") -> dict:
    """Check the cheap things, then run the train flow; returns its result or raises its one-line error."""
    from flows.commands import run_flow, state_result

    validate_table_name(table)
    generator = check_trainable_table(Warehouse(settings.db_path), table, generator)
    params = check_train_args(generator, holdout, epochs, params)
    state = run_flow(train_flow, str(settings.db_path), str(settings.models_dir), table, generator, params, seed,
                     holdout, made_by)
    return state_result(state)


def model_tables(con, model: dict) -> list[tuple[str, str]]:
    """(schema, name) of a model's own tables: its `_train_`/`_holdout_` splits, as its row and the catalog record
    them (catalogued as the pipeline's data for this model; a table of any other origin is never included)."""
    named = {n.lower(): n for n in (model["train_table"], model.get("holdout_table")) if n}
    catalogued = con.execute(
        "SELECT table_schema, table_name FROM main._catalog WHERE origin = 'pipeline' "
        "AND json_extract_string(detail, '$.model_id') = ?", [model["model_id"]]).fetchall()
    found = {(schema, name.lower()): name for schema, name in catalogued}
    for key, name in named.items():
        entry = catalog_entry(con, name)
        if entry is None or entry["origin"] == "pipeline":
            found.setdefault(("main", key), name)
    return sorted((schema, name) for (schema, _), name in found.items())


def delete_models(settings, model_ids: list[str]) -> list[dict]:
    """Retire generator models: their `_models` rows, their `_train_`/`_holdout_` tables (and catalog entries),
    their files. Tables generated from them stay; their catalog detail is marked `model_deleted`.

    All of it or nothing: the warehouse changes in one transaction, and the models' folders are moved aside first
    and put back if it fails. Files are only ever deleted inside the models directory, whatever a row names.
    """
    wh = Warehouse(settings.db_path)
    models = [get_model_row(settings, model_id) for model_id in dict.fromkeys(model_ids)]
    with folders_set_aside([Path(m["path"]) for m in models], settings.models_dir) as owned:
        results = [{"model_id": model["model_id"], "source_table": model["source_table"],
                    "files_deleted": str(path) if path else None} for model, path in zip(models, owned)]
        stamp = now_utc()
        with wh.transaction() as con:
            for model, result in zip(models, results):
                if not con.execute("SELECT count(*) FROM main._models WHERE model_id = ?",
                                   [model["model_id"]]).fetchall()[0][0]:
                    raise ModelNotFound(f"model {model['model_id']} was deleted by another process meanwhile")
                dropped = []
                for schema, name in model_tables(con, model):
                    con.execute(f"DROP TABLE IF EXISTS {qualified(name, schema)}")
                    forget_table(con, name, schema=schema)
                    dropped.append(name if schema == "main" else f"{schema}.{name}")
                generated = con.execute(
                    "SELECT table_schema, table_name FROM main._catalog WHERE origin = 'generated' "
                    "AND json_extract_string(detail, '$.model_id') = ? ORDER BY 1, 2",
                    [model["model_id"]]).fetchall()
                for schema, name in generated:
                    mark_table(con, name, {"model_deleted": True, "model_deleted_at": stamp}, schema=schema)
                con.execute("DELETE FROM main._models WHERE model_id = ?", [model["model_id"]])
                result.update(tables_dropped=dropped,
                              generated_kept=[n if s == "main" else f"{s}.{n}" for s, n in generated])
    return results


def pipeline_stage(settings, stage_config: dict) -> dict:
    """`synthwatch run` stage: train the configured generator on each configured table.

    With ``replace_previous`` (the default) each new model retires, as soon as it is recorded, the models earlier
    runs of the pipeline trained on the same table with the same generator (`delete_models`: rows, splits, files;
    their generated tables stay, marked). The train stage owns the models, so it retires them: the generate stage
    always samples from the newest model, so an earlier one is never used again, and `--stages train` alone does
    not pile models up either. A failed training retires nothing. Models trained by hand (`synthwatch train`,
    recorded `made_by = 'cli'`) are never touched.
    """
    cfg = stage_config or {}
    jobs = cfg.get("models") or []
    replace_previous = bool(cfg.get("replace_previous", True))
    done = []
    for job in jobs:
        table, generator = job["table"], job.get("generator")
        result = run_train(settings, table, generator, epochs=job.get("epochs"), seed=int(job.get("seed", 0)),
                           holdout=float(job.get("holdout", 0.2)), params=job.get("params"), made_by="pipeline")
        retired = []
        if replace_previous:
            earlier = [m["model_id"] for m in list_models(settings)
                       if m["made_by"] == "pipeline" and m["source_table"] == table
                       and m["generator"] == result["generator"]
                       and m["model_id"] != result["model_id"]]
            retired = [d["model_id"] for d in delete_models(settings, earlier)] if earlier else []
        done.append({**{k: result[k] for k in ("model_id", "generator", "source_table", "train_rows",
                                               "holdout_rows", "fit_seconds")}, "retired": retired})
    return {"models": done}

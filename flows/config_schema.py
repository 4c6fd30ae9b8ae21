"""The typed shape of `pipeline.yaml`: every section, its keys, their types and defaults, in one place."""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from flows.errors import ConfigError

STAGE_NAMES = ("fetch", "ingest", "train", "generate", "detect", "summary")


class _Section(BaseModel):
    # strict: a quoted "0.8" or "abc" where a number belongs is an error, not a guess.
    model_config = ConfigDict(extra="forbid", strict=True)


class FetchSection(_Section):
    datasets: list[str] = Field(default_factory=list)


class IngestEntry(_Section):
    kind: Literal["tabular", "timeseries", "image"]
    table: str
    source: str | None = None
    dataset: str | None = None
    file: str | None = None
    mode: Literal["replace", "append"] = "replace"
    delimiter: str | None = None
    header: bool | None = None
    columns: list[str] | str | None = None
    key: list[str] | None = None
    key_columns: list[str] | None = None
    skip: int | None = Field(default=None, ge=0)
    time_column: str | None = None
    id_column: str | None = None
    layout: Literal["long", "wide"] | None = None
    format: Literal["csv", "parquet", "json"] | None = None


class TrainModel(_Section):
    table: str
    generator: str | None = None  # None: the default generator of the table's kind
    seed: int = 0
    holdout: float = Field(default=0.2, ge=0.0, lt=0.9)
    epochs: int | None = Field(default=None, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)


class TrainSection(_Section):
    models: list[TrainModel] = Field(default_factory=list)
    # each run's model retires the pipeline's earlier models of the same (table, generator); hand-trained ones stay
    replace_previous: bool = True


class GenerateTable(_Section):
    source_table: str
    table: str
    generator: str | None = None  # None: the default generator of the source table's kind
    rows: int | None = Field(default=None, ge=1)  # rows or images; None: as many as the model learned
    sequences: int | None = Field(default=None, ge=1)  # series: how many sequences; None: as many as learned
    length: int | None = Field(default=None, ge=1)  # a single long series: steps per sampled segment
    seed: int | None = None
    where: str | None = None
    replace: bool = True  # the pipeline owns its synthetic tables; ingested ones are never replaced


class GenerateSection(_Section):
    tables: list[GenerateTable] = Field(default_factory=list)


class QualitySection(_Section):
    seed: int = 0
    # names and bounds are checked against quality.gate.DEFAULT_THRESHOLDS by `flows.gate.quality_config`
    thresholds: dict[str, float | None] = Field(default_factory=dict)
    # the gates of series and images (names checked against quality.sequence / quality.image defaults)
    sequence_thresholds: dict[str, float | None] = Field(default_factory=dict)
    image_thresholds: dict[str, float | None] = Field(default_factory=dict)
    targets: dict[str, str] = Field(default_factory=dict)


class DetectSection(_Section):
    table: str = "creditcard"
    detector: str = "ganomaly"
    label_column: str | None = None
    normal_value: int | float | str | bool | None = None
    key_column: str | None = None
    epochs: int | None = Field(default=None, ge=1)
    seed: int = 0
    top: int = Field(default=10, ge=0)
    max_train_rows: int | None = Field(default=None, ge=1)
    replace_previous: bool = True
    # names and types are checked against the detector's hyperparameters by `check_pipeline_params`
    params: dict[str, Any] = Field(default_factory=dict)


class RetrainSection(_Section):
    detector: str | None = None          # None: the champion's detector
    label_column: str | None = None      # a label the arriving data carries, used with the analysts' labels
    normal_value: int | float | str | bool | None = None
    max_train_rows: int | None = Field(default=50_000, ge=1)
    epochs: int | None = Field(default=None, ge=1)
    seed: int = 0
    min_labels: int = Field(default=10, ge=2)
    tolerance: float = Field(default=0.0, ge=0.0, le=1.0)  # AUPRC the challenger may lose and still win
    params: dict[str, Any] = Field(default_factory=dict)


class MonitorSection(_Section):
    table: str = "transactions"
    inbox: str | None = "inbox"          # relative to the data dir; null: score what is already ingested
    model: str | None = None
    reference_table: str | None = None
    psi_threshold: float = Field(default=0.2, gt=0)
    psi_consecutive: int = Field(default=2, ge=1)
    drift_ignore: list[str] = Field(default_factory=list)
    alert_rate_max: float | None = Field(default=None, gt=0, le=1)
    alert_rate_factor: float = Field(default=3.0, gt=0)
    max_gap_minutes: float | None = Field(default=120.0, gt=0)
    drift_bins: int = Field(default=10, ge=2, le=100)
    reference_rows: int = Field(default=50_000, ge=100)
    retrain: RetrainSection = Field(default_factory=RetrainSection)


class Deployment(_Section):
    name: str
    flow: Literal["monitor", "retrain", "pipeline"]
    interval_seconds: float | None = Field(default=None, gt=0)
    cron: str | None = None
    retries: int = Field(default=1, ge=0)
    retry_delay_seconds: float = Field(default=10.0, ge=0)
    paused: bool = False

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        import re

        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}", name):
            raise ValueError(f"deployment name {name!r}: use letters, digits, '-' and '_'")
        return name


class ScheduleSection(_Section):
    deployments: list[Deployment] = Field(default_factory=list)


class PipelineConfig(_Section):
    stages: list[str] = Field(default_factory=list)
    fetch: FetchSection = Field(default_factory=FetchSection)
    ingest: list[IngestEntry] = Field(default_factory=list)
    train: TrainSection = Field(default_factory=TrainSection)
    generate: GenerateSection = Field(default_factory=GenerateSection)
    quality: QualitySection = Field(default_factory=QualitySection)
    detect: DetectSection = Field(default_factory=DetectSection)
    monitor: MonitorSection = Field(default_factory=MonitorSection)
    schedule: ScheduleSection = Field(default_factory=ScheduleSection)

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, stages: list[str]) -> list[str]:
        for name in stages:
            if name not in STAGE_NAMES:
                raise ValueError(f"unknown pipeline stage {name!r}: known stages are {', '.join(STAGE_NAMES)}")
        return stages


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The section model whose keys live at `loc` (a pydantic error location, list indexes included)."""
    model: Any = PipelineConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        annotation = field.annotation
        inner = getattr(annotation, "__args__", None)
        candidates = [annotation, *(inner or [])]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return None
    return model


def suggest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else f"; known keys: {', '.join(choices)}"


def _message(error: dict) -> str:
    loc = tuple(error["loc"])
    path = ".".join(str(p) for p in loc)
    if error["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        known = list(parent.model_fields) if parent else []
        return f"{path}: unknown key{suggest(str(loc[-1]), known) if known else ''}"
    if error["type"] == "value_error":
        return f"{path}: {str(error['msg']).removeprefix('Value error, ')}" if path else str(error["msg"])
    got = error.get("input")
    shown = repr(got) if not isinstance(got, (dict, list)) or len(repr(got)) < 60 else type(got).__name__
    return f"{path}: {error['msg'].lower()} (got {shown})"


def validate_config(raw: dict[str, Any], origin: str) -> dict[str, Any]:
    """`raw` checked against PipelineConfig; returns it as plain data with defaults filled in."""
    try:
        config = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        raise ConfigError(f"config {origin}: {_message(first)}" + (f" (and {more} more problem(s))" if more else "")
                          ) from None
    return config.model_dump()

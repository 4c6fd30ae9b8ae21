"""Paths and the pipeline config, resolved from flags, environment variables and defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flows.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = Path(__file__).resolve().parent / "pipeline.yaml"


def load_config(path: str | Path | None = None) -> dict[str, Any]:
    """Read and validate a pipeline config; the bundled default when no path is given.

    Returns the config as plain data with every default filled in (`PipelineConfig`); an unknown or mistyped
    key is a ConfigError naming its path, e.g. ``detect.epocs: unknown key; did you mean epochs?``.
    """
    config_path = Path(path) if path else DEFAULT_CONFIG
    if not config_path.is_file():
        raise ConfigError(f"config file {config_path} does not exist; pass --config with a YAML file")
    try:
        loaded = yaml.safe_load(config_path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {config_path} is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {config_path} must hold a mapping of stage names to settings")
    from flows.config_schema import validate_config

    return validate_config(loaded, str(config_path))


@dataclass
class Settings:
    """Where the warehouse, models, reports and Prefect state live for one invocation."""

    data_dir: Path
    db_path: Path
    config_path: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, db: str | Path | None = None, config: str | Path | None = None,
                 data_dir: str | Path | None = None) -> "Settings":
        """Resolve settings: explicit arguments, then SYNTHWATCH_* variables, then the project's data/ dir."""
        data = Path(data_dir or os.environ.get("SYNTHWATCH_DATA_DIR") or PROJECT_ROOT / "data").resolve()
        db_path = Path(db or os.environ.get("SYNTHWATCH_DB") or data / "warehouse.duckdb").resolve()
        config = config or os.environ.get("SYNTHWATCH_CONFIG")
        config_path = Path(config).resolve() if config else None
        return cls(data_dir=data, db_path=db_path, config_path=config_path, config=load_config(config_path))

    def to_params(self) -> dict[str, str | None]:
        """The settings as JSON-serialisable flow parameters (`from_params` rebuilds them inside the run)."""
        return {"db_path": str(self.db_path), "data_dir": str(self.data_dir),
                "config_path": str(self.config_path) if self.config_path else None}

    @classmethod
    def from_params(cls, db_path: str, data_dir: str, config_path: str | None = None) -> "Settings":
        return cls.from_env(db=db_path, data_dir=data_dir, config=config_path)

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def prefect_home(self) -> Path:
        override = os.environ.get("SYNTHWATCH_PREFECT_HOME")
        return Path(override) if override else self.data_dir / "prefect"

    def resolve_path(self, path: str | Path) -> Path:
        """A path from the config, relative to the data dir when not absolute."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.data_dir / p)

"""Checks of a detect request before Prefect starts: table, detector, hyperparameters (CLI `--param` and config)."""

from __future__ import annotations

import json
from typing import Any

from flows.config import Settings
from flows.errors import DetectFlowError
from flows.queries import load_model_record
from flows.warehouse import Warehouse, validate_table_name


def check_train_request(settings: Settings, table: str, detector: str, param_args: list[str] = ()) -> dict:
    """Cheap checks before Prefect starts: the table name, the table, the detector, its hyperparameters.

    Returns the hyperparameters parsed from NAME=VALUE strings (values read as JSON when they parse: numbers,
    true/false, null; otherwise kept as text).
    """
    from detectors.registry import get_detector_class, get_spec

    validate_table_name(table)
    get_spec(detector)
    params = parse_params(param_args, get_detector_class(detector))
    if not Warehouse(settings.db_path).table_exists(table):
        Warehouse(settings.db_path).read_frame(table)
    return params


# Set by the flow itself (--seed, the table's kind), never through --param.
RESERVED_PARAMS = ("seed", "kind")


def parse_params(param_args: list[str], klass: type) -> dict:
    """NAME=VALUE strings -> hyperparameters of `klass` (values read as JSON when they parse, else text)."""
    params: dict[str, Any] = {}
    for raw in param_args:
        name, sep, value = raw.partition("=")
        name = name.strip()
        if not sep or not name:
            raise DetectFlowError(f"--param {raw!r} is not NAME=VALUE")
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    return check_params(params, klass, where="--param ")


def check_params(params: dict, klass: type, *, where: str = "") -> dict:
    """Hyperparameters checked against `klass`: known names, the types their annotations allow, score modes.

    `where` prefixes each message with the place the value came from (``--param `` or ``detect.params.``).
    """
    from flows.config_schema import suggest

    allowed = [n for n in klass._param_names() if n not in RESERVED_PARAMS]
    for name, got in params.items():
        if name not in allowed:
            raise DetectFlowError(f"{where}{name}: {klass.name} has no hyperparameter {name!r}"
                                  f"{suggest(name, allowed)}")
        accepted = klass.param_types(name)
        ok = any(isinstance(got, t) and not (isinstance(got, bool) and t is not bool) for t in accepted) or (
            float in accepted and isinstance(got, int) and not isinstance(got, bool))
        if not ok:
            wanted = " or ".join("null" if t is type(None) else t.__name__ for t in accepted)
            raise DetectFlowError(f"{where}{name} wants {wanted}, got {got!r}")
    if "score_mode" in params and params["score_mode"] not in ("auto", *klass.score_modes):
        raise DetectFlowError(f"{where}score_mode {params['score_mode']!r} is not one of {klass.name}'s: "
                              f"auto, {', '.join(klass.score_modes)}")
    return dict(params)


def check_score_request(settings: Settings, model_id: str, table: str) -> None:
    validate_table_name(table)
    wh = Warehouse(settings.db_path)
    load_model_record(wh, model_id)
    if not wh.table_exists(table):
        wh.read_frame(table)


def format_alerts(result: dict) -> str:
    lines = [f"{result['table']}: {result['scored']} items scored by {result['model_id']}, "
             f"{result['alerts']} alerts (threshold {result['threshold']:.4f})"]
    for alert in result["top_alerts"]:
        lines.append(f"  {alert['item_key']:>12}  score {alert['score']:.4f}")
    return "\n".join(lines)

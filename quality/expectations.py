"""A Great Expectations suite derived from the real table and validated against a synthetic one.

The suite is first written as plain dicts (`derive_expectations`), so it can be read and tested without GX;
`validate_expectations` builds the GX suite in an ephemeral context (nothing is written to disk, analytics
off) and turns each expectation's outcome into a `CheckResult`.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

import numpy as np
import pandas as pd

from quality.bounds import max_count_beyond_range, max_count_same_rate, tail_limits
from quality.checks import CheckResult
from quality.columns import ColumnSpec

TYPE_FAMILIES = {
    "integer": ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "int"],
    "float": ["float16", "float32", "float64", "Float32", "Float64", "float"],
    "boolean": ["bool", "boolean"],
    "string": ["str", "string", "object", "category"],
    "datetime": ["datetime64[ns]", "datetime64[us]", "datetime64[ms]", "datetime64[s]", "Timestamp", "datetime"],
}
# a synthetic float column is fine where the real one is integer-valued float, but not the other way round:
# an integer real column must come back as integers
ACCEPTED_FAMILIES = {"integer": ["integer"], "float": ["float", "integer"], "boolean": ["boolean"],
                     "string": ["string"], "datetime": ["datetime"]}


def type_family(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_float_dtype(series):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "string"


def _plain_value(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def derive_expectations(real: pd.DataFrame, spec: ColumnSpec, *, null_tolerance: float = 0.02,
                        range_margin: float = 0.05, range_tolerance: float = 0.01, hard_range_margin: float = 1.0,
                        max_categories: int = 1000, n_synthetic: int | None = None, alpha: float | None = None,
                        synthetic_non_null: dict[Any, int] | None = None) -> list[dict[str, Any]]:
    """Plain expectation specs from the real table: columns, types, ranges, category sets, nulls, unique ids.

    Every tolerance is the fixed one below or, when `alpha` is given, what an independent real sample of
    `n_synthetic` rows stays within with probability 1 - alpha / m (m = the expectations judged this way, so
    the whole suite false-alarms on real data with probability at most about `alpha`), whichever is looser
    (`quality.bounds`):

    - nulls: up to the null count an exact binomial test accepts against the real column's (a few even where the
      real column has none: a rare null is easily missed by a training sample), and at least the real fraction
      + `null_tolerance` where it has some;
    - category sets: rows with categories the real column lacks, up to the count the same test accepts against
      the real column's singletons (Good-Turing: the share of categories seen once estimates the share of rows
      in categories not seen at all);
    - soft ranges: values within the real [min, max] widened by `range_margin` x range, for all but
      `range_tolerance` of the rows, or all but the count exchangeable samples put past the real extremes;
    - hard ranges: synthetic min and max within the real ones widened by `hard_range_margin` x range (one absurd
      value fails), or within the extreme-value extrapolation of the real tails when that is wider; a side where
      fewer than 6 real values lie past the median (a flag, a sparse count) gets no hard limit, since the real
      sample cannot say how far that tail reaches (the soft check still counts values past the real range).

    Without `alpha` the fixed tolerances alone apply and a column with no real nulls must have none. Categorical
    columns with more than `max_categories` distinct values get no set expectation.
    """
    n_real = len(real)
    n_synth = n_synthetic or n_real
    non_null = synthetic_non_null or {}
    alpha_each = None
    if alpha is not None:
        judged = sum(1 + (3 if column in spec.numeric and type_family(real[column]) in ("integer", "float")
                          and column not in spec.ids else 0)
                     + (1 if column in spec.categorical else 0) for column in real.columns)
        alpha_each = alpha / max(judged, 1)
    out: list[dict[str, Any]] = [{
        "type": "expect_table_columns_to_match_set", "column": None,
        "kwargs": {"column_set": [str(c) for c in real.columns], "exact_match": True},
        "label": "the same columns as the real table"}]
    for column in real.columns:
        series = real[column]
        family = type_family(series)
        n_synth_values = int(non_null.get(column, n_synth))
        out.append({"type": "expect_column_values_to_be_in_type_list", "column": column,
                    "kwargs": {"type_list": sorted({t for f in ACCEPTED_FAMILIES[family] for t in TYPE_FAMILIES[f]})},
                    "label": f"type {family}"})
        null_count = int(series.isna().sum())
        null_fraction = null_count / max(n_real, 1)
        if alpha_each is None:
            if null_fraction == 0.0:
                allowed = 0.0
            else:
                # sampling noise of two null fractions (3 standard errors) when it exceeds the fixed tolerance
                noise = 3.0 * np.sqrt(null_fraction * (1 - null_fraction) * (1 / n_real + 1 / n_synth))
                allowed = null_fraction + max(null_tolerance, float(noise))
        else:
            allowed = max_count_same_rate(null_count, n_real, n_synth, alpha_each) / n_synth
            if null_count:
                allowed = max(allowed, null_fraction + null_tolerance)
        if allowed == 0.0:
            out.append({"type": "expect_column_values_to_not_be_null", "column": column, "kwargs": {},
                        "label": "no nulls"})
        elif allowed < 1.0:
            mostly = round(1.0 - allowed, 6)
            out.append({"type": "expect_column_values_to_not_be_null", "column": column,
                        "kwargs": {"mostly": mostly}, "label": f"null fraction <= {1 - mostly:.3f}"})
        if column in spec.ids:
            out.append({"type": "expect_column_values_to_be_unique", "column": column, "kwargs": {},
                        "label": "unique values (id)"})
        elif column in spec.numeric and family in ("integer", "float"):
            values = pd.to_numeric(series, errors="coerce").dropna()
            if len(values):
                lo, hi = float(values.min()), float(values.max())
                pad, hard = range_margin * (hi - lo), hard_range_margin * (hi - lo)
                tolerance = range_tolerance
                low_limit: float | None = lo - hard
                high_limit: float | None = hi + hard
                if alpha_each is not None:
                    tolerance = max(tolerance, max_count_beyond_range(len(values), n_synth_values, alpha_each)
                                    / max(n_synth_values, 1))
                    tail_low, tail_high = tail_limits(values.to_numpy(dtype=np.float64), n_synth_values,
                                                      alpha_each)
                    # a tail the real sample barely shows (a flag or sparse count, nearly always at its median)
                    # says nothing of how far it reaches: only the soft check's count of outside values applies
                    low_limit = min(lo - hard, tail_low) if np.isfinite(tail_low) else None
                    high_limit = max(hi + hard, tail_high) if np.isfinite(tail_high) else None
                kwargs: dict[str, Any] = {"min_value": lo - pad, "max_value": hi + pad}
                if tolerance > 0:
                    kwargs["mostly"] = round(1.0 - min(tolerance, 1.0), 6)
                out.append({"type": "expect_column_values_to_be_between", "column": column, "kwargs": kwargs,
                            "label": (f"values within [{lo - pad:g}, {hi + pad:g}]"
                                      + (f" for {1 - tolerance:.1%} of rows" if tolerance > 0 else ""))})
                if low_limit is not None:
                    out.append({"type": "expect_column_min_to_be_between", "column": column,
                                "kwargs": {"min_value": low_limit}, "label": f"minimum >= {low_limit:g}"})
                if high_limit is not None:
                    out.append({"type": "expect_column_max_to_be_between", "column": column,
                                "kwargs": {"max_value": high_limit}, "label": f"maximum <= {high_limit:g}"})
        elif column in spec.categorical:
            counts = series.dropna().value_counts(sort=False)
            if 0 < len(counts) <= max_categories:
                kwargs = {"value_set": [_plain_value(v) for v in counts.index]}
                label = f"one of {len(counts)} real categories"
                if alpha_each is not None:
                    singletons = int((counts == 1).sum())
                    unseen = max_count_same_rate(singletons, int(counts.sum()), n_synth_values, alpha_each)
                    if unseen > 0 and n_synth_values > 0:
                        share = min(unseen / n_synth_values, 1.0)
                        kwargs["mostly"] = round(1.0 - share, 6)
                        label += f" for {1 - share:.1%} of rows"
                out.append({"type": "expect_column_values_to_be_in_set", "column": column,
                            "kwargs": kwargs, "label": label})
    return out


def _gx_context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # some GX modules pin their own logger to INFO ("Created temporary directory ..." on every context)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("great_expectations"):
            logger = logging.getLogger(name)
            if logger.level and logger.level < logging.WARNING:
                logger.setLevel(logging.WARNING)

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return gx, context


def build_suite(expectations: list[dict[str, Any]], *, name: str = "synthetic_vs_real"):
    """A GX `ExpectationSuite` from plain specs (GX is imported here, lazily)."""
    gx, _ = _gx_context()
    suite = gx.ExpectationSuite(name=name)
    for spec in expectations:
        cls_name = "".join(part.capitalize() for part in spec["type"].split("_"))
        kwargs = dict(spec["kwargs"])
        if spec["column"] is not None:
            kwargs["column"] = str(spec["column"])
        suite.add_expectation(getattr(gx.expectations, cls_name)(**kwargs))
    return suite


def _gx_frame(synthetic: pd.DataFrame) -> pd.DataFrame:
    """A copy GX can type-check: pandas extension dtypes (Int64, boolean, string, category) become object columns of
    plain Python values, which GX checks value by value (it compares extension dtypes unreliably)."""
    frame = synthetic.copy()
    frame.columns = [str(c) for c in frame.columns]
    for column in frame.columns:
        dtype = frame[column].dtype
        if isinstance(dtype, pd.api.extensions.ExtensionDtype) and not isinstance(dtype, pd.DatetimeTZDtype):
            values = frame[column].astype(object)
            frame[column] = values.where(values.notna(), None)
    return frame


def _integers_with_nulls(real: pd.DataFrame, synthetic: pd.DataFrame) -> pd.DataFrame:
    """`synthetic` with float columns that are whole numbers plus nulls as nullable integers, where the real
    column is integer: how pandas stores an integer column that has a missing value, so a real sample with one
    null in an integer column is not refused for its type. Whole floats without nulls still fail."""
    out = synthetic
    for column in real.columns:
        if column not in synthetic.columns or type_family(real[column]) != "integer":
            continue
        values = synthetic[column]
        if not pd.api.types.is_float_dtype(values) or not values.isna().any():
            continue
        present = values.dropna()
        if np.isfinite(present).all() and (present == np.round(present)).all():
            if out is synthetic:
                out = synthetic.copy()
            out[column] = values.astype("Int64")
    return out


def _check_name(spec: dict[str, Any]) -> str:
    return spec["type"] if spec["column"] is None else f"{spec['type']}[{spec['column']}]"


def validate_expectations(real: pd.DataFrame, synthetic: pd.DataFrame, spec: ColumnSpec,
                          **derive_kwargs: Any) -> list[CheckResult]:
    """Derive the suite from `real`, validate `synthetic` against it; one CheckResult per expectation."""
    non_null = {c: int(synthetic[c].notna().sum()) for c in real.columns if c in synthetic.columns}
    expectations = derive_expectations(real, spec, n_synthetic=len(synthetic), synthetic_non_null=non_null,
                                       **derive_kwargs)
    gx, context = _gx_context()
    suite = build_suite(expectations)
    source = context.data_sources.add_pandas("synthetic")
    batch_definition = source.add_dataframe_asset("table").add_batch_definition_whole_dataframe("whole")
    frame = _gx_frame(_integers_with_nulls(real, synthetic))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite, result_format="SUMMARY")
    # GX may reorder results; match them back to our specs by (type, column)
    by_key = {(r.expectation_config.type, r.expectation_config.kwargs.get("column")): r for r in result.results}
    checks = []
    for exp in expectations:
        item = by_key[(exp["type"], None if exp["column"] is None else str(exp["column"]))]
        res = item.result or {}
        allowed = 1.0 - float(exp["kwargs"].get("mostly", 1.0))
        count, total = res.get("unexpected_count"), res.get("element_count")
        if count is not None and total:
            value = count / total
        else:
            value = 0.0 if item.success else 1.0
        details: dict[str, Any] = {"expectation": exp["type"], "column": exp["column"],
                                   "observed": res.get("observed_value"),
                                   "unexpected_count": count,
                                   "unexpected_examples": [_plain_value(v) for v in
                                                           (res.get("partial_unexpected_list") or [])[:5]]}
        if item.exception_info and item.exception_info.get("raised_exception"):
            details["error"] = str(item.exception_info.get("exception_message"))[:300]
        where = "table" if exp["column"] is None else f"column {exp['column']!r}"
        if item.success:
            explanation = f"{where}: {exp['label']} holds"
        else:
            seen = details["unexpected_examples"] or details["observed"]
            explanation = f"{where}: expected {exp['label']}; found {seen}"
        checks.append(CheckResult(name=_check_name(exp), value=float(value), threshold=allowed,
                                  passed=bool(item.success), explanation=explanation, kind="expectation",
                                  direction="max", details=details))
    return checks

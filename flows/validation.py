"""Great Expectations checks run on every ingested frame before it is written."""

from __future__ import annotations

import logging
import os
import warnings

import pandas as pd

from flows.errors import ValidationFailed

_TYPE_FAMILIES = {
    "integer": ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"],
    "float": ["float16", "float32", "float64", "Float32", "Float64"],
    "boolean": ["bool", "boolean"],
    "datetime": ["datetime64[ns]", "datetime64[us]", "datetime64[ms]", "datetime64[s]"],
}


_COLUMNS_PER_BATCH = 100


def _type_expectation(gx, column, family: str):
    return gx.expectations.ExpectColumnValuesToBeInTypeList(column=str(column), type_list=_TYPE_FAMILIES[family])


def _type_family(dtype) -> str | None:
    name = str(dtype)
    for family, names in _TYPE_FAMILIES.items():
        if name in names or (family == "datetime" and name.startswith("datetime64")):
            return family
    return None


def _context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return gx, context


def validate_frame(df: pd.DataFrame, *, name: str, expected_types: dict[str, str] | None = None,
                   key_columns: list[str] | tuple[str, ...] = (), keys_frame: pd.DataFrame | None = None) -> dict:
    """Validate columns, types, non-empty and non-null keys; raise ValidationFailed listing every failure.

    `df` may be a head sample of a warehouse table: column types are uniform per column there, so the sample's
    dtypes are the table's. Not-null checks then run on `keys_frame`, every row of the key columns.
    """
    gx, context = _context()
    expected_types = expected_types or {c: _type_family(t) for c, t in df.dtypes.items()}
    missing_keys = [k for k in key_columns if k not in df.columns]
    if missing_keys:
        raise ValidationFailed(
            f"{name}: key column(s) {', '.join(missing_keys)} not found; columns are {', '.join(map(str, df.columns))}"
        )
    # Suites are built from their full expectation lists: `add_expectation` compares each new expectation with
    # every one already added (a pydantic dict() per pair). And GX resolves `table.column_types`, every column's
    # type, once per type expectation, so the type checks run on slices of _COLUMNS_PER_BATCH columns: with
    # both, time grows linearly with the columns (5,000 columns took over ten minutes before).
    table_expectations = [
        gx.expectations.ExpectTableColumnsToMatchOrderedList(column_list=[str(c) for c in df.columns]),
        gx.expectations.ExpectTableRowCountToBeBetween(min_value=1),
    ]
    suites = [(gx.ExpectationSuite(name=f"ingest_{name}_schema", expectations=table_expectations), df)]
    typed = [(column, family) for column, family in expected_types.items() if family in _TYPE_FAMILIES]
    present = set(df.columns)
    for start in range(0, len(typed), _COLUMNS_PER_BATCH):
        part = typed[start:start + _COLUMNS_PER_BATCH]
        suite = gx.ExpectationSuite(name=f"ingest_{name}_types_{start // _COLUMNS_PER_BATCH}",
                                    expectations=[_type_expectation(gx, column, family) for column, family in part])
        # A column the frame lacks is left out of the slice too, and GX reports its expectation as failed.
        suites.append((suite, df[[column for column, _ in part if column in present]]))
    if key_columns:
        key_suite = gx.ExpectationSuite(name=f"ingest_{name}_keys", expectations=[
            gx.expectations.ExpectColumnValuesToNotBeNull(column=str(key)) for key in dict.fromkeys(key_columns)])
        suites.append((key_suite, keys_frame if keys_frame is not None else df))
    source = context.data_sources.add_pandas(f"ingest_{name}")
    batch_definition = source.add_dataframe_asset("frame").add_batch_definition_whole_dataframe("whole")
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for suite, frame in suites:
            batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
            results.append(batch.validate(suite, result_format="SUMMARY"))
    failures = []
    for result in results:
        for item in result.results:
            if not item.success:
                config = item.expectation_config
                kwargs = {k: v for k, v in config.kwargs.items() if k in ("column", "type_list", "min_value")}
                observed = (item.result or {}).get("observed_value", (item.result or {}).get("unexpected_count"))
                failures.append({"expectation": config.type, **kwargs, "observed": observed})
    summary = {"suite": f"ingest_{name}", "evaluated": sum(len(r.results) for r in results),
               "success": not failures, "failures": failures}
    if failures:
        detail = "; ".join(
            f"{f['expectation']}({f.get('column', '')}) observed {f['observed']}" for f in failures[:5]
        )
        raise ValidationFailed(f"{name}: {len(failures)} expectation(s) failed, nothing written: {detail}", failures)
    return summary

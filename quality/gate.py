"""`evaluate`: every fidelity, privacy, utility and expectation check on one synthetic table."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd

from quality import expectations as expectations_mod
from quality import fidelity, privacy
from quality.checks import CheckResult, QualityReport, bounded_check
from quality.columns import infer_columns, require_frame, require_same_columns
from quality.errors import UnknownThresholdError

# Check name -> bound; None makes that check informational. Non-check options sit alongside.
DEFAULT_THRESHOLDS: dict[str, float | None] = {
    "accuracy": 0.85,            # min: 1 - mean TVD of single columns and pairs (deciles for numerics)
    "discriminator_auc": 0.8,    # max: 0.5 = a classifier cannot tell synthetic rows from real ones
    "exact_copy_rate": None,     # max: None = the holdout's own rate + `exact_copy_z` standard errors
    "exact_copy_z": 2.0,         # slack for sampling noise, in standard errors of the rate difference
    "dcr_share": 0.55,           # max: 0.5 = synthetic rows sit no closer to training rows than to holdout
    "nndr_ratio": 0.8,           # min: synthetic median NNDR / holdout median NNDR
    "mia_auroc": 0.6,            # max: 0.5 = distance tells training rows no better than chance
    "utility_drop": 0.1,         # max: TRTR - TSTR on the primary metric (AUROC or R2), target only
    "null_tolerance": 0.02,      # expectation suite: allowed extra null fraction where the real has nulls
    "range_margin": 0.05,        # expectation suite: soft numeric range widening, as a fraction of the real range
    "range_tolerance": 0.01,     # expectation suite: share of values allowed outside the soft range
    "hard_range_margin": 1.0,    # expectation suite: synthetic min/max must stay within this widening of the range
}


def resolve_thresholds(thresholds: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with `thresholds`; unknown names raise so a config typo cannot silently loosen a gate."""
    merged = dict(DEFAULT_THRESHOLDS)
    for key, value in (thresholds or {}).items():
        if key not in DEFAULT_THRESHOLDS:
            raise UnknownThresholdError(f"unknown quality threshold {key!r}; known: {sorted(DEFAULT_THRESHOLDS)}")
        merged[key] = None if value is None else float(value)
    return merged


def _copy_bound(holdout_rate: float, n_synth: int, n_hold: int, z: float) -> float:
    """Holdout rate plus z standard errors of a difference of two proportions (tiny floor for rate 0)."""
    p = holdout_rate
    se = math.sqrt(max(p * (1 - p), 0.0) * (1 / max(n_synth, 1) + 1 / max(n_hold, 1)))
    return p + z * se


def evaluate(real: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame | None = None,
             thresholds: dict[str, Any] | None = None, target: str | None = None, *,
             id_columns: list[str] | None = None, seed: int = 0, discriminator_rows: int = 5_000,
             privacy_rows: int = 50_000, expectation_reference: pd.DataFrame | None = None) -> QualityReport:
    """Run every check of `synthetic` against `real` (its training table) and `holdout` (rows kept out).

    Without a holdout the distance-based privacy checks and utility cannot be judged: exact copies are then
    compared with the real table's own duplicate rate and the others are reported as not run.
    `expectation_reference` (default `real`) is the table the expectation suite is derived from: a conditional
    sample is compared with the real rows meeting its conditions, but its value sets come from the whole table.
    """
    require_frame(real, "real")
    require_frame(synthetic, "synthetic")
    require_same_columns(real, synthetic, "synthetic")
    if holdout is not None:
        require_frame(holdout, "holdout")
        require_same_columns(real, holdout, "holdout")
    limits = resolve_thresholds(thresholds)
    spec = infer_columns(real, id_columns)
    timings: dict[str, float] = {}
    checks: list[CheckResult] = []
    metrics: dict[str, Any] = {"n_real": len(real), "n_synthetic": len(synthetic),
                               "n_holdout": None if holdout is None else len(holdout),
                               "columns": {"numeric": list(spec.numeric), "categorical": list(spec.categorical),
                                           "ids": list(spec.ids)}}
    arrays: dict[str, np.ndarray] = {}

    t = time.perf_counter()
    encoded = fidelity.encode_binned(real, synthetic, spec)
    columns = fidelity.column_metrics(real, synthetic, spec, encoded)
    pairs = fidelity.pair_metrics(real, synthetic, spec, encoded)
    acc = fidelity.accuracy(columns, pairs)
    metrics.update(column_metrics=columns, pair_metrics=pairs, accuracy=acc)
    worst = max(columns, key=lambda c: c["tvd"])
    checks.append(bounded_check(
        "accuracy", acc["accuracy"], limits["accuracy"], direction="min", kind="fidelity",
        explanation=(f"1 - mean TVD = {acc['accuracy']:.3f} (columns {acc['univariate']:.3f}, pairs "
                     f"{acc['bivariate']:.3f}); the least faithful column is {worst['column']!r} "
                     f"(TVD {worst['tvd']:.3f})"),
        details=acc))
    ks = [c["ks"] for c in columns if "ks" in c]
    corr = [p["corr_diff"] for p in pairs if p.get("corr_diff") is not None]
    checks.append(bounded_check(
        "column_shapes", 1.0 - float(np.mean([c["value"] for c in columns])), None, direction="min",
        kind="fidelity",
        explanation=(f"mean KS over numerics {np.mean(ks) if ks else float('nan'):.3f}, mean TVD over "
                     f"categoricals {np.mean([c['tvd'] for c in columns if c['kind'] == 'categorical'] or [np.nan]):.3f}, "
                     f"largest missing-rate difference {max(c['missing_diff'] for c in columns):.3f}")))
    checks.append(bounded_check(
        "correlation_difference", float(np.mean(corr)) if corr else None, None, direction="max", kind="fidelity",
        explanation=(f"mean |Pearson real - synthetic| over {len(corr)} numeric pairs"
                     + (f", worst {max(corr):.3f}" if corr else ""))))
    timings["fidelity"] = time.perf_counter() - t

    t = time.perf_counter()
    auc = fidelity.discriminator_auc(real, synthetic, spec, max_rows=discriminator_rows, seed=seed)
    metrics["discriminator_auc"] = auc
    checks.append(bounded_check(
        "discriminator_auc", auc, limits["discriminator_auc"], direction="max", kind="fidelity",
        explanation=f"a cross-validated classifier tells synthetic from real rows with AUROC {auc:.3f} (0.5 = cannot)"))
    timings["discriminator"] = time.perf_counter() - t

    t = time.perf_counter()
    if holdout is not None:
        priv = privacy.privacy_metrics(real, synthetic, holdout, spec, max_rows=privacy_rows, seed=seed)
        arrays.update(priv.pop("arrays"))
        metrics["privacy"] = priv
        copy_limit = limits["exact_copy_rate"]
        if copy_limit is None:
            copy_limit = _copy_bound(priv["holdout_exact_copy_rate"], len(synthetic), len(holdout),
                                     limits["exact_copy_z"])
        checks.append(bounded_check(
            "exact_copy_rate", priv["exact_copy_rate"], copy_limit, direction="max", kind="privacy",
            explanation=(f"{priv['exact_copy_rate']:.2%} of synthetic rows equal a training row; "
                         f"{priv['holdout_exact_copy_rate']:.2%} of holdout rows do"),
            details={"holdout_exact_copy_rate": priv["holdout_exact_copy_rate"]}))
        checks.append(bounded_check(
            "dcr_share", priv["dcr_share"], limits["dcr_share"], direction="max", kind="privacy",
            explanation=(f"{priv['dcr_share']:.1%} of synthetic rows are closer to a training row than to a "
                         f"holdout row (equal samples of {priv['n_train_sample']}; 50% = no memorisation)")))
        ratio = (priv["nndr_median"] / priv["holdout_nndr_median"]) if priv["holdout_nndr_median"] > 0 else float("nan")
        checks.append(bounded_check(
            "nndr_ratio", ratio, limits["nndr_ratio"], direction="min", kind="privacy",
            explanation=(f"median nearest/second-nearest training distance ratio {priv['nndr_median']:.3f} for "
                         f"synthetic rows vs {priv['holdout_nndr_median']:.3f} for holdout rows"),
            details={"nndr_median": priv["nndr_median"], "holdout_nndr_median": priv["holdout_nndr_median"]}))
        checks.append(bounded_check(
            "mia_auroc", priv["mia_auroc"], limits["mia_auroc"], direction="max", kind="privacy",
            explanation=(f"an attacker ranking rows by distance to the synthetic data tells training from holdout "
                         f"rows with AUROC {priv['mia_auroc']:.3f} (0.5 = no leak)")))
    else:
        dup = privacy.duplicate_rate(real, spec)
        rate = privacy.exact_copy_rate(synthetic, real, spec)
        metrics["privacy"] = {"exact_copy_rate": rate, "real_duplicate_rate": dup}
        limit = limits["exact_copy_rate"]
        if limit is None:
            limit = _copy_bound(dup, len(synthetic), len(real), limits["exact_copy_z"])
        checks.append(bounded_check(
            "exact_copy_rate", rate, limit, direction="max", kind="privacy",
            explanation=(f"{rate:.2%} of synthetic rows equal a real row; {dup:.2%} of real rows repeat another "
                         "real row (no holdout given: DCR share, NNDR and membership inference not run)")))
    timings["privacy"] = time.perf_counter() - t

    if target is not None:
        t = time.perf_counter()
        if holdout is None:
            checks.append(bounded_check(
                "utility_drop", None, None, direction="max", kind="utility",
                explanation=f"target {target!r} named but no holdout given: utility needs real rows to test on"))
        else:
            util = fidelity.utility(real, synthetic, holdout, spec, target, seed=seed)
            metrics["utility"] = util
            p = util["primary"]
            checks.append(bounded_check(
                "utility_drop", util["drop"], limits["utility_drop"], direction="max", kind="utility",
                explanation=(f"{util['task']} of {target!r} on the holdout: {p} {util['tstr'][p]:.3f} trained on "
                             f"synthetic vs {util['trtr'][p]:.3f} trained on real"),
                details=util))
        timings["utility"] = time.perf_counter() - t

    t = time.perf_counter()
    reference = real if expectation_reference is None else expectation_reference
    require_same_columns(real, reference, "expectation_reference")
    checks.extend(expectations_mod.validate_expectations(
        reference, synthetic, spec, null_tolerance=limits["null_tolerance"] or 0.0,
        range_margin=limits["range_margin"] or 0.0, range_tolerance=limits["range_tolerance"] or 0.0,
        hard_range_margin=limits["hard_range_margin"] or 0.0))
    timings["expectations"] = time.perf_counter() - t
    timings["total"] = sum(timings.values())
    return QualityReport(checks=checks, metrics=metrics, arrays=arrays, timings=timings)

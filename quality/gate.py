"""`evaluate`: every fidelity, privacy, utility and expectation check on one synthetic table."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from quality import bounds, fidelity, privacy
from quality import expectations as expectations_mod
from quality.checks import CheckResult, QualityReport, bounded_check, overlay_thresholds
from quality.columns import infer_columns, require_frame, require_same_columns

# Check name -> bound; None makes that check informational. Non-check options sit alongside.
# A fixed bound is the gate's intent at sizes where sampling noise is small. At small sizes an independent real
# sample strays further by chance, so each of the size-aware checks below is judged against the fixed bound or
# the value such a sample reaches with probability 1 - Phi(z) (`sampling_z`, 3.0: 0.13%), whichever is looser;
# `quality.bounds` has the statistics. The fixed bounds are never tightened.
DEFAULT_THRESHOLDS: dict[str, float | None] = {
    "accuracy": 0.85,            # min: 1 - mean TVD of single columns and pairs (deciles for numerics); or the
                                 #   permutation-null mean - z sd, when lower (many sparse pairs at small n)
    "discriminator_auc": 0.8,    # max: 0.5 = a classifier cannot tell synthetic rows from real ones; or 0.5 + z SE
    "exact_copy_rate": None,     # max: None = the most copies an exact binomial test against the holdout's count
                                 #   accepts (a few even when the holdout has none); a number = that fixed rate
    "exact_copy_z": 3.0,         # one-sided z of that test (alpha = 1 - Phi(z))
    "dcr_share": 0.55,           # max: 0.5 = synthetic rows sit no closer to training rows than to holdout; or
                                 #   0.5 + z SE (SE from the nearest pooled rows, which synthetic rows share)
    "nndr_ratio": 0.8,           # min: synthetic median NNDR / holdout median NNDR; or 1 - z SE of that ratio
    "mia_auroc": 0.6,            # max: 0.5 = distance tells training rows no better than chance; or 0.5 + z SE
    "utility_drop": 0.1,         # max: TRTR - TSTR on the primary metric (AUROC or R2), target only
    "null_tolerance": 0.02,      # expectation suite: allowed extra null fraction where the real has nulls
    "range_margin": 0.05,        # expectation suite: soft numeric range widening, as a fraction of the real range
    "range_tolerance": 0.01,     # expectation suite: share of values allowed outside the soft range
    "hard_range_margin": 1.0,    # expectation suite: synthetic min/max must stay within this widening of the range
    "sampling_z": 3.0,           # one-sided z of every size-aware bound; the expectation suite spends 1 - Phi(z)
                                 #   over all its expectations (Bonferroni), None = fixed bounds only
}
ACCURACY_NULL_REPS = 30  # label permutations for the accuracy null; its sd only needs to be right to ~15%


def resolve_thresholds(thresholds: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with `thresholds`; unknown names raise so a config typo cannot silently loosen the gate."""
    return overlay_thresholds(DEFAULT_THRESHOLDS, thresholds, "quality")


def _copy_bound(reference_count: int, n_reference: int, n_synth: int, z: float) -> float:
    """The largest exact-copy rate of `n_synth` synthetic rows consistent with `reference_count` copies among
    `n_reference` reference (holdout) rows: an exact one-sided binomial test of two rates at level 1 - Phi(z).

    Unlike `p + z * SE`, it does not collapse to 0 when the holdout has no copies: with equal sizes and z = 3,
    up to 9 coincidental copies pass against a holdout with none.
    """
    allowed = bounds.max_count_same_rate(int(reference_count), int(n_reference), int(n_synth),
                                         bounds.alpha_from_z(z))
    return allowed / max(n_synth, 1)


def _loosen(fixed: float | None, null: float, z: float | None, se: float,
            direction: str) -> tuple[float | None, float | None]:
    """(bound, sampling bound): the fixed bound, or the null value -+ z SE when that is looser."""
    if fixed is None or z is None or not np.isfinite(se):
        return fixed, None
    sampled = null + z * se if direction == "max" else null - z * se
    return (max(fixed, sampled) if direction == "max" else min(fixed, sampled)), sampled


def evaluate(real: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame | None = None,
             thresholds: dict[str, Any] | None = None, target: str | None = None, *,
             id_columns: list[str] | None = None, seed: int = 0, discriminator_rows: int = 5_000,
             privacy_rows: int = 50_000, expectation_reference: pd.DataFrame | None = None) -> QualityReport:
    """Run every check of `synthetic` against `real` (its training table) and `holdout` (rows kept out).

    Without a holdout the distance-based privacy checks and utility cannot be judged: exact copies are then
    compared with the share of real rows that equal another real row, and the others are reported as not run.
    Bounds of the size-aware checks: see DEFAULT_THRESHOLDS and `quality.bounds`.
    `expectation_reference` is the table the expectation suite is derived from (default: `real` and `holdout`
    together, every real row at hand: a rare subgroup's tail or a rare category is then less often missing from
    it by chance); a conditional sample is compared with the real rows meeting its conditions, but its value sets
    come from the whole table.
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
    z = limits["sampling_z"]
    acc_limit, acc_details = limits["accuracy"], dict(acc)
    if acc_limit is not None and z is not None and acc["accuracy"] < acc_limit:
        # only ever loosens, so it is only worth its permutations when the fixed bound fails
        null = fidelity.accuracy_null(encoded, reps=ACCURACY_NULL_REPS, seed=seed)
        acc_limit, sampled = _loosen(acc_limit, float(null.mean()), z, float(null.std(ddof=1)), "min")
        acc_details.update(null_mean=float(null.mean()), null_sd=float(null.std(ddof=1)), sampling_bound=sampled)
        metrics["accuracy_null"] = {"mean": float(null.mean()), "sd": float(null.std(ddof=1)), "reps": len(null)}
    checks.append(bounded_check(
        "accuracy", acc["accuracy"], acc_limit, direction="min", kind="fidelity",
        explanation=(f"1 - mean TVD = {acc['accuracy']:.3f} (columns {acc['univariate']:.3f}, pairs "
                     f"{acc['bivariate']:.3f}); the least faithful column is {worst['column']!r} "
                     f"(TVD {worst['tvd']:.3f})"
                     + (f"; two real samples of these sizes reach {acc_details['null_mean']:.3f} "
                        f"(sd {acc_details['null_sd']:.3f})" if "null_mean" in acc_details else "")),
        details=acc_details))
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
    n_disc = min(len(real), len(synthetic), discriminator_rows)
    disc_limit, disc_sampled = _loosen(limits["discriminator_auc"], 0.5, z, bounds.mann_whitney_se(n_disc, n_disc),
                                       "max")
    checks.append(bounded_check(
        "discriminator_auc", auc, disc_limit, direction="max", kind="fidelity",
        explanation=f"a cross-validated classifier tells synthetic from real rows with AUROC {auc:.3f} (0.5 = cannot)",
        details={"n_per_class": n_disc, "sampling_bound": disc_sampled}))
    timings["discriminator"] = time.perf_counter() - t

    t = time.perf_counter()
    if holdout is not None:
        priv = privacy.privacy_metrics(real, synthetic, holdout, spec, max_rows=privacy_rows, seed=seed)
        arrays.update(priv.pop("arrays"))
        metrics["privacy"] = priv
        copy_limit = limits["exact_copy_rate"]
        hold_copies = int(round(priv["holdout_exact_copy_rate"] * len(holdout)))
        if copy_limit is None:
            copy_limit = _copy_bound(hold_copies, len(holdout), len(synthetic), limits["exact_copy_z"])
        checks.append(bounded_check(
            "exact_copy_rate", priv["exact_copy_rate"], copy_limit, direction="max", kind="privacy",
            explanation=(f"{priv['exact_copy_rate']:.2%} of synthetic rows equal a training row; "
                         f"{priv['holdout_exact_copy_rate']:.2%} of holdout rows do ({hold_copies} of {len(holdout)})"),
            details={"holdout_exact_copy_rate": priv["holdout_exact_copy_rate"], "holdout_copies": hold_copies},
            reach=1.0 if limits["exact_copy_rate"] is None else None, enlarge="the holdout (more holdout rows)"))
        dcr_limit, dcr_sampled = _loosen(limits["dcr_share"], 0.5, z, priv["dcr_share_se"], "max")
        checks.append(bounded_check(
            "dcr_share", priv["dcr_share"], dcr_limit, direction="max", kind="privacy",
            explanation=(f"{priv['dcr_share']:.1%} of synthetic rows are closer to a training row than to a "
                         f"holdout row (equal samples of {priv['n_train_sample']}; 50% = no memorisation, "
                         f"sd {priv['dcr_share_se']:.3f} by chance)"),
            details={"se": priv["dcr_share_se"], "sampling_bound": dcr_sampled}, reach=1.0,
            enlarge="the holdout (more holdout rows)"))
        ratio = (priv["nndr_median"] / priv["holdout_nndr_median"]) if priv["holdout_nndr_median"] > 0 else float("nan")
        nndr_limit, nndr_sampled = _loosen(limits["nndr_ratio"], 1.0, z, priv["nndr_ratio_se"], "min")
        checks.append(bounded_check(
            "nndr_ratio", ratio, nndr_limit, direction="min", kind="privacy",
            explanation=(f"median nearest/second-nearest training distance ratio {priv['nndr_median']:.3f} for "
                         f"synthetic rows vs {priv['holdout_nndr_median']:.3f} for holdout rows"),
            details={"nndr_median": priv["nndr_median"], "holdout_nndr_median": priv["holdout_nndr_median"],
                     "se": priv["nndr_ratio_se"], "sampling_bound": nndr_sampled}, reach=0.0,
            enlarge="the holdout (more holdout rows)"))
        mia_limit, mia_sampled = _loosen(limits["mia_auroc"], 0.5, z, priv["mia_auroc_se"], "max")
        checks.append(bounded_check(
            "mia_auroc", priv["mia_auroc"], mia_limit, direction="max", kind="privacy",
            explanation=(f"an attacker ranking rows by distance to the synthetic data tells training from holdout "
                         f"rows with AUROC {priv['mia_auroc']:.3f} (0.5 = no leak)"),
            details={"se": priv["mia_auroc_se"], "sampling_bound": mia_sampled}, reach=1.0,
            enlarge="the holdout (more holdout rows)"))
    else:
        dup = privacy.duplicate_rate(real, spec)
        twins = privacy.twin_rate(real, spec)
        rate = privacy.exact_copy_rate(synthetic, real, spec)
        metrics["privacy"] = {"exact_copy_rate": rate, "real_duplicate_rate": dup, "real_twin_rate": twins}
        limit = limits["exact_copy_rate"]
        if limit is None:
            limit = _copy_bound(int(round(twins * len(real))), len(real), len(synthetic), limits["exact_copy_z"])
        checks.append(bounded_check(
            "exact_copy_rate", rate, limit, direction="max", kind="privacy",
            explanation=(f"{rate:.2%} of synthetic rows equal a real row; {twins:.2%} of real rows equal another "
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
    reference = expectation_reference
    if reference is None:
        reference = real if holdout is None else pd.concat([real, holdout], ignore_index=True)
    require_same_columns(real, reference, "expectation_reference")
    checks.extend(expectations_mod.validate_expectations(
        reference, synthetic, spec, null_tolerance=limits["null_tolerance"] or 0.0,
        range_margin=limits["range_margin"] or 0.0, range_tolerance=limits["range_tolerance"] or 0.0,
        hard_range_margin=limits["hard_range_margin"] or 0.0,
        alpha=None if z is None else bounds.alpha_from_z(z)))
    timings["expectations"] = time.perf_counter() - t
    timings["total"] = sum(timings.values())
    return QualityReport(checks=checks, metrics=metrics, arrays=arrays, timings=timings)

"""A self-contained HTML report of one evaluation: plots as embedded PNGs and a table of every check."""

from __future__ import annotations

import base64
import html
import io
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from quality.checks import QualityReport
from quality.columns import category_codes, decile_codes, infer_columns, numeric_values

MAX_DISTRIBUTION_PLOTS = 40
MAX_BARS = 15


def _figure_png(fig) -> str:
    buffer = io.BytesIO()
    # fixed margins (set per plot) instead of a layout engine or bbox "tight": each of those re-measures every
    # text artist, which costs more than the drawing itself
    fig.savefig(buffer, format="png", dpi=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _subplots(*grid: int, figsize: tuple[float, float]):
    # Figure + Agg canvas, not pyplot: no global backend switch, no figure registry to leak
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(*grid) if grid else fig.subplots()


def _img(png: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png}">'


def _distribution_png(column: str, real: pd.Series, synth: pd.Series, numeric: bool) -> str:
    fig, ax = _subplots(figsize=(4.2, 2.8))
    if numeric:
        r, s = numeric_values(real), numeric_values(synth)
        r, s = r[~np.isnan(r)], s[~np.isnan(s)]
        both = np.r_[r, s]
        lo, hi = (np.quantile(both, [0.005, 0.995]) if len(both) else (0.0, 1.0))
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 40)
        for values, label, color in ((r, "real", "#1f77b4"), (s, "synthetic", "#ff7f0e")):
            if len(values) == 0:
                continue  # an all-null column: nothing to draw (its missing rate is in the check table)
            # precomputed counts drawn as one stairs artist: far cheaper than hist's one patch per bin
            counts, _ = np.histogram(np.clip(values, lo, hi), bins=bins, density=True)
            ax.stairs(counts, bins, fill=True, alpha=0.55, label=label, color=color)
    else:
        rc = real.astype(object).where(real.notna(), "<missing>").astype(str).value_counts(normalize=True)
        sc = synth.astype(object).where(synth.notna(), "<missing>").astype(str).value_counts(normalize=True)
        top = rc.index[:MAX_BARS]
        x = np.arange(len(top))
        ax.bar(x - 0.2, rc.reindex(top).fillna(0).to_numpy(), width=0.4, label="real", color="#1f77b4")
        ax.bar(x + 0.2, sc.reindex(top).fillna(0).to_numpy(), width=0.4, label="synthetic", color="#ff7f0e")
        ax.set_xticks(x, [t[:14] for t in top], rotation=60, ha="right", fontsize=7)
    ax.set_title(column, fontsize=10)
    if ax.get_legend_handles_labels()[0]:  # an all-null numeric column draws nothing to label
        ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.14, right=0.97, top=0.88, bottom=0.12 if numeric else 0.36)
    return _figure_png(fig)


def association_matrix(frame: pd.DataFrame, real: pd.DataFrame, columns: list[str], numeric: set[str]) -> np.ndarray:
    """Cramer's V between every pair of columns, numerics binned into deciles of the real table."""
    codes = {}
    for c in columns:
        if c in numeric:
            (_, own), _ = decile_codes(numeric_values(real[c]), [numeric_values(frame[c])])
        else:
            (own,), _ = category_codes([frame[c]])
        codes[c] = own
    m = np.eye(len(columns))
    for (i, a), (j, b) in combinations(enumerate(columns), 2):
        ka, kb = int(codes[a].max()) + 1, int(codes[b].max()) + 1
        table = np.bincount(codes[a] * kb + codes[b], minlength=ka * kb).reshape(ka, kb).astype(float)
        table = table[table.sum(1) > 0][:, table.sum(0) > 0]
        n = table.sum()
        if n == 0 or min(table.shape) < 2:
            v = 0.0
        else:
            expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n
            chi2 = ((table - expected) ** 2 / expected).sum()
            v = float(np.sqrt(chi2 / (n * (min(table.shape) - 1))))
        m[i, j] = m[j, i] = v
    return m


def _association_png(real: pd.DataFrame, synth: pd.DataFrame, columns: list[str], numeric: set[str]) -> str:
    mr = association_matrix(real, real, columns, numeric)
    ms = association_matrix(synth, real, columns, numeric)
    size = max(4.0, 0.35 * len(columns) + 2)
    fig, axes = _subplots(1, 3, figsize=(3 * size, size))
    for ax, m, title, cmap, vmax in ((axes[0], mr, "real", "viridis", 1), (axes[1], ms, "synthetic", "viridis", 1),
                                     (axes[2], np.abs(mr - ms), "|real - synthetic|", "Reds", 1)):
        im = ax.imshow(m, vmin=0, vmax=vmax, cmap=cmap)
        ax.set_xticks(range(len(columns)), [c[:12] for c in columns], rotation=90, fontsize=7)
        ax.set_yticks(range(len(columns)), [c[:12] for c in columns], fontsize=7)
        ax.set_title(title)
        fig.colorbar(im, ax=ax, shrink=0.7)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.92, bottom=0.25, wspace=0.45)
    return _figure_png(fig)


def _dcr_png(arrays: dict[str, np.ndarray]) -> str:
    fig, ax = _subplots(figsize=(7, 3.2))
    series = [("dcr_synthetic_to_train", "synthetic -> nearest training row", "#d62728"),
              ("dcr_synthetic_to_holdout", "synthetic -> nearest holdout row", "#2ca02c"),
              ("dcr_holdout_to_train", "holdout -> nearest training row (baseline)", "#7f7f7f")]
    present = [arrays[k] for k, _, _ in series if k in arrays]
    hi = float(np.quantile(np.concatenate(present), 0.99)) if present else 1.0
    bins = np.linspace(0, hi if hi > 0 else 1.0, 50)
    for key, label, color in series:
        if key in arrays:
            counts, _ = np.histogram(np.clip(arrays[key], 0, bins[-1]), bins=bins, density=True)
            ax.stairs(counts, bins, linewidth=1.6, label=label, color=color)
    ax.set_xlabel("distance to closest record (mixed-type)")
    ax.legend(fontsize=8)
    ax.set_title("distance to closest record")
    fig.subplots_adjust(left=0.08, right=0.98, top=0.9, bottom=0.16)
    return _figure_png(fig)


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _check_table(report: QualityReport) -> str:
    rows = []
    for c in report.checks:
        status = "pass" if c.passed else "FAIL"
        bound = "—" if c.threshold is None else ("&le; " if c.direction == "max" else "&ge; ") + _fmt(c.threshold)
        rows.append(f'<tr class="{status.lower()}"><td>{html.escape(c.name)}</td><td>{c.kind}</td>'
                    f"<td>{_fmt(c.value)}</td><td>{bound}</td><td>{status if c.gated else 'info'}</td>"
                    f"<td>{html.escape(c.explanation)}</td></tr>")
    return ('<table class="checks" id="checks"><thead><tr><th>check</th><th>kind</th><th>value</th>'
            "<th>threshold</th><th>result</th><th>explanation</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{margin-bottom:4px} .verdict{font-size:20px;font-weight:bold;padding:8px 12px;display:inline-block;border-radius:4px}
.verdict.pass{background:#d8f3dc} .verdict.fail{background:#ffd6d6}
table.checks{border-collapse:collapse;font-size:13px;margin:12px 0}
table.checks td,table.checks th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
tr.fail td{background:#fff0f0} tr.pass td:nth-child(5){color:#1b7a35} tr.fail td:nth-child(5){color:#b00020;font-weight:bold}
.grid{display:flex;flex-wrap:wrap;gap:8px}
"""


def render_report(report: QualityReport, real: pd.DataFrame, synthetic: pd.DataFrame, *,
                  title: str = "Synthetic data quality report", path: str | Path | None = None) -> str:
    """The report as one HTML string (and written to `path` when given): checks, distributions, associations, DCR."""
    spec = infer_columns(real, report.metrics.get("columns", {}).get("ids"))
    features = spec.features
    numeric = set(spec.numeric)
    verdict = "pass" if report.passed else "fail"
    failing = ", ".join(report.failing) or "none"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             f'<p class="verdict {verdict}">{verdict.upper()}</p>',
             f"<p>real rows: {len(real)}, synthetic rows: {len(synthetic)}, holdout rows: "
             f"{_fmt(report.metrics.get('n_holdout'))}. Failing checks: {html.escape(failing)}.</p>",
             "<h2>Checks</h2>", _check_table(report)]
    if report.timings:
        parts.append("<p>timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in report.timings.items()) + "</p>")
    parts.append("<h2>Distributions, real vs synthetic</h2><div class='grid'>")
    for column in features[:MAX_DISTRIBUTION_PLOTS]:
        parts.append(_img(_distribution_png(column, real[column], synthetic[column], column in numeric), column))
    parts.append("</div>")
    if len(features) > MAX_DISTRIBUTION_PLOTS:
        parts.append(f"<p>({len(features) - MAX_DISTRIBUTION_PLOTS} more columns not plotted)</p>")
    if len(features) >= 2:
        parts.append("<h2>Associations side by side</h2><p>Cramér's V between every pair of columns "
                     "(numerics binned into deciles of the real table).</p>")
        parts.append(_img(_association_png(real, synthetic, features[:MAX_DISTRIBUTION_PLOTS], numeric),
                          "association matrices"))
    if report.arrays:
        parts.append("<h2>Distance to closest record</h2><p>Synthetic rows much closer to training rows than to "
                     "holdout rows point to memorisation.</p>")
        parts.append(_img(_dcr_png(report.arrays), "DCR histograms"))
    parts.append("</body></html>")
    document = "\n".join(parts)
    if path is not None:
        Path(path).write_text(document, encoding="utf-8")
    return document

"""A self-contained HTML report of one image evaluation: the check table, real and synthetic images per label, and
the synthetic images nearest to a training image beside that image."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from quality.checks import QualityReport
from quality.errors import InvalidInputError
from quality.report import _CSS, _check_table, _figure_png, _fmt, _img, _subplots

MAX_LABELS = 20
PER_ROW = 8
SUSPICIOUS = 8


def _show(ax, image: np.ndarray) -> None:
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(image[..., :3], interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _grid_png(rows: list[tuple[str, np.ndarray, np.ndarray]]) -> str:
    """One row per label: PER_ROW real images, a gap, PER_ROW synthetic ones."""
    n_cols = 2 * PER_ROW + 1
    fig, axes = _subplots(len(rows), n_cols, figsize=(n_cols * 0.75, len(rows) * 0.8 + 0.4))
    axes = np.atleast_2d(axes)
    for r, (name, real, synth) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.axis("off")
            i = c if c < PER_ROW else c - PER_ROW - 1
            source = real if c < PER_ROW else synth
            if c != PER_ROW and i < len(source):
                ax.axis("on")
                _show(ax, source[i])
        axes[r, 0].set_ylabel(name[:14], fontsize=7, rotation=0, ha="right", va="center")
        axes[r, 0].axis("on")
        for side in axes[r, 0].spines.values():
            side.set_visible(len(real) > 0)
    axes[0, PER_ROW // 2].set_title("real", fontsize=9)
    axes[0, PER_ROW + 1 + PER_ROW // 2].set_title("synthetic", fontsize=9)
    fig.subplots_adjust(left=0.1, right=0.99, top=1 - 0.3 / (len(rows) * 0.8 + 0.4), bottom=0.01, wspace=0.05,
                        hspace=0.08)
    return _figure_png(fig)


def _pairs_png(pairs: list[tuple[np.ndarray, np.ndarray, str]]) -> str:
    """Each suspicious synthetic image above its nearest training image."""
    fig, axes = _subplots(2, len(pairs), figsize=(len(pairs) * 1.1 + 0.6, 2.8))
    axes = np.asarray(axes).reshape(2, len(pairs))
    for j, (synth, train, caption) in enumerate(pairs):
        _show(axes[0, j], synth)
        _show(axes[1, j], train)
        axes[0, j].set_title(caption, fontsize=7)
    axes[0, 0].set_ylabel("synthetic", fontsize=8)
    axes[1, 0].set_ylabel("nearest\ntraining", fontsize=8)
    fig.subplots_adjust(left=0.12, right=0.99, top=0.85, bottom=0.02, wspace=0.08, hspace=0.1)
    return _figure_png(fig)


def render_image_report(report: QualityReport, real: np.ndarray, real_labels: np.ndarray | None,
                        synthetic: np.ndarray, synthetic_labels: np.ndarray | None, *,
                        title: str = "Synthetic image quality report", path: str | Path | None = None) -> str:
    """The report of `evaluate_images` as one HTML string (and written to `path` when given).

    `real` and `synthetic` must be the arrays the report was computed from (its nearest-neighbour indices point
    into them).
    """
    if real.ndim != 4 or synthetic.ndim != 4 or real.shape[1:] != synthetic.shape[1:]:
        raise InvalidInputError("real and synthetic must be image arrays (n, height, width, channels) of one shape")
    rng = np.random.default_rng(0)
    verdict = "pass" if report.passed else "fail"
    failing = ", ".join(report.failing) or "none"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             f'<p class="verdict {verdict}">{verdict.upper()}</p>',
             f"<p>real images: {len(real)}, synthetic images: {len(synthetic)}, holdout images: "
             f"{_fmt(report.metrics.get('n_holdout'))}, shape {tuple(real.shape[1:])}. "
             f"Failing checks: {html.escape(failing)}.</p>", "<h2>Checks</h2>", _check_table(report)]
    if report.timings:
        parts.append("<p>timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in report.timings.items()) + "</p>")

    # -- grids per label
    if real_labels is None or synthetic_labels is None:
        groups = [("all", np.arange(len(real)), np.arange(len(synthetic)))]
    else:
        r_lab, s_lab = np.asarray(real_labels, dtype=object), np.asarray(synthetic_labels, dtype=object)
        names = sorted({v for v in (*r_lab, *s_lab) if v is not None})
        names = [*names, *([None] if any(v is None for v in (*r_lab, *s_lab)) else [])]
        groups = [("<none>" if v is None else str(v), np.flatnonzero(r_lab == v) if v is not None else
                   np.flatnonzero([x is None for x in r_lab]),
                   np.flatnonzero(s_lab == v) if v is not None else np.flatnonzero([x is None for x in s_lab]))
                  for v in names]
    groups = [g for g in groups if len(g[2])] or groups
    rows = []
    for name, ri, si in groups[:MAX_LABELS]:
        rows.append((name, real[rng.permutation(ri)[:PER_ROW]] if len(ri) else real[:0],
                     synthetic[rng.permutation(si)[:PER_ROW]] if len(si) else synthetic[:0]))
    parts.append("<h2>Real and synthetic images per label</h2>")
    parts.append(_img(_grid_png(rows), "image grid per label"))
    if len(groups) > MAX_LABELS:
        parts.append(f"<p>({len(groups) - MAX_LABELS} more labels not shown)</p>")

    # -- most suspicious samples and their nearest training images
    arrays = report.arrays
    if "distance_pixels" in arrays and "nearest_train_pixels" in arrays and "synthetic_index" in arrays:
        d, near, index = arrays["distance_pixels"], arrays["nearest_train_pixels"], arrays["synthetic_index"]
        if len(index) and index.max() < len(synthetic) and near.max() < len(real):
            ref = arrays.get("reference_distance_pixels")
            median = float(np.median(ref)) if ref is not None and len(ref) else float("nan")
            order = np.argsort(d, kind="stable")[:SUSPICIOUS]
            pairs = [(synthetic[index[j]], real[near[j]], f"d={d[j]:.3g}") for j in order]
            parts.append("<h2>Synthetic images nearest to a training image</h2><p>The synthetic images with the "
                         "smallest pixel distance to their nearest training image (above), with that image (below); "
                         f"holdout images lie a median {median:.3g} from theirs. A near-zero distance is a copy.</p>")
            parts.append(_img(_pairs_png(pairs), "nearest training neighbours"))
    parts.append("</body></html>")
    document = "\n".join(parts)
    if path is not None:
        Path(path).write_text(document, encoding="utf-8")
    return document

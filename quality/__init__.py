"""Quality gates for synthetic tables, sequences and images: fidelity, privacy and expectation checks, HTML reports
(pure)."""

from quality.checks import CheckResult, QualityReport
from quality.errors import QualityError

__all__ = ["CheckResult", "QualityReport", "QualityError", "DEFAULT_THRESHOLDS", "evaluate", "render_report",
           "DEFAULT_SEQUENCE_THRESHOLDS", "evaluate_sequences", "render_sequence_report", "segment_series",
           "DEFAULT_IMAGE_THRESHOLDS", "evaluate_images", "render_image_report"]


def __getattr__(name: str):
    # the gate pulls in scipy/sklearn; keep `from quality.errors import QualityError` (the CLI's) light
    if name in ("evaluate", "DEFAULT_THRESHOLDS"):
        from quality import gate
        return getattr(gate, name)
    if name in ("evaluate_sequences", "render_sequence_report", "DEFAULT_SEQUENCE_THRESHOLDS", "segment_series"):
        from quality import sequence
        return getattr(sequence, name)
    if name in ("evaluate_images", "DEFAULT_IMAGE_THRESHOLDS"):
        from quality import image
        return getattr(image, name)
    if name == "render_image_report":
        from quality.image_report import render_image_report
        return render_image_report
    if name == "render_report":
        from quality.report import render_report
        return render_report
    raise AttributeError(f"module 'quality' has no attribute {name!r}")

"""Pure anomaly detectors: learn normal data, score what is not (higher = more anomalous)."""

from detectors.base import Detector
from detectors.errors import DetectorError
from detectors.registry import create_detector, get_detector_class, names

__all__ = ["Detector", "DetectorError", "create_detector", "get_detector_class", "names"]

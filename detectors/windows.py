"""Sliding windows over a series and per-point scores derived from window scores."""

from __future__ import annotations

import numpy as np

from detectors.errors import WindowError


def window_starts(n_points: int, length: int, stride: int) -> np.ndarray:
    """Start index of every window; the last window ends on the last point so every point is covered."""
    if length < 1 or stride < 1:
        raise WindowError(f"window length ({length}) and stride ({stride}) must be positive integers")
    if n_points < length:
        raise WindowError(
            f"series has {n_points} points, fewer than the window length {length}; "
            "pass a longer series or a smaller window"
        )
    starts = np.arange(0, n_points - length + 1, stride)
    if starts[-1] != n_points - length:
        starts = np.append(starts, n_points - length)
    return starts


def sliding_windows(series: np.ndarray, length: int, stride: int) -> np.ndarray:
    """Cut a (n_points, n_channels) series into (n_windows, n_channels, length) windows."""
    series = np.asarray(series)
    if series.ndim == 1:
        series = series[:, None]
    starts = window_starts(len(series), length, stride)
    index = starts[:, None] + np.arange(length)[None, :]
    return np.ascontiguousarray(series[index].transpose(0, 2, 1))


def point_scores(window_scores: np.ndarray, n_points: int, length: int, stride: int,
                 reduce: str = "mean") -> np.ndarray:
    """Score each point by the mean (or max) score of the windows that contain it."""
    starts = window_starts(n_points, length, stride)
    window_scores = np.asarray(window_scores, dtype=np.float64)
    if len(window_scores) != len(starts):
        raise WindowError(f"got {len(window_scores)} window scores for {len(starts)} windows")
    if reduce == "mean":
        total = np.zeros(n_points)
        count = np.zeros(n_points)
        for start, value in zip(starts, window_scores):
            total[start:start + length] += value
            count[start:start + length] += 1
        return total / count
    if reduce == "max":
        out = np.full(n_points, -np.inf)
        for start, value in zip(starts, window_scores):
            np.maximum(out[start:start + length], value, out=out[start:start + length])
        return out
    raise WindowError(f"reduce must be 'mean' or 'max', got {reduce!r}")

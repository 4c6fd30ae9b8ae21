"""Sliding windows and per-point scores."""

import numpy as np
import pytest

from detectors.errors import WindowError
from detectors.windows import point_scores, sliding_windows, window_starts


def test_windows_cover_every_point_including_the_end():
    starts = window_starts(10, length=4, stride=3)
    np.testing.assert_array_equal(starts, [0, 3, 6])
    np.testing.assert_array_equal(window_starts(11, 4, 3), [0, 3, 6, 7])


def test_sliding_windows_shape_and_content():
    series = np.arange(20, dtype=float).reshape(10, 2)
    windows = sliding_windows(series, 4, 2)
    assert windows.shape == (4, 2, 4)
    np.testing.assert_array_equal(windows[1, 0], [4, 6, 8, 10])
    np.testing.assert_array_equal(windows[1, 1], [5, 7, 9, 11])


def test_point_scores_mean_and_max():
    # windows [0..3], [2..5] with scores 1 and 3
    np.testing.assert_allclose(point_scores(np.array([1.0, 3.0]), 6, 4, 2, "mean"), [1, 1, 2, 2, 3, 3])
    np.testing.assert_allclose(point_scores(np.array([1.0, 3.0]), 6, 4, 2, "max"), [1, 1, 3, 3, 3, 3])


def test_too_few_points_for_the_window():
    with pytest.raises(WindowError, match="fewer than the window length 8"):
        window_starts(5, 8, 1)


def test_bad_window_settings():
    with pytest.raises(WindowError, match="positive"):
        window_starts(10, 0, 1)

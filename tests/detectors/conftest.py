"""Tiny planted-outlier data sets for the detector tests (built per test, never at module level)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def tabular_data(seed: int = 0):
    """(train, test, test_labels): correlated numerics + a categorical; outliers break the correlation."""
    rng = np.random.default_rng(seed)

    def rows(n, outlier=False):
        a = rng.normal(size=n)
        b = 2 * a + rng.normal(scale=0.1, size=n)
        c = rng.normal(size=n)
        if outlier:
            b = -2 * a + rng.normal(scale=0.1, size=n) + 3.0
            c = c + 4.0
        return pd.DataFrame({"a": a, "b": b, "c": c, "shop": rng.choice(["x", "y", "z"], size=n)})

    test = pd.concat([rows(80), rows(16, outlier=True)], ignore_index=True)
    labels = np.r_[np.zeros(80), np.ones(16)].astype(int)
    return rows(240), test, labels


def series_data(seed: int = 0):
    """(train, test, test_labels): a noisy sine; the test series has two planted level shifts / spikes."""
    rng = np.random.default_rng(seed)
    t = np.arange(480)
    train = np.sin(2 * np.pi * t / 24) + rng.normal(scale=0.05, size=len(t))
    t_test = np.arange(240)
    test = np.sin(2 * np.pi * t_test / 24) + rng.normal(scale=0.05, size=len(t_test))
    labels = np.zeros(len(t_test), dtype=int)
    test[100:124] = 2.5 + rng.normal(scale=0.05, size=24)
    labels[100:124] = 1
    test[180:196] = rng.normal(scale=1.5, size=16)
    labels[180:196] = 1
    return train, test, labels


def image_data(seed: int = 0):
    """(train, test, test_labels): 16x16 uint8 images of horizontal bars; outliers are vertical bars."""
    rng = np.random.default_rng(seed)

    def images(n, vertical=False):
        out = np.zeros((n, 16, 16), dtype=np.float64)
        for i in range(n):
            pos = rng.integers(2, 14)
            if vertical:
                out[i, :, pos - 1:pos + 2] = 1.0
            else:
                out[i, pos - 1:pos + 2, :] = 1.0
        out += rng.normal(scale=0.05, size=out.shape)
        return (np.clip(out, 0, 1) * 255).astype(np.uint8)

    test = np.concatenate([images(40), images(10, vertical=True)])
    labels = np.r_[np.zeros(40), np.ones(10)].astype(int)
    return images(120), test, labels


DATA = {"tabular": tabular_data, "timeseries": series_data, "image": image_data}


@pytest.fixture
def make_data():
    """Callable kind -> (train, test, labels), freshly built for each test."""
    return lambda kind, seed=0: DATA[kind](seed)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run faster on one thread, and the machine's cores are shared."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

"""Leaderboard figures count what the metrics count."""

from __future__ import annotations

import numpy as np

from gsr_bench.figures import tile_error


def test_tile_error_ignores_invalid_pixels() -> None:
    target = np.full((10, 10), 100.0)
    pred = target + 4.0
    valid = np.ones((10, 10), bool)
    valid[:5] = False
    pred[:5] = 1000.0  # a huge error where the label is invalid must not count
    err, rmse = tile_error(pred, target, valid)
    assert rmse == 4.0
    assert np.isnan(err[:5]).all() and (err[5:] == 4.0).all()
    assert np.isnan(tile_error(pred, target, np.zeros_like(valid))[1])

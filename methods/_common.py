"""Pieces shared by the learned built-in methods."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F


def box_blur(x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over a ``size x size`` window (odd), reflect-padded so the size is kept."""
    pad = size // 2
    return F.avg_pool2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), size, stride=1)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad the bottom and right of ``x`` to a multiple of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect")
    return x, (h, w)


def select_on_validation(
    make: Callable[[Any], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]],
    grid: Sequence[Any],
    val: Any,
    device: torch.device,
    max_tiles: int = 16,
    label: Callable[[Any], str] = str,
) -> tuple[Any, dict[str, float]]:
    """The grid value whose predictor has the lowest RMSE on (up to ``max_tiles``) validation tiles.

    Returns the value and every value's RMSE (logged, so the choice can be checked).
    """
    batch = val.batch(range(min(len(val), max_tiles)))
    guide, source = batch["guide"].to(device), batch["source"].to(device)
    target, valid = batch["target"].to(device), batch["valid"].to(device)
    scores: dict[str, float] = {}
    best, best_rmse = grid[0], float("inf")
    for value in grid:
        pred = make(value)(guide, source).clamp_min(0)
        rmse = float(((pred - target)[valid] ** 2).mean().sqrt())
        scores[label(value)] = rmse
        if rmse < best_rmse:
            best, best_rmse = value, rmse
    return best, scores

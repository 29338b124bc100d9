"""Pieces shared by the learned built-in methods."""

from __future__ import annotations

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

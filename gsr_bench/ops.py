"""Small tensor operations shared by methods, metrics and the training loop."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def block_mean(image: torch.Tensor, scale: int) -> torch.Tensor:
    """Exact ``scale x scale`` block mean of ``[B, C, H, W]`` (H and W multiples of ``scale``)."""
    if image.shape[-1] % scale or image.shape[-2] % scale:
        raise ValueError(f"size {tuple(image.shape[-2:])} is not a multiple of the scale {scale}")
    return F.avg_pool2d(image, scale)


def upsample(source: torch.Tensor, scale: int, mode: str) -> torch.Tensor:
    """Upsample ``[B, 1, h, w]`` by ``scale``: ``nearest`` (block copies), ``bilinear``, ``bicubic``.

    Pixel-centre aligned (``align_corners=False``), so that a block's centre maps to its cell's
    centre. Bicubic overshoots below zero near edges; biomass is never negative, so it is clamped.
    """
    if mode == "nearest":
        return source.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    out = F.interpolate(source, scale_factor=scale, mode=mode, align_corners=False)
    return out.clamp_min(0) if mode == "bicubic" else out

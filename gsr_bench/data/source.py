"""The coarse source of a tile: the exact block mean of the valid target pixels (after the
protocol's degradation), which blocks have a value, and the mask methods receive.

A source block without a valid target pixel has no value: it is invalid (``source_valid``
False), filled with the nearest valid block's value so that interpolating methods see no false
0 at its edge, and methods learn where it is from the guide's :data:`SOURCE_MASK` channel.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from scipy import ndimage

from gsr_bench.data.prepare import block_mean
from gsr_bench.protocol import Degradation


def source_mask(source_valid: torch.Tensor, scale: int) -> torch.Tensor:
    """The :data:`SOURCE_MASK` channel, float32 ``[..., 1, H, W]``: 1 on the target pixels whose
    source block (``source_valid`` ``[..., 1, H/s, W/s]``) is valid, else 0."""
    return source_valid.float().repeat_interleave(scale, -2).repeat_interleave(scale, -1)


def with_source_mask(guide: torch.Tensor, source_valid: torch.Tensor, scale: int) -> torch.Tensor:
    """``guide`` ``[..., C, H, W]`` with the :data:`SOURCE_MASK` channel appended."""
    return torch.cat([guide, source_mask(source_valid, scale).to(guide.dtype)], dim=-3)


def fill_invalid_blocks(source: np.ndarray, source_valid: np.ndarray) -> np.ndarray:
    """``source`` ``[1, h, w]`` with each invalid block set to its nearest valid block's value
    (0 where no block is valid: such a tile is scored nowhere)."""
    if source_valid.all() or not source_valid.any():
        return np.where(source_valid, source, 0).astype(np.float32)
    rows, cols = ndimage.distance_transform_edt(~source_valid[0], return_distances=False, return_indices=True)
    return source[:, rows, cols].astype(np.float32)


def degrade(
    target: np.ndarray, valid: np.ndarray, scale: int, deg: Degradation, key: str
) -> tuple[np.ndarray, np.ndarray]:
    """The coarse source and its validity: exact block mean over valid pixels, after an optional
    blur, then optional noise and bias; a block without a valid pixel is invalid and filled."""
    image = target
    if deg.blur_sigma > 0:
        weight = ndimage.gaussian_filter(valid.astype(np.float32), (0, deg.blur_sigma, deg.blur_sigma))
        image = ndimage.gaussian_filter(np.where(valid, target, 0), (0, deg.blur_sigma, deg.blur_sigma))
        image = np.where(weight > 1e-6, image / np.maximum(weight, 1e-6), 0)
    source = block_mean(image, valid, scale)
    h, w = valid.shape[-2] // scale, valid.shape[-1] // scale
    blocks = valid[..., : h * scale, : w * scale].reshape(*valid.shape[:-2], h, scale, w, scale)
    source_valid = np.asarray(blocks.any(axis=(-3, -1)))
    if deg.noise > 0:  # fixed per tile, so that every method and seed sees the same source
        rng = np.random.default_rng(int(hashlib.sha1(key.encode()).hexdigest()[:8], 16))
        source = source * (1 + deg.noise * rng.standard_normal(source.shape))
    source = np.clip(source * (1 + deg.bias), 0, None).astype(np.float32)
    return fill_invalid_blocks(source, source_valid), source_valid

"""Small tensor operations shared by methods, metrics and the training loop."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work, so that a timer measures it; nothing to wait for on a CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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


def check_pair(guide: torch.Tensor, source: torch.Tensor, scale: int) -> None:
    """Refuse a guide and source that do not describe the same tiles at ``scale``."""
    if guide.ndim != 4 or source.ndim != 4 or source.shape[1] != 1:
        raise ValueError(
            f"expected guide [B, C, H, W] and source [B, 1, h, w], got "
            f"{tuple(guide.shape)} and {tuple(source.shape)}"
        )
    h, w = source.shape[-2:]
    if guide.shape[-2:] != (h * scale, w * scale) or guide.shape[0] != source.shape[0]:
        raise ValueError(
            f"guide {guide.shape[-1]}x{guide.shape[-2]} is not {scale} x the source {w}x{h}: "
            f"crop the tile to a multiple of {scale} (the protocols crop 256 to 250)"
        )


def nan_block_mean(image: torch.Tensor, scale: int) -> torch.Tensor:
    """Block mean ignoring NaN pixels (NaN where a block has none)."""
    finite = torch.isfinite(image)
    total = F.avg_pool2d(torch.where(finite, image, torch.zeros_like(image)), scale)
    count = F.avg_pool2d(finite.to(image.dtype), scale)
    return torch.where(count > 0, total / count.clamp_min(1e-12), torch.full_like(total, float("nan")))


def project_to_source(pred: torch.Tensor, source: torch.Tensor, scale: int) -> torch.Tensor:
    """Correct ``pred`` so that its ``scale x scale`` block means equal ``source`` exactly.

    Multiplicative where the block mean is positive (keeps the texture and biomass >= 0); a block
    predicted as all zero while its source is not takes the source value uniformly.
    """
    b, c, h, w = pred.shape
    if h % scale or w % scale:
        raise ValueError(f"size {(h, w)} is not a multiple of the scale {scale}")
    # block views instead of pooling and upsampling: DADA runs this after every diffusion step
    pred = pred.clamp_min(0)
    mean = F.avg_pool2d(pred, scale)
    positive = mean > 1e-6
    ratio = torch.where(positive, source / mean.clamp_min(1e-6), torch.zeros_like(mean))
    flat = torch.where(positive, torch.zeros_like(source), source)
    cells = (b, c, h // scale, 1, w // scale, 1)
    blocks = pred.view(b, c, h // scale, scale, w // scale, scale)
    return torch.addcmul(flat.view(cells), blocks, ratio.view(cells)).view(b, c, h, w)

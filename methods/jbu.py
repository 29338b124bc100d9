"""Joint bilateral upsampling: Kopf, Cohen, Lischinski, Uyttendaele, "Joint Bilateral
Upsampling", ACM SIGGRAPH 2007.

Each 10 m pixel ``p`` (at low-resolution coordinate ``u = (p + 0.5) / s - 0.5``) averages the
source cells ``q`` of a (2r+1)^2 window around its own cell, weighted by a spatial Gaussian of
``|u - q|`` (``sigma_d`` in source cells) and a range Gaussian of the distance between the guide
at ``p`` and the guide's mean over cell ``q`` (root-mean-square over the z-scored channels, so
``sigma_r`` does not depend on the channel count). Vectorized over pixels and tiles: the only
Python loop is over the (2r+1)^2 window offsets. NaN guide channels drop out of the range
distance; NaN source cells get no weight.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from gsr_bench.api import Method, TaskInfo, check_pair, nan_block_mean

from ._common import select_on_validation

SIGMA_R_GRID = (0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)


def jbu(
    guide: torch.Tensor,
    source: torch.Tensor,
    scale: int,
    radius: int = 2,
    sigma_d: float = 1.0,
    sigma_r: float = 0.5,
) -> torch.Tensor:
    """Joint bilateral upsampling of ``source`` [B, 1, h, w] guided by ``guide`` [B, C, h*s, w*s]."""
    check_pair(guide, source, scale)
    b, _, hh, ww = guide.shape
    h, w = source.shape[-2:]
    dtype = guide.dtype
    guide_ok = torch.isfinite(guide)
    g = torch.where(guide_ok, guide, torch.zeros_like(guide))
    cell_mean = nan_block_mean(guide, scale)  # [B, C, h, w]
    src_ok = torch.isfinite(source)
    src = torch.where(src_ok, source, torch.zeros_like(source))
    pad = radius
    cell_mean = F.pad(cell_mean, (pad,) * 4, value=float("nan"))
    src = F.pad(src, (pad,) * 4)
    src_ok = F.pad(src_ok, (pad,) * 4)
    # Position of every pixel inside its cell, in cell units, relative to the cell centre.
    frac = (torch.arange(scale, dtype=dtype, device=guide.device) + 0.5) / scale - 0.5
    # Weights are accumulated in the log domain with a running maximum (as in a streaming
    # softmax): with a small sigma_r every range weight of a pixel can underflow to 0 otherwise.
    top = torch.full((b, 1, hh, ww), -torch.inf, dtype=dtype, device=guide.device)
    num = torch.zeros_like(top)
    den = torch.zeros_like(top)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            window = (slice(None), slice(None), slice(pad + dy, pad + dy + h), slice(pad + dx, pad + dx + w))
            log_spatial = -((frac[:, None] - dy) ** 2 + (frac[None, :] - dx) ** 2) / (2 * sigma_d**2)
            log_spatial = log_spatial.repeat(h, w)[None, None]
            q_guide = cell_mean[window].repeat_interleave(scale, -2).repeat_interleave(scale, -1)
            both = guide_ok & torch.isfinite(q_guide)
            diff = torch.where(both, g - q_guide, torch.zeros_like(g))
            dist2 = (diff**2).sum(1, keepdim=True) / both.sum(1, keepdim=True).clamp_min(1)
            ok = src_ok[window].repeat_interleave(scale, -2).repeat_interleave(scale, -1)
            logw = torch.where(ok, log_spatial - dist2 / (2 * sigma_r**2), torch.full_like(dist2, -torch.inf))
            new_top = torch.maximum(top, logw)
            rescale = torch.where(torch.isfinite(new_top), torch.exp(top - new_top), torch.zeros_like(top))
            weight = torch.where(torch.isfinite(new_top), torch.exp(logw - new_top), torch.zeros_like(top))
            value = src[window].repeat_interleave(scale, -2).repeat_interleave(scale, -1)
            num = num * rescale + weight * value
            den = den * rescale + weight
            top = new_top
    if (den <= 0).any():
        raise ValueError(
            f"{int((den <= 0).sum())} pixel(s) have no valid source cell within {radius} cells: "
            f"the source is NaN over too large an area"
        )
    return num / den


class JBU(Method):
    """JBU with ``sigma_r`` chosen on the validation split."""

    def __init__(
        self, task: TaskInfo, radius: int = 2, sigma_d: float = 1.0, sigma_r: float | None = None
    ) -> None:
        super().__init__(task)
        self.radius, self.sigma_d = radius, sigma_d
        self.sigma_r = sigma_r
        self.search: dict[str, float] = {}

    def fit(self, train: Any, val: Any, ctx: Any) -> dict[str, float]:
        if self.sigma_r is None:
            self.sigma_r, self.search = select_on_validation(
                lambda s: lambda g, src: jbu(g, src, self.task.scale, self.radius, self.sigma_d, s),
                SIGMA_R_GRID,
                val,
                self.device,
            )
        return {}

    def predict(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        sigma_r = self.sigma_r if self.sigma_r is not None else 0.5
        out = jbu(
            guide.to(self.device), source.to(self.device), self.task.scale, self.radius, self.sigma_d, sigma_r
        )
        return out.clamp_min(0)

    def config(self) -> dict[str, Any]:
        return {
            "radius": self.radius,
            "sigma_d": self.sigma_d,
            "sigma_r": self.sigma_r,
            **{f"val_rmse_sigma_r_{k}": v for k, v in self.search.items()},
        }

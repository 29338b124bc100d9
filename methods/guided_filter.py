"""Guided filter: He, Sun, Tang, "Guided Image Filtering", ECCV 2010 / IEEE TPAMI 2013.

The bicubic-upsampled source is filtered, edge-preservingly, by the first principal component of
the guide (computed per tile, scaled to unit variance): within every window the output is a
linear function ``a * I + b`` of the guide, with ``a = cov(I, p) / (var(I) + eps)``. Box means
come from cumulative sums, so the cost does not depend on the radius. Radius and ``eps`` are
chosen on the validation split.
"""

from __future__ import annotations

from typing import Any

import torch

from gsr_bench.api import Method, TaskInfo, check_pair, upsample

from ._common import select_on_validation

GRID = tuple((r, eps) for r in (2, 4, 8, 16) for eps in (0.001, 0.01, 0.1))


def box_sum(x: torch.Tensor, r: int) -> torch.Tensor:
    """Sum over the (2r+1)^2 window around each pixel, clipped at the borders, via cumulative sums."""
    h, w = x.shape[-2:]
    c = torch.nn.functional.pad(x.cumsum(-2).cumsum(-1), (1, 0, 1, 0))
    ys = torch.arange(h, device=x.device)
    xs = torch.arange(w, device=x.device)
    y0, y1 = (ys - r).clamp(0, h), (ys + r + 1).clamp(0, h)
    x0, x1 = (xs - r).clamp(0, w), (xs + r + 1).clamp(0, w)
    rows1, rows0 = c[..., y1, :], c[..., y0, :]
    return rows1[..., x1] - rows1[..., x0] - rows0[..., x1] + rows0[..., x0]


def box_mean(x: torch.Tensor, r: int) -> torch.Tensor:
    ones = torch.ones(1, 1, *x.shape[-2:], dtype=x.dtype, device=x.device)
    return box_sum(x, r) / box_sum(ones, r)


def guided_filter(guide: torch.Tensor, p: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """He et al.'s filter of ``p`` [B, 1, H, W] by a one-channel ``guide`` [B, 1, H, W]."""
    mean_i, mean_p = box_mean(guide, r), box_mean(p, r)
    cov_ip = box_mean(guide * p, r) - mean_i * mean_p
    var_i = box_mean(guide * guide, r) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, r) * guide + box_mean(b, r)


def first_component(guide: torch.Tensor) -> torch.Tensor:
    """Per tile, the guide's first principal component over channels, at unit variance.

    NaN pixels count as the channel mean; a constant guide gives a zero component (the filter
    then returns the local mean of the input, never NaN).
    """
    b, c, h, w = guide.shape
    x = guide.reshape(b, c, -1)
    mean = torch.nanmean(x, dim=-1, keepdim=True)
    x = torch.where(torch.isfinite(x), x - mean, torch.zeros_like(x))
    cov = x @ x.transpose(1, 2) / x.shape[-1]
    _, vectors = torch.linalg.eigh(cov.double())
    pc = (vectors[..., -1:].transpose(1, 2).to(x.dtype) @ x).reshape(b, 1, h, w)
    std = pc.reshape(b, -1).std(dim=1).reshape(b, 1, 1, 1)
    return torch.where(std > 1e-6, pc / std.clamp_min(1e-6), torch.zeros_like(pc))


class GuidedFilter(Method):
    def __init__(self, task: TaskInfo, radius: int | None = None, eps: float | None = None) -> None:
        super().__init__(task)
        self.radius, self.eps = radius, eps
        self.search: dict[str, float] = {}

    def _filter(self, guide: torch.Tensor, source: torch.Tensor, r: int, eps: float) -> torch.Tensor:
        check_pair(guide, source, self.task.scale)
        # Work in target units scaled by the dataset's spread, so that one eps grid fits any data.
        p = upsample(source, self.task.scale, "bicubic") / self.task.target_std
        out = guided_filter(first_component(guide), p, r, eps)
        return (out * self.task.target_std).clamp_min(0)

    def fit(self, train: Any, val: Any, ctx: Any) -> dict[str, float]:
        if self.radius is None or self.eps is None:
            (self.radius, self.eps), self.search = select_on_validation(
                lambda v: lambda g, s: self._filter(g, s, v[0], v[1]),
                GRID,
                val,
                self.device,
                label=lambda v: f"r{v[0]}_eps{v[1]:g}",
            )
        return {}

    def predict(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return self._filter(guide.to(self.device), source.to(self.device), self.radius or 5, self.eps or 0.1)

    def config(self) -> dict[str, Any]:
        return {
            "radius": self.radius,
            "eps": self.eps,
            **{f"val_rmse_{k}": v for k, v in self.search.items()},
        }

"""Evaluation metrics on valid pixels, in the target's units (design section 7), in torch.

Pooled metrics (MAE, RMSE, bias, R2, per-bin RMSE) sum over every valid pixel of the test split;
``rmse_tile``, PSNR and SSIM are computed per tile and averaged (the BioMassters challenge and
scikit-image conventions).
"""

from __future__ import annotations

import functools
import itertools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from gsr_bench.ops import block_mean

TARGET_UNITS = "target"  # a metric in the dataset's units, named in each leaderboard section


@dataclass(frozen=True)
class MetricInfo:
    name: str
    higher_is_better: bool | None  # None: neither (bias: closer to 0; sizes)
    unit: str = TARGET_UNITS
    label: str = ""


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("rmse", False, label="RMSE"),
        MetricInfo("mae", False, label="MAE"),
        MetricInfo("rmse_tile", False, label="RMSE (tile mean)"),
        MetricInfo("bias", None, label="bias"),
        MetricInfo("r2", True, "", "R²"),
        MetricInfo("psnr", True, "dB", "PSNR"),
        MetricInfo("ssim", True, "", "SSIM"),
        MetricInfo("consistency_rmse", False, label="consistency RMSE"),
        MetricInfo("throughput_mpix_s", True, "Mpix/s", "Mpix/s"),
        MetricInfo("params", None, "", "params"),
        MetricInfo("train_time_s", False, "s", "train time"),
    )
}


def format_rate(mpix_s: float) -> str:
    """Throughput for people: P2P's 0.02 and nearest's thousands in one column."""
    if mpix_s < 10:
        return f"{mpix_s:.3g}"
    return f"{mpix_s:,.1f}" if mpix_s < 1e3 else f"{mpix_s:,.0f}"


def bin_names(edges: Sequence[float]) -> list[str]:
    """Names of the target bins: exactly 0, then between edges, then above the last."""
    names = ["0"]
    for lo, hi in itertools.pairwise(edges):
        names.append(f"{lo:g}-{hi:g}")
    names.append(f"gt{edges[-1]:g}")
    return names


def bin_index(target: torch.Tensor, edges: Sequence[float]) -> torch.Tensor:
    """Bin of every pixel: 0 for exactly zero, then ``(lo, hi]`` intervals."""
    bounds = torch.tensor(list(edges[1:]), dtype=target.dtype, device=target.device)
    idx = torch.bucketize(target, bounds, right=False) + 1
    return torch.where(target <= edges[0], torch.zeros_like(idx), idx)


def _gaussian_kernel(sigma: float, truncate: float, device: torch.device) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2  # scikit-image's K1, K2 squared, for data scaled to [0, 1]
COMPILE_SSIM_ENV = "GSR_BENCH_COMPILE_SSIM"


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM of ``[B, 1, H, W]``, as scikit-image's ``structural_similarity`` with
    ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``, within 1e-6 of it.

    scikit-image filters the whole image and then drops a border of half the window; filtering
    without padding gives exactly that interior, so no padding mode needs to be matched. Only
    four maps are filtered: x, y, x² + y² and xy (the variances only ever appear as a sum), in
    float32 on values scaled by ``data_range``.

    The filter is separable, as sums of shifted slices. Eager, on one CPU thread, 8 tiles of
    250 x 250 take about 18 ms (scikit-image: 24 ms; the float64 convolutions before: 336 ms).
    With ``GSR_BENCH_COMPILE_SSIM=1`` the same function is compiled by torch.compile into one
    fused loop: 2.3 ms, 10x scikit-image, after about 20 s of compilation per process and shape,
    which pays off only beyond thousands of tiles on a CPU (GPUs need no compilation).
    """
    b, _, h, w = pred.shape
    k = _gaussian_kernel(sigma, 3.5, pred.device).float()
    if min(h, w) < len(k):  # smaller than the window: undefined, as in scikit-image
        return torch.full((b,), float("nan"), dtype=torch.float64)
    x = (pred.float() / data_range).reshape(b, h, w)
    y = (target.float() / data_range).reshape(b, h, w)
    fn = _compiled_ssim() if os.environ.get(COMPILE_SSIM_ENV) == "1" else _ssim_separable
    return fn(x, y, tuple(k.tolist())).double()


def _ssim_index(ux: torch.Tensor, uy: torch.Tensor, sq: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Mean SSIM per image from the filtered maps ``[B, H', W']`` (``sq`` filters x² + y²)."""
    uxy = ux * uy
    u2 = ux * ux + uy * uy
    s = ((2 * uxy + SSIM_C1) * (2 * (xy - uxy) + SSIM_C2)) / ((u2 + SSIM_C1) * (sq - u2 + SSIM_C2))
    return s.mean(dim=(1, 2))


def _ssim_separable(x: torch.Tensor, y: torch.Tensor, k: tuple[float, ...]) -> torch.Tensor:
    def filt(z: torch.Tensor) -> torch.Tensor:
        n = len(k)
        w, h = z.shape[-1] - n + 1, z.shape[-2] - n + 1
        rows = k[0] * z[..., 0:w]
        for i in range(1, n):
            rows = rows + k[i] * z[..., i : i + w]
        out = k[0] * rows[..., 0:h, :]
        for i in range(1, n):
            out = out + k[i] * rows[..., i : i + h, :]
        return out

    return _ssim_index(filt(x), filt(y), filt(x * x + y * y), filt(x * y))


@functools.cache
def _compiled_ssim() -> Any:
    return torch.compile(_ssim_separable, dynamic=False)


def psnr(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, data_range: float) -> torch.Tensor:
    """Per-image PSNR over valid pixels (scikit-image's ``peak_signal_noise_ratio``)."""
    err = ((pred.double() - target.double()) ** 2 * valid).sum(dim=(1, 2, 3))
    mse = err / valid.sum(dim=(1, 2, 3)).clamp_min(1)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(1e-20))


@dataclass
class MetricAccumulator:
    """Accumulates metrics over batches of test tiles."""

    data_range: float
    scale: int
    bins: Sequence[float]
    extra: dict[str, Callable[..., float]] = field(default_factory=dict)
    _sums: dict[str, float] = field(default_factory=dict)
    _tile: dict[str, list[float]] = field(default_factory=dict)
    _bin_sq: torch.Tensor | None = None
    _bin_err: torch.Tensor | None = None
    _bin_n: torch.Tensor | None = None

    def update(
        self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, source: torch.Tensor
    ) -> None:
        pred, target = pred.detach().double().cpu(), target.double().cpu()
        valid, source = valid.cpu(), source.double().cpu()
        v = valid.double()
        err = (pred - target) * v
        s = self._sums
        for name, value in (
            ("n", v.sum()),
            ("abs", err.abs().sum()),
            ("sq", (err**2).sum()),
            ("err", err.sum()),
            ("t", (target * v).sum()),
            ("tt", (target**2 * v).sum()),
            ("cons_sq", ((block_mean(pred, self.scale) - source) ** 2).sum()),
            ("cons_n", float(source.numel())),
        ):
            s[name] = s.get(name, 0.0) + float(value)
        tile_mse = (err**2).sum(dim=(1, 2, 3)) / v.sum(dim=(1, 2, 3)).clamp_min(1)
        filled = torch.where(valid, pred, target)  # SSIM on whole tiles: invalid pixels carry no error
        for name, values in (
            ("rmse_tile", tile_mse.sqrt()),
            ("psnr", psnr(pred, target, valid, self.data_range)),
            ("ssim", ssim(filled, target, self.data_range)),
        ):
            self._tile.setdefault(name, []).extend(values.tolist())
        for name, fn in self.extra.items():
            self._tile.setdefault(name, []).extend([float(fn(pred, target, valid))] * len(pred))
        idx = bin_index(target, self.bins)[valid]
        n_bins = len(self.bins) + 1
        e = (pred - target)[valid]
        for attr, values in (("_bin_sq", e**2), ("_bin_err", e), ("_bin_n", torch.ones_like(e))):
            acc = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, values)
            prev = getattr(self, attr)
            setattr(self, attr, acc if prev is None else prev + acc)

    def compute(self) -> dict[str, float]:
        s = self._sums
        n = max(s["n"], 1.0)
        mean_t = s["t"] / n
        sst = s["tt"] - n * mean_t**2
        out = {
            "mae": s["abs"] / n,
            "rmse": math.sqrt(s["sq"] / n),
            "bias": s["err"] / n,
            "r2": 1 - s["sq"] / sst if sst > 0 else float("nan"),
            "consistency_rmse": math.sqrt(s["cons_sq"] / max(s["cons_n"], 1.0)),
        }
        for name, values in self._tile.items():
            out[name] = sum(values) / len(values)
        assert self._bin_sq is not None and self._bin_n is not None and self._bin_err is not None
        for k, name in enumerate(bin_names(self.bins)):
            count = float(self._bin_n[k])
            out[f"rmse_bin_{name}"] = math.sqrt(float(self._bin_sq[k]) / count) if count else float("nan")
            out[f"bias_bin_{name}"] = float(self._bin_err[k]) / count if count else float("nan")
            out[f"pixels_bin_{name}"] = count
        return out

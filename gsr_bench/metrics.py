"""Evaluation metrics on valid pixels, in Mg/ha (design section 7), in torch.

Pooled metrics (MAE, RMSE, bias, R2, per-bin RMSE) sum over every valid pixel of the test split;
``rmse_tile``, PSNR and SSIM are computed per tile and averaged (the BioMassters challenge and
scikit-image conventions).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from gsr_bench.ops import block_mean


@dataclass(frozen=True)
class MetricInfo:
    name: str
    higher_is_better: bool | None  # None: neither (bias: closer to 0; sizes)
    unit: str = "Mg/ha"
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
    """Names of the biomass bins: exactly 0, then between edges, then above the last."""
    names = ["0"]
    for lo, hi in itertools.pairwise(edges):
        names.append(f"{lo:g}-{hi:g}")
    names.append(f"gt{edges[-1]:g}")
    return names


def bin_index(target: torch.Tensor, edges: Sequence[float]) -> torch.Tensor:
    """Bin of every pixel: 0 for exactly zero biomass, then ``(lo, hi]`` intervals."""
    bounds = torch.tensor(list(edges[1:]), dtype=target.dtype, device=target.device)
    idx = torch.bucketize(target, bounds, right=False) + 1
    return torch.where(target <= edges[0], torch.zeros_like(idx), idx)


def _gaussian_kernel(sigma: float, truncate: float, device: torch.device) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM of ``[B, 1, H, W]``, as scikit-image's ``structural_similarity`` with
    ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``.

    scikit-image filters the whole image and then drops a border of half the window; convolving
    without padding gives exactly that interior, so no padding mode needs to be matched.

    Speed: the five maps (x, y, x², y², xy) of every image are the channels of one image, filtered
    by one depthwise convolution in channels-last layout, in float32 on values scaled by
    ``data_range`` (about 1): within 1e-6 of scikit-image's float64 filters.
    """
    b, _, h, w = pred.shape
    k = _gaussian_kernel(sigma, 3.5, pred.device).float()
    size = len(k)
    if min(h, w) < size:  # smaller than the window: undefined, as in scikit-image
        return torch.full((b,), float("nan"), dtype=torch.float64)
    x = (pred.float() / data_range).reshape(b, h, w).permute(1, 2, 0)
    y = (target.float() / data_range).reshape(b, h, w).permute(1, 2, 0)
    maps = torch.empty(h, w, 5, b, device=pred.device)  # channels-last memory of [1, 5B, H, W]
    maps[:, :, 0], maps[:, :, 1] = x, y
    torch.mul(x, x, out=maps[:, :, 2])
    torch.mul(y, y, out=maps[:, :, 3])
    torch.mul(x, y, out=maps[:, :, 4])
    n = 5 * b
    image = maps.view(h, w, n).permute(2, 0, 1).unsqueeze(0)
    window = (k[:, None] * k[None, :]).expand(n, 1, size, size)
    # one depthwise 2-D convolution: oneDNN keeps channels-last and vectorizes over the maps,
    # several times faster here than the two 1-D passes, which it runs channels-first
    window = window.contiguous(memory_format=torch.channels_last)
    out = F.conv2d(image, window, groups=n)[0].permute(1, 2, 0).reshape(h - size + 1, w - size + 1, 5, b)
    ux, uy, xx, yy, xy = out.unbind(2)
    vx, vy, vxy = xx - ux * ux, yy - uy * uy, xy - ux * uy
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(0, 1)).double()


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

"""Evaluation metrics on valid pixels, in the target's units, in torch.

Every metric reads only valid target pixels (BioMassters' -9999 labels, a depth map's holes and
a raster's nodata are invalid):

- **Pooled** over every valid pixel of the test split: MAE, RMSE, bias, R², per-bin RMSE and
  bias, and ``psnr`` (from the pooled MSE). They do not depend on how the split is tiled.
- **Per tile**, then averaged over the tiles that hold at least one valid pixel: ``rmse_tile``,
  ``psnr_tile`` (the BioMassters challenge's and scikit-image's convention) and ``ssim``. A tile
  without a valid pixel is left out and counted (``tiles_empty``; ``tiles_scored`` the others).
- **PSNR of an exact prediction** (MSE 0) is infinite; both PSNRs floor the MSE at
  ``data_range² · 1e-10``, so an exact tile scores :data:`PSNR_MAX_DB` (100 dB) everywhere.
- **SSIM under a mask**: the mean of the SSIM map over the windows whose centre pixel is valid;
  each window's Gaussian moments are taken over its valid pixels only (normalized convolution),
  so invalid pixels count neither as errors nor as perfect. On a fully valid tile this is
  scikit-image's ``structural_similarity`` (Gaussian weights, sigma 1.5, population covariance).
- **Consistency** compares the prediction's block means with the source on the blocks that hold
  a valid target pixel (a block without one has no source value).
- **Bins** are half-open between the dataset's edges and named by them: with edges 10, 50 and
  300 the bins are ``<10``, ``10-50`` (10 <= t < 50), ``50-300`` and ``>=300``; their metric
  keys spell ``<`` as ``lt`` and ``>=`` as ``ge`` (``rmse_bin_lt10``, ``rmse_bin_ge300``), as
  MLflow allows no ``<`` in a key.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from gsr_bench.ops import block_mean

TARGET_UNITS = "target"  # a metric in the dataset's units, named in each leaderboard section
PSNR_MAX_DB = 100.0  # an exact prediction's PSNR: 10·log10(1 / 1e-10)

# What each revision of these definitions changed, and where ("masks": on tiles with masked
# pixels only). Results record their revision (tag ``metrics_revision``); ``gsr-bench score``
# replaces a stored value only where its definition changed since. "bins" is every per-bin metric.
REVISIONS: dict[int, dict[str, str]] = {
    2: {
        "psnr": "always",
        "bins": "always",
        "ssim": "masks",
        "rmse_tile": "masks",
        "consistency_rmse": "masks",
    },
}
METRICS_REVISION = max(REVISIONS)


def definition_changed(name: str, since: int, masked: bool) -> bool:
    """Whether metric ``name`` (``projected_`` or not) is defined otherwise than at revision
    ``since``, on a test split with (``masked``) or without masked pixels."""
    base = name.removeprefix("projected_")
    if "_bin_" in base:
        base = "bins"
    changes = [REVISIONS[r].get(base) for r in REVISIONS if r > since]
    return "always" in changes or (masked and "masks" in changes)


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
        MetricInfo("psnr_tile", True, "dB", "PSNR (tile mean)"),
        MetricInfo("ssim", True, "", "SSIM"),
        MetricInfo("consistency_rmse", False, label="consistency RMSE"),
        MetricInfo("throughput_mpix_s", True, "Mpix/s", "Mpix/s"),
        MetricInfo("params", None, "", "params"),
        MetricInfo("train_time_s", False, "s", "train time"),
    )
}

# what MetricAccumulator computes besides its extra metrics: these, and for each bin of the
# dataset's edges one ``{metric}_bin_{bin}`` of each BIN_METRICS
ACCUMULATED = frozenset(
    {"mae", "rmse", "rmse_tile", "psnr", "psnr_tile", "ssim", "bias", "r2", "consistency_rmse"}
    | {"tiles_scored", "tiles_empty"}
)
BIN_METRICS = ("rmse", "bias", "pixels")


def is_accumulated(name: str) -> bool:
    """Whether :class:`MetricAccumulator` computes a metric of this name (``projected_`` or not),
    extra metrics aside: the ones ``gsr-bench score`` recomputes from saved predictions."""
    base = name.removeprefix("projected_")
    return base in ACCUMULATED or base.startswith(tuple(f"{m}_bin_" for m in BIN_METRICS))


AGGREGATIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "mean": statistics.fmean,
    "median": statistics.median,
    "min": min,
    "max": max,
}


def format_rate(mpix_s: float) -> str:
    """Throughput for people: P2P's 0.02 and nearest's thousands in one column."""
    if mpix_s < 10:
        return f"{mpix_s:.3g}"
    return f"{mpix_s:,.1f}" if mpix_s < 1e3 else f"{mpix_s:,.0f}"


def bin_names(edges: Sequence[float]) -> list[str]:
    """Metric-key names of the bins of ``edges``: ``lt10``, ``10-50``, ..., ``ge300``."""
    if not edges:
        return ["all"]
    inner = [f"{lo:g}-{hi:g}" for lo, hi in itertools.pairwise(edges)]
    return [f"lt{edges[0]:g}", *inner, f"ge{edges[-1]:g}"]


def bin_label(name: str) -> str:
    """A bin's name for people: ``lt10`` → ``<10``, ``ge300`` → ``>=300``."""
    if name.startswith("lt"):
        return "<" + name[2:]
    return ">=" + name[2:] if name.startswith("ge") else name


def bin_lower_bound(name: str) -> float:
    """Sort key of a bin name from :func:`bin_names`; names of other forms sort last."""
    try:
        if name.startswith("lt"):
            return -math.inf
        if name.startswith("ge"):
            return float(name[2:])
        return float(name.split("-")[0])
    except ValueError:
        return math.inf


def bin_index(target: torch.Tensor, edges: Sequence[float]) -> torch.Tensor:
    """Bin of every value: 0 below the first edge, ``i`` for ``edges[i-1] <= t < edges[i]``,
    ``len(edges)`` from the last edge up."""
    bounds = torch.tensor(list(edges), dtype=target.dtype, device=target.device)
    return torch.bucketize(target, bounds, right=True)


def psnr_from_mse(mse: torch.Tensor | float, data_range: float) -> torch.Tensor:
    """PSNR in dB of an MSE, exact predictions capped at :data:`PSNR_MAX_DB`."""
    mse = torch.as_tensor(mse, dtype=torch.float64)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(data_range**2 * 10 ** (-PSNR_MAX_DB / 10)))


def psnr(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, data_range: float) -> torch.Tensor:
    """Per-image PSNR over valid pixels (scikit-image's ``peak_signal_noise_ratio`` on them);
    NaN for an image without a valid pixel."""
    v = valid.double()
    n = v.sum(dim=(1, 2, 3))
    mse = ((pred.double() - target.double()) ** 2 * v).sum(dim=(1, 2, 3)) / n.clamp_min(1)
    out = psnr_from_mse(mse, data_range)
    return torch.where(n > 0, out, torch.full_like(out, float("nan")))


def _gaussian_kernel(sigma: float, truncate: float, device: torch.device) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2  # scikit-image's K1, K2 squared, for data scaled to [0, 1]
COMPILE_SSIM_ENV = "GSR_BENCH_COMPILE_SSIM"


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float,
    valid: torch.Tensor | None = None,
    sigma: float = 1.5,
) -> torch.Tensor:
    """Per-image SSIM of ``[B, 1, H, W]`` over the windows centred on ``valid`` pixels (all when
    None), each window's moments taken over its valid pixels; NaN for an image without such a
    window. Fully valid, it is scikit-image's ``structural_similarity`` with
    ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``, within 1e-6.

    scikit-image filters the whole image and then drops a border of half the window; filtering
    without padding gives exactly that interior, so no padding mode needs to be matched. Five
    maps are filtered: the mask m, and m times x, y, x² + y² and xy (the variances only ever
    appear as a sum), in float32 on values scaled by ``data_range``; dividing by the filtered
    mask makes each window's moments those of its valid pixels.

    The filter is separable, as sums of shifted slices. Eager, on one CPU thread, 8 tiles of
    250 x 250 take about 24 ms, 28 ms with a mask (scikit-image, which takes none: 27 ms). With
    ``GSR_BENCH_COMPILE_SSIM=1`` the same function is compiled by torch.compile into one fused
    loop, after about 20 s of compilation per process and shape, which pays off only beyond
    thousands of tiles on a CPU (GPUs need no compilation).
    """
    b, _, h, w = pred.shape
    k = _gaussian_kernel(sigma, 3.5, pred.device).float()
    if min(h, w) < len(k):  # smaller than the window: undefined, as in scikit-image
        return torch.full((b,), float("nan"), dtype=torch.float64)
    x = (pred.float() / data_range).reshape(b, h, w)
    y = (target.float() / data_range).reshape(b, h, w)
    m = torch.ones_like(x) if valid is None else valid.reshape(b, h, w).to(x.dtype)
    fn = _compiled_ssim() if os.environ.get(COMPILE_SSIM_ENV) == "1" else _ssim_masked
    total, count = fn(x, y, m, tuple(k.tolist()))
    total, count = total.double(), count.double()
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


def _ssim_masked(
    x: torch.Tensor, y: torch.Tensor, m: torch.Tensor, k: tuple[float, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of the SSIM map over valid window centres, and their number, per image."""
    n = len(k)
    r = n // 2

    def filt(z: torch.Tensor) -> torch.Tensor:
        w, h = z.shape[-1] - n + 1, z.shape[-2] - n + 1
        rows = k[0] * z[..., 0:w]
        for i in range(1, n):
            rows = rows + k[i] * z[..., i : i + w]
        out = k[0] * rows[..., 0:h, :]
        for i in range(1, n):
            out = out + k[i] * rows[..., i : i + h, :]
        return out

    xm, ym = x * m, y * m
    weight = filt(m)
    centre = m[..., r : r + weight.shape[-2], r : r + weight.shape[-1]]
    norm = torch.where(centre > 0, 1 / weight.clamp_min(1e-12), torch.zeros_like(weight))
    ux, uy = filt(xm) * norm, filt(ym) * norm
    sq, xy = filt(xm * x + ym * y) * norm, filt(xm * y) * norm
    uxy = ux * uy
    u2 = ux * ux + uy * uy
    s = ((2 * uxy + SSIM_C1) * (2 * (xy - uxy) + SSIM_C2)) / ((u2 + SSIM_C1) * (sq - u2 + SSIM_C2))
    return (s * centre).sum(dim=(1, 2)), centre.sum(dim=(1, 2))


@functools.cache
def _compiled_ssim() -> Any:
    return torch.compile(_ssim_masked, dynamic=False)


TileMetric = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], float]


@dataclass(frozen=True)
class ExtraMetric:
    """A plugin's per-tile metric, called on each tile with a valid pixel as
    ``fn(pred, target, valid)`` (``[1, H, W]`` float64, float64, bool) and aggregated over them."""

    fn: TileMetric
    aggregate: str = "mean"


@dataclass
class MetricAccumulator:
    """Accumulates metrics over batches of test tiles (see the module's docstring)."""

    data_range: float
    scale: int
    bins: Sequence[float]
    extra: dict[str, ExtraMetric] = field(default_factory=dict)
    _sums: dict[str, float] = field(default_factory=dict)
    _tile: dict[str, list[float]] = field(default_factory=dict)
    _bin_sq: torch.Tensor | None = None
    _bin_err: torch.Tensor | None = None
    _bin_n: torch.Tensor | None = None

    def update(
        self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, source: torch.Tensor
    ) -> None:
        pred, target = pred.detach().double().cpu(), target.double().cpu()
        valid, source = valid.cpu().bool(), source.double().cpu()
        v = valid.double()
        err = (pred - target) * v
        # a block without a valid target pixel has no source value to be consistent with
        block_valid = F.max_pool2d(v, self.scale)
        s = self._sums
        n_tile = v.sum(dim=(1, 2, 3))
        scored = n_tile > 0
        for name, value in (
            ("n", v.sum()),
            ("abs", err.abs().sum()),
            ("sq", (err**2).sum()),
            ("err", err.sum()),
            ("t", (target * v).sum()),
            ("tt", (target**2 * v).sum()),
            ("cons_sq", ((block_mean(pred, self.scale) - source) ** 2 * block_valid).sum()),
            ("cons_n", block_valid.sum()),
            ("tiles_scored", scored.sum()),
            ("tiles_empty", (~scored).sum()),
        ):
            s[name] = s.get(name, 0.0) + float(value)
        tile_mse = (err**2).sum(dim=(1, 2, 3)) / n_tile.clamp_min(1)
        for name, values in (
            ("rmse_tile", tile_mse.sqrt()),
            ("psnr_tile", psnr_from_mse(tile_mse, self.data_range)),
            ("ssim", ssim(pred, target, self.data_range, valid)),
        ):
            self._tile.setdefault(name, []).extend(values[scored].tolist())
        for name, metric in self.extra.items():
            per_tile = [
                float(metric.fn(pred[i], target[i], valid[i])) for i in range(len(pred)) if bool(scored[i])
            ]
            self._tile.setdefault(name, []).extend(per_tile)
        idx = bin_index(target, self.bins)[valid]
        n_bins = len(bin_names(self.bins))
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
        nan = float("nan")
        out = {
            "mae": s["abs"] / n if s["n"] else nan,
            "rmse": math.sqrt(s["sq"] / n) if s["n"] else nan,
            "psnr": float(psnr_from_mse(s["sq"] / n, self.data_range)) if s["n"] else nan,
            "bias": s["err"] / n if s["n"] else nan,
            "r2": 1 - s["sq"] / sst if sst > 0 else nan,
            "consistency_rmse": math.sqrt(s["cons_sq"] / s["cons_n"]) if s["cons_n"] else nan,
            "tiles_scored": s["tiles_scored"],
            "tiles_empty": s["tiles_empty"],
        }
        for name, values in self._tile.items():
            finite = [x for x in values if math.isfinite(x)]  # SSIM: no valid window centre
            how = self.extra[name].aggregate if name in self.extra else "mean"
            out[name] = AGGREGATIONS[how](finite) if finite else nan
        assert self._bin_sq is not None and self._bin_n is not None and self._bin_err is not None
        for k, name in enumerate(bin_names(self.bins)):
            count = float(self._bin_n[k])
            per_bin = {
                "rmse": math.sqrt(float(self._bin_sq[k]) / count) if count else nan,
                "bias": float(self._bin_err[k]) / count if count else nan,
                "pixels": count,
            }
            out.update({f"{m}_bin_{name}": per_bin[m] for m in BIN_METRICS})
        return out

"""U-TAE: Garnot and Landrieu, "Panoptic Segmentation of Satellite Image Time Series with
Convolutional Temporal Attention Networks", ICCV 2021; here the regression of biomass from the
monthly images alone, the kind of model that won the BioMassters challenge.

Spec:
- The guide is regrouped by period from its channel names (``B4@Jan``, ``avail_S2@Jan``): each
  period's bands, each multiplied by its sensor's availability mask, then the masks, so that
  unobserved values never reach the network, whatever they hold.
- A shared spatial encoder runs on every period: per level a 3 x 3 convolution block (group
  norm, ReLU) after a stride-2 convolution (none at the first), widths ``widths``.
- Lightweight temporal attention (L-TAE) at the lowest resolution: per pixel, ``heads`` learned
  master queries attend over the periods; keys from a linear map of the features plus a
  sinusoidal encoding of the period index. Periods without any observation under a lowest-level
  pixel are masked out of the softmax (never treated as observed zeros); a pixel with none at
  all attends uniformly to the (then input-independent) features.
- The attention maps are upsampled to every level and collapse its features over time, the
  channels split in ``heads`` groups, one per head: the masks are reused at every level.
- A U-Net decoder (upsample x2, concatenate the collapsed skip, conv block) gives ``widths[0]``
  features at 10 m; a 3 x 3 convolution regresses the z-scored biomass (``utae``), or they are
  the guide of MSG-Net (``msg-t``, :mod:`.msg_t`).
- Paper: widths 64, 64, 64, 128, 16 heads, keys of 4; the defaults are the CPU ``quick`` budget.

Size, 12 months of 14 bands and 2 masks: 0.14 M parameters and 358 kFLOP a pixel with the default
widths (16, 32, 64); 37 k and 103 kFLOP with quick's (8, 16, 32) (torch's count, ``gsr-bench
bench``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gsr_bench.api import MASK_PREFIX, TaskInfo, TorchMethod, sensor_of, split_channel

from ._common import pad_to_multiple

WIDTHS = (16, 32, 64)


@dataclass(frozen=True)
class SeriesLayout:
    """Where each period's bands and availability masks sit in a guide, from its channel names."""

    periods: tuple[str, ...]
    bands: tuple[str, ...]
    band_index: tuple[tuple[int, ...], ...]  # [T][bands]
    band_mask: tuple[tuple[int, ...], ...]  # [T][bands]: the mask channel of its sensor, -1 if none
    mask_index: tuple[tuple[int, ...], ...]  # [T][masks]

    @classmethod
    def from_channels(cls, channels: tuple[str, ...]) -> SeriesLayout:
        index = {name: k for k, name in enumerate(channels)}
        by_period: dict[str, list[str]] = {}
        for name in channels:
            band, period = split_channel(name)
            if not band.startswith(MASK_PREFIX):
                by_period.setdefault(period, []).append(band)
        if not by_period:
            raise ValueError("the guide has no bands, only availability masks")
        periods = tuple(by_period)
        bands = tuple(by_period[periods[0]])
        for period, names in by_period.items():
            if tuple(names) != bands:
                raise ValueError(f"period {period!r} has bands {names}, the first period {list(bands)}")

        def at(name: str, period: str) -> str:
            return f"{name}@{period}" if period else name

        sensors = sorted({sensor_of(b) for b in bands})
        band_index, band_mask, mask_index = [], [], []
        for p in periods:
            band_index.append(tuple(index[at(b, p)] for b in bands))
            band_mask.append(tuple(index.get(at(f"{MASK_PREFIX}{sensor_of(b)}", p), -1) for b in bands))
            mask_index.append(
                tuple(
                    index[at(f"{MASK_PREFIX}{s}", p)] for s in sensors if at(f"{MASK_PREFIX}{s}", p) in index
                )
            )
        return cls(periods, bands, tuple(band_index), tuple(band_mask), tuple(mask_index))

    @property
    def per_period(self) -> int:
        """Input channels of one period: its bands and its masks."""
        return len(self.bands) + len(self.mask_index[0])

    def split(self, guide: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, C, H, W]`` -> inputs ``[B, T, bands + masks, H, W]`` with unobserved values 0, and
        ``[B, T, H, W]`` whether anything was observed."""
        b, _, h, w = guide.shape
        t = len(self.periods)
        idx = torch.tensor(self.band_index, device=guide.device)
        values = guide[:, idx.flatten()].view(b, t, len(self.bands), h, w)
        midx = torch.tensor(self.band_mask, device=guide.device)
        ones = torch.ones_like(guide[:, :1])
        with_ones = torch.cat([guide, ones], 1)  # index -1 reads the ones
        avail = with_ones[:, midx.flatten()].view(b, t, len(self.bands), h, w) > 0.5
        values = torch.where(avail, values, torch.zeros_like(values))
        parts = [values]
        if self.mask_index[0]:
            m = torch.tensor(self.mask_index, device=guide.device)
            parts.append((guide[:, m.flatten()].view(b, t, -1, h, w) > 0.5).to(guide.dtype))
        return torch.cat(parts, 2), avail.any(2)


def _block(cin: int, cout: int) -> nn.Sequential:
    groups = 4 if cout % 4 == 0 else 1
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.GroupNorm(groups, cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.GroupNorm(groups, cout),
        nn.ReLU(inplace=True),
    )


def _period_encoding(t: int, d: int, device: torch.device) -> torch.Tensor:
    """Sinusoidal encoding ``[T, d]`` of the period index, at a month's spacing in days."""
    pos = torch.arange(t, device=device, dtype=torch.float32)[:, None] * 30.0
    freq = torch.exp(torch.arange(0, d, 2, device=device, dtype=torch.float32) * (-math.log(1000.0) / d))
    enc = torch.zeros(t, d, device=device)
    enc[:, 0::2] = torch.sin(pos * freq)
    enc[:, 1::2] = torch.cos(pos * freq)[:, : d // 2]
    return enc


class LTAE(nn.Module):
    """Per-pixel attention of learned master queries over the periods."""

    def __init__(self, channels: int, heads: int, key_dim: int) -> None:
        super().__init__()
        self.heads, self.key_dim = heads, key_dim
        self.keys = nn.Conv2d(channels, heads * key_dim, 1)
        self.queries = nn.Parameter(torch.randn(heads, key_dim) * key_dim**-0.5)

    def forward(self, x: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, h, w]`` features and ``[B, T, h, w]`` masks -> ``[B, heads, T, h, w]``."""
        b, t, c, h, w = x.shape
        x = x + _period_encoding(t, c, x.device).to(x.dtype)[None, :, :, None, None]
        k = self.keys(x.flatten(0, 1)).view(b, t, self.heads, self.key_dim, h, w)
        scores = torch.einsum("btnkhw,nk->bnthw", k, self.queries) / self.key_dim**0.5
        mask = observed[:, None].expand_as(scores)
        scores = scores.masked_fill(~mask, float("-inf"))
        nothing = ~mask.any(2, keepdim=True)
        scores = torch.where(nothing, torch.zeros_like(scores), scores)
        return scores.softmax(2)


def collapse(x: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """``[B, T, C, H, W]`` features weighted over time by ``[B, heads, T, h, w]`` attention
    (upsampled to ``H x W``), channel group ``g`` by head ``g`` -> ``[B, C, H, W]``."""
    b, t, c, h, w = x.shape
    heads = attention.shape[1]
    if attention.shape[-2:] != (h, w):
        attention = F.interpolate(attention.flatten(1, 2), size=(h, w), mode="bilinear", align_corners=False)
        attention = attention.view(b, heads, t, h, w)
    x = x.view(b, t, heads, c // heads, h, w)
    return torch.einsum("btgchw,bgthw->bgchw", x, attention).reshape(b, c, h, w)


class UTAEEncoder(nn.Module):
    """A guide time series -> ``widths[0]`` features a pixel at full resolution."""

    def __init__(
        self, layout: SeriesLayout, widths: tuple[int, ...] = WIDTHS, heads: int = 4, key_dim: int = 8
    ):
        super().__init__()
        for width in widths:
            if width % heads:
                raise ValueError(f"every width must be a multiple of heads ({heads}), got {list(widths)}")
        self.layout, self.widths = layout, tuple(widths)
        self.down = nn.ModuleList(
            nn.Conv2d(widths[k - 1], widths[k - 1], 4, stride=2, padding=1) for k in range(1, len(widths))
        )
        self.enc = nn.ModuleList(
            _block(layout.per_period if k == 0 else widths[k - 1], widths[k]) for k in range(len(widths))
        )
        self.attention = LTAE(widths[-1], heads, key_dim)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[k], widths[k - 1], 2, stride=2) for k in range(len(widths) - 1, 0, -1)
        )
        self.dec = nn.ModuleList(
            _block(2 * widths[k - 1], widths[k - 1]) for k in range(len(widths) - 1, 0, -1)
        )

    @property
    def stride(self) -> int:
        return 2 ** (len(self.widths) - 1)

    def forward(self, guide: torch.Tensor) -> torch.Tensor:
        padded, (h, w) = pad_to_multiple(guide, self.stride)
        x, observed = self.layout.split(padded)
        b, t = x.shape[:2]
        y = x.flatten(0, 1)
        levels = []
        for k, block in enumerate(self.enc):
            if k:
                y = self.down[k - 1](y)
            y = block(y)
            levels.append(y.view(b, t, *y.shape[1:]))
        low = F.adaptive_max_pool2d(observed.float(), levels[-1].shape[-2:]) > 0
        attention = self.attention(levels[-1], low)
        out = collapse(levels[-1], attention)
        for up, dec, skip in zip(self.up, self.dec, reversed(levels[:-1]), strict=True):
            out = dec(torch.cat([up(out), collapse(skip, attention)], 1))
        return out[..., :h, :w]


class UTAENet(nn.Module):
    def __init__(self, layout: SeriesLayout, widths: tuple[int, ...], heads: int, key_dim: int) -> None:
        super().__init__()
        self.series = UTAEEncoder(layout, widths, heads, key_dim)
        self.head = nn.Conv2d(widths[0], 1, 3, padding=1)

    def forward(self, guide: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.series(guide))
        return out


class UTAE(TorchMethod):
    """U-TAE regression of the target from the guide time series alone; never sees the source."""

    def __init__(
        self, task: TaskInfo, widths: tuple[int, ...] | list[int] = WIDTHS, heads: int = 4, key_dim: int = 8
    ) -> None:
        super().__init__(task)
        self.widths, self.heads, self.key_dim = tuple(widths), heads, key_dim
        self.layout = SeriesLayout.from_channels(task.guide_channels)
        self.net = UTAENet(self.layout, self.widths, heads, key_dim)

    def forward(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return self.denormalize(self.net(guide))

    @torch.no_grad()
    def predict(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return super().predict(guide, source).clamp_min(0)

    def config(self) -> dict[str, Any]:
        layout = self.layout
        return {
            "widths": list(self.widths),
            "heads": self.heads,
            "key_dim": self.key_dim,
            "periods": len(layout.periods),
        }

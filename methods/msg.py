"""MSG-Net and MSG without guide.

Hui, Loy and Tang, "Depth Map Super-Resolution by Deep Multi-Scale Guidance", ECCV 2016; the
guide-free variant is GSR4B's MSG^ng (Karaman et al., ISPRS 2025).

The network predicts the high-frequency residual on top of the bicubic-upsampled low-pass
source. Its inputs are high-passed: the source minus its 3 x 3 box blur, each guide channel minus
its box blur at the scale of a source cell. The original doubles the resolution at each level;
x10 uses two levels, x5 then x2 (25 -> 125 -> 250), with guide features at 125 and 250.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gsr_bench.api import TaskInfo, TorchMethod, upsample

from ._common import box_blur


def _conv(cin: int, cout: int, k: int = 5) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.PReLU())


def _up(cin: int, cout: int, factor: int) -> nn.Sequential:
    """Transposed 5 x 5 convolution that multiplies the size by ``factor`` exactly."""
    if factor == 5:
        layer = nn.ConvTranspose2d(cin, cout, 5, stride=5)
    elif factor == 2:
        layer = nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1)
    else:
        raise ValueError(f"no transposed convolution for a factor of {factor}")
    return nn.Sequential(layer, nn.PReLU())


def factors(scale: int) -> list[int]:
    """Upsampling factors per level, coarse to fine: 10 -> [5, 2], 8 -> [2, 2, 2]."""
    out, rest = [], scale
    for f in (5, 2):
        while rest % f == 0:
            out.append(f)
            rest //= f
    if rest != 1:
        raise ValueError(f"scale {scale} is not a product of 2s and 5s")
    return sorted(out, reverse=True)


class MSGNet(nn.Module):
    def __init__(self, guide_channels: int, scale: int, width: int = 32, use_guide: bool = True) -> None:
        super().__init__()
        self.ups = factors(scale)
        self.use_guide = use_guide
        g = width if use_guide else 0
        if use_guide:
            self.guide_in = nn.Sequential(_conv(guide_channels, 49, 7), _conv(49, width))
            # one conv per coarser level, then max-pooled down to that level
            self.guide_down = nn.ModuleList(_conv(width, width) for _ in self.ups[1:])
        self.source_in = _conv(1, 64)
        self.source_up = _up(64, width, self.ups[0])
        self.levels = nn.ModuleList(
            nn.Sequential(_conv(width + g, width), _conv(width, width), _up(width, width, f))
            for f in self.ups[1:]
        )
        self.head = nn.Sequential(
            _conv(width + g, width),
            _conv(width, width),
            _conv(width, width),
            nn.Conv2d(width, 1, 5, padding=2),
        )

    def forward(self, guide_hp: torch.Tensor, source_hp: torch.Tensor) -> torch.Tensor:
        feats: list[torch.Tensor] = []
        if self.use_guide:
            f = self.guide_in(guide_hp)
            feats.append(f)
            for conv, factor in zip(self.guide_down, reversed(self.ups[1:]), strict=True):
                f = nn.functional.max_pool2d(conv(f), factor)
                feats.append(f)
        x = self.source_up(self.source_in(source_hp))
        for k, level in enumerate(self.levels):
            if self.use_guide:
                x = torch.cat([feats[-1 - k], x], 1)
            x = level(x)
        if self.use_guide:
            x = torch.cat([feats[0], x], 1)
        return self.head(x)


def msg_forward(
    net: nn.Module, guide: torch.Tensor, source_z: torch.Tensor, scale: int, use_guide: bool = True
) -> torch.Tensor:
    """MSG-Net's prediction, normalized: the bicubic low-pass source plus the residual the network
    infers from the high-passed source and guide (a guide any network may have computed).
    ``net`` may be wrapped for data-parallel training: only its ``forward`` is called."""
    low = box_blur(source_z, 3)
    base = upsample(low, scale, "bicubic")
    guide_hp = guide - box_blur(guide, scale + 1) if use_guide else guide
    out: torch.Tensor = base + net(guide_hp, source_z - low)
    return out


class MSG(TorchMethod):
    """MSG-Net adapted to x10; ``use_guide=False`` gives MSG without guide."""

    def __init__(self, task: TaskInfo, width: int = 32, use_guide: bool = True) -> None:
        super().__init__(task)
        self.width, self.use_guide = width, use_guide
        self.net = MSGNet(task.in_channels, task.scale, width, use_guide)

    def forward(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        s = self.normalize(source)
        return self.denormalize(msg_forward(self.net, guide, s, self.task.scale, self.use_guide))

    @torch.no_grad()
    def predict(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return super().predict(guide, source).clamp_min(0)

    def config(self) -> dict[str, Any]:
        return {"width": self.width, "use_guide": self.use_guide}

"""FDSR: He, Liu, Chen, Xu, Ren, Zuo, Zhou, Wang, "Towards Fast and Accurate Real-World Depth
Super-Resolution: Benchmark Dataset and Baseline", CVPR 2021.

Scale-agnostic: both inputs are at the target resolution (the source bicubic-upsampled) and are
folded by space-to-depth (4). A guide path of octave convolutions hands its high-frequency
features to a depth path of multi-scale residual blocks at three depths; a sub-pixel
reconstruction adds a residual to the bicubic input. Sizes are padded to a multiple of 8 inside.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gsr_bench.api import TaskInfo, TorchMethod, upsample

from ._common import pad_to_multiple


class MSRB(nn.Module):
    """Multi-scale residual block: 3 x 3 convolutions of dilation 1 and 2, summed, 1 x 1, residual."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.d1 = nn.Conv2d(n, n, 3, padding=1)
        self.d2 = nn.Conv2d(n, n, 3, padding=2, dilation=2)
        self.fuse = nn.Conv2d(n, n, 1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fuse(self.act(self.d1(x)) + self.act(self.d2(x)))


class OctaveConv(nn.Module):
    """Octave convolution (Chen et al., ICCV 2019) with batch norm and LeakyReLU: channels split
    into a full-resolution high-frequency part (``high_in``, ``high_out``) and a half-resolution
    low-frequency part (the rest). ``low_out=False`` keeps only the high part, for the last one."""

    def __init__(self, cin: int, high_in: int, high_out: int, low_out: int) -> None:
        super().__init__()
        li = cin - high_in
        self.h2h = nn.Conv2d(high_in, high_out, 3, padding=1, bias=False)
        self.l2h = nn.Conv2d(li, high_out, 3, padding=1, bias=False) if li else None
        self.h2l = nn.Conv2d(high_in, low_out, 3, padding=1, bias=False) if low_out else None
        self.l2l = nn.Conv2d(li, low_out, 3, padding=1, bias=False) if li and low_out else None
        self.bn_h = nn.BatchNorm2d(high_out)
        self.bn_l = nn.BatchNorm2d(low_out) if low_out else None
        self.act = nn.LeakyReLU(0.2)

    def forward(self, xh: torch.Tensor, xl: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.h2h(xh)
        if xl is not None and self.l2h is not None:
            h = h + F.interpolate(self.l2h(xl), scale_factor=2, mode="nearest")
        low = None
        if self.h2l is not None and self.bn_l is not None:
            low = self.h2l(F.avg_pool2d(xh, 2))
            if xl is not None and self.l2l is not None:
                low = low + self.l2l(xl)
            low = self.act(self.bn_l(low))
        return self.act(self.bn_h(h)), low


class FDSRNet(nn.Module):
    def __init__(self, guide_channels: int, width: int = 32, high: int = 24) -> None:
        super().__init__()
        low = width - high
        self.guide_in = nn.Conv2d(16 * guide_channels, width, 3, padding=1)
        self.octaves = nn.ModuleList(
            [
                OctaveConv(width, width, high, low),
                OctaveConv(width, high, high, low),
                OctaveConv(width, high, high, 0),
            ]
        )
        self.depth_in = nn.Sequential(nn.Conv2d(16, width, 3, padding=1), nn.LeakyReLU(0.2))
        sizes = [width + k * high for k in range(4)]  # 32, 56, 80, 104
        self.blocks = nn.ModuleList(MSRB(n) for n in sizes)
        self.recon = nn.Sequential(
            nn.Conv2d(sizes[-1], 128, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.PixelShuffle(2),
            nn.Conv2d(32, 128, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.PixelShuffle(2),
            nn.Conv2d(32, 1, 3, padding=1),
        )

    def forward(self, guide: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        g = self.guide_in(F.pixel_unshuffle(guide, 4))
        x = self.blocks[0](self.depth_in(F.pixel_unshuffle(depth, 4)))
        low = None
        for octave, block in zip(self.octaves, self.blocks[1:], strict=True):
            g, low = octave(g, low)
            x = block(torch.cat([x, g], 1))
        return depth + self.recon(x)


class FDSR(TorchMethod):
    def __init__(self, task: TaskInfo, width: int = 32, high: int = 24) -> None:
        super().__init__(task)
        self.width, self.high = width, high
        self.net = FDSRNet(task.in_channels, width, high)

    def forward(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        depth = upsample(self.normalize(source), self.task.scale, "bicubic")
        (g, size), (d, _) = pad_to_multiple(guide, 8), pad_to_multiple(depth, 8)
        out = self.net(g, d)[..., : size[0], : size[1]]
        return self.denormalize(out)

    @torch.no_grad()
    def predict(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return super().predict(guide, source).clamp_min(0)

    def config(self) -> dict[str, Any]:
        return {"width": self.width, "high": self.high}

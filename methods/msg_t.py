"""MSG-T: MSG-Net guided by a temporal encoder of the monthly images, gsr-bench's own row.

MSG-Net is Hui, Loy and Tang, "Depth Map Super-Resolution by Deep Multi-Scale Guidance", ECCV
2016; the temporal encoder is U-TAE's (Garnot and Landrieu, ICCV 2021; :mod:`.utae`). No
published benchmark has guided super-resolution from a satellite image time series.

Spec: the U-TAE encoder (:class:`~gsr_bench_methods.utae.UTAEEncoder`: masks applied to the
inputs and to the attention, so missing months count as unobserved) turns the 12 monthly images
into ``widths[0]`` features a pixel at 10 m; those features are MSG-Net's guide, high-passed as
MSG high-passes its bands, and the whole is trained end to end on the residual over the bicubic
low-pass source (L1). Size, 12 months: 0.50 M parameters and 823 kFLOP a pixel with the default
widths (16, 32, 64) and MSG's width 32; 0.16 M and 259 kFLOP with quick's widths (8, 16, 32) and
MSG width 16 (MSG alone at 32: 0.36 M, 456 kFLOP).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gsr_bench.api import TaskInfo, TorchMethod

from .msg import MSGNet, msg_forward
from .utae import WIDTHS, SeriesLayout, UTAEEncoder


class MSGTNet(nn.Module):
    def __init__(
        self, layout: SeriesLayout, widths: tuple[int, ...], heads: int, key_dim: int, width: int, scale: int
    ) -> None:
        super().__init__()
        self.scale = scale
        self.series = UTAEEncoder(layout, widths, heads, key_dim)
        self.msg = MSGNet(widths[0], scale, width, use_guide=True)

    def forward(self, guide: torch.Tensor, source_z: torch.Tensor) -> torch.Tensor:
        return msg_forward(self.msg, self.series(guide), source_z, self.scale)


class MSGT(TorchMethod):
    """MSG-Net whose guide is the temporal encoder's features of the whole series."""

    def __init__(
        self,
        task: TaskInfo,
        widths: tuple[int, ...] | list[int] = WIDTHS,
        heads: int = 4,
        key_dim: int = 8,
        width: int = 32,
    ) -> None:
        super().__init__(task)
        self.widths, self.heads, self.key_dim, self.width = tuple(widths), heads, key_dim, width
        layout = SeriesLayout.from_channels(task.guide_channels)
        self.net = MSGTNet(layout, self.widths, heads, key_dim, width, task.scale)

    def forward(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return self.denormalize(self.net(guide, self.normalize(source)))

    @torch.no_grad()
    def predict(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return super().predict(guide, source).clamp_min(0)

    def config(self) -> dict[str, Any]:
        return {
            "widths": list(self.widths),
            "heads": self.heads,
            "key_dim": self.key_dim,
            "width": self.width,
        }

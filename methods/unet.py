"""U-Net: direct regression of biomass from the guide images alone.

Ronneberger, Fischer and Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
MICCAI 2015; used in GSR4B (Karaman et al., ISPRS 2025) as the regression baseline that never sees
the coarse source. The encoder is any timm model with ``features_only=True`` (ResNet-34 by
default, no pretrained weights: there are none for 14 Sentinel bands); the decoder is light, one
upsampling step per encoder level with a skip connection and two 3 x 3 convolutions.
"""

from __future__ import annotations

from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from gsr_bench.api import SOURCE_MASK, TaskInfo, TorchMethod

from ._common import pad_to_multiple

DECODER = (256, 128, 64, 32, 16)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNetNet(nn.Module):
    def __init__(
        self, in_channels: int, encoder: str, decoder: tuple[int, ...] = DECODER, out_channels: int = 1
    ) -> None:
        super().__init__()
        self.encoder = timm.create_model(encoder, features_only=True, in_chans=in_channels, pretrained=False)
        info: Any = self.encoder.feature_info
        channels: list[int] = info.channels()
        reductions: list[int] = info.reduction()
        self.stride = int(reductions[-1])
        # deepest first; each step doubles the resolution and meets the skip at that resolution
        skips = [*channels[-2::-1]]
        steps = len(channels) - 1 + (1 if reductions[0] > 1 else 0)
        if len(decoder) < steps:
            raise ValueError(f"decoder needs {steps} widths for encoder {encoder!r}, got {len(decoder)}")
        cin = channels[-1]
        blocks = []
        for k in range(steps):
            skip = skips[k] if k < len(skips) else 0
            blocks.append(_block(cin + skip, decoder[k]))
            cin = decoder[k]
        self.blocks = nn.ModuleList(blocks)
        self.skip_channels = skips
        self.head = nn.Conv2d(cin, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        y = feats[-1]
        skips = feats[-2::-1]
        for k, block in enumerate(self.blocks):
            y = F.interpolate(y, scale_factor=2.0, mode="nearest")
            if k < len(skips):
                y = torch.cat([y, skips[k]], 1)
            y = block(y)
        out: torch.Tensor = self.head(y)
        return out


class UNet(TorchMethod):
    """U-Net on the guide alone; the source and its mask are ignored (GSR4B's direct-regression
    family)."""

    def __init__(self, task: TaskInfo, encoder: str = "resnet34") -> None:
        super().__init__(task)
        self.encoder = encoder
        self.images = [i for i, c in enumerate(task.guide_channels) if c != SOURCE_MASK]
        net = UNetNet(len(self.images), encoder)
        self.stride = net.stride
        self.net = net

    def forward(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        padded, (h, w) = pad_to_multiple(guide[:, self.images], self.stride)
        return self.denormalize(self.net(padded)[..., :h, :w])

    @torch.no_grad()
    def predict(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return super().predict(guide, source).clamp_min(0)

    def config(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "decoder": list(DECODER)}

"""Pieces of the methods that learn a 4-neighbour graph over the fine pixels (DADA, LGR)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gsr_bench.api import upsample

from ._common import pad_to_multiple
from .unet import UNetNet


class GuideFeatures(nn.Module):
    """Per-pixel features of the guide and the bicubic source: a U-Net with a timm encoder.

    Both papers feed the upsampled source beside the guide, so that the features can tell
    an edge of the biomass from an edge of the image alone.
    """

    def __init__(self, guide_channels: int, encoder: str, features: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.unet = UNetNet(guide_channels + 1, encoder, out_channels=features)

    def forward(self, guide: torch.Tensor, source_z: torch.Tensor) -> torch.Tensor:
        x = torch.cat([guide, upsample(source_z, self.scale, "bicubic")], 1)
        padded, (h, w) = pad_to_multiple(x, self.unet.stride)
        out: torch.Tensor = self.unet(padded)[..., :h, :w]
        return out


def neighbour_differences(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Differences to the pixel below ``[.., H-1, W]`` and to the right ``[.., H, W-1]``."""
    return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]


def graph_flow(x: torch.Tensor, wv: torch.Tensor, wh: torch.Tensor) -> torch.Tensor:
    """``sum_j w_ij (x_j - x_i)`` over the 4 neighbours ``j`` of each pixel ``i``: minus the
    weighted graph Laplacian applied to ``x`` (``wv`` vertical edges, ``wh`` horizontal)."""
    dv, dh = neighbour_differences(x)
    fv, fh = wv * dv, wh * dh
    return F.pad(fv, (0, 0, 0, 1)) - F.pad(fv, (0, 0, 1, 0)) + F.pad(fh, (0, 1)) - F.pad(fh, (1, 0))

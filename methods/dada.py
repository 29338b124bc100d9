"""DADA: Metzger, Daudt and Schindler, "Guided Depth Super-Resolution by Deep Anisotropic
Diffusion", CVPR 2023.

Spec (x10 on 250 x 250 tiles, source 25 x 25):
- A U-Net with a timm encoder reads the z-scored guide and the bicubic-upsampled z-scored source
  and gives ``features`` channels per pixel (paper: ResNet-50 encoder, 64 features).
- Diffusivity of each 4-neighbour edge: ``c = 1 / (1 + (d / K)^2)`` (Perona-Malik), ``d`` the
  mean absolute feature difference across the edge and ``K = exp(log_k)`` learned (from 1: the
  paper's 0.03 suits its features' scale, not these).
- The bicubic source, adjusted, is diffused by explicit steps ``x += 0.24 * sum_j c_ij (x_j - x_i)``
  (stable: 4 neighbours, ``c <= 1``); each step is followed by the adjustment that makes every
  10 x 10 block mean equal the source exactly.
- The paper's adjustment is multiplicative and assumes positive depth. Biomass is 0 on a fifth of
  the pixels, so a block whose mean is 0 is adjusted additively instead (it takes the source
  value); a block whose source is 0 becomes 0. Diffusion steps are convex combinations, so the
  output stays non-negative without clamping, and its block means equal the source.
- Training runs ``pre_iterations`` steps without gradients, then backpropagates through the last
  ``grad_iterations`` (paper: 8,000 + 1,024, declared as ``paper`` overrides; the defaults are
  the CPU ``quick`` budget). Inference runs the same steps. L1 loss on the output.

Size: 14.4 M parameters (ResNet-18 U-Net, 16 features; the paper's ResNet-50 with 64 is larger),
197 kFLOP a pixel in the U-Net (torch's count, ``gsr-bench bench``), plus about 20 FLOP a pixel a
diffusion step: 8 k at quick's 416 steps, 180 k at the paper's 9,024.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from gsr_bench.api import TaskInfo, TorchMethod, project_to_source, upsample

from ._features import GuideFeatures, graph_flow, neighbour_differences

STEP = 0.24  # explicit diffusion step: below 1/4 for 4 neighbours
K_INIT = 1.0


class DADANet(nn.Module):
    """Guide and z-scored source -> diffusivities of the vertical and horizontal edges."""

    def __init__(self, guide_channels: int, encoder: str, features: int, scale: int) -> None:
        super().__init__()
        self.features = GuideFeatures(guide_channels, encoder, features, scale)
        # The paper starts K at 0.03 for its features; these start about 0.3 apart, where 0.03
        # gives c of 0.01: nothing diffuses and the diffusivities get almost no gradient.
        self.log_k = nn.Parameter(torch.tensor(math.log(K_INIT)))

    def forward(self, guide: torch.Tensor, source_z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.features(guide, source_z)
        k = self.log_k.exp()
        dv, dh = neighbour_differences(feats)
        cv = 1 / (1 + (dv.abs().mean(1, keepdim=True) / k) ** 2)
        ch = 1 / (1 + (dh.abs().mean(1, keepdim=True) / k) ** 2)
        return cv, ch


def diffuse(
    x: torch.Tensor, cv: torch.Tensor, ch: torch.Tensor, source: torch.Tensor, scale: int, steps: int
) -> torch.Tensor:
    """``steps`` diffusion steps, each followed by the block-mean adjustment to ``source``."""
    for _ in range(steps):
        x = project_to_source(x + STEP * graph_flow(x, cv, ch), source, scale)
    return x


class DADA(TorchMethod):
    """Deep anisotropic diffusion of the source with learned diffusivities."""

    def __init__(
        self,
        task: TaskInfo,
        encoder: str = "resnet18",
        features: int = 16,
        pre_iterations: int = 224,
        grad_iterations: int = 32,
    ) -> None:
        super().__init__(task)
        if pre_iterations < 0 or grad_iterations < 1:
            raise ValueError("dada needs pre_iterations >= 0 and grad_iterations >= 1")
        self.encoder, self.n_features = encoder, features
        self.pre_iterations, self.grad_iterations = pre_iterations, grad_iterations
        self.net = DADANet(task.in_channels, encoder, features, task.scale)

    def forward(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        s = self.task.scale
        cv, ch = self.net(guide, self.normalize(source))  # the only call: DDP wraps self.net
        source = source.float()
        x = project_to_source(upsample(source, s, "bicubic"), source, s)
        with torch.no_grad():
            x = diffuse(x, cv.detach().float(), ch.detach().float(), source, s, self.pre_iterations)
        return diffuse(x, cv.float(), ch.float(), source, s, self.grad_iterations)

    def config(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder,
            "features": self.n_features,
            "pre_iterations": self.pre_iterations,
            "grad_iterations": self.grad_iterations,
            "k": float(self.net.log_k.detach().exp()),  # type: ignore[operator]
        }

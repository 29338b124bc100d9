"""Single-image interpolation baselines: nearest, bilinear, bicubic.

The SR rows of GSR4B (Karaman et al., "GSR4B: Biomass map super-resolution with Sentinel-1/2
guidance", ISPRS 2025): upsample the coarse source without looking at the guide. Bicubic follows
Keys, "Cubic convolution interpolation for digital image processing", IEEE TASSP 1981 (a = -0.75,
as in torch).
"""

from __future__ import annotations

from typing import Any

import torch

from gsr_bench.api import Method, TaskInfo, upsample

MODES = ("nearest", "bilinear", "bicubic")


class Interpolation(Method):
    def __init__(self, task: TaskInfo, mode: str = "bicubic") -> None:
        super().__init__(task)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode

    def predict(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return upsample(source.to(self.device), self.task.scale, self.mode)

    def config(self) -> dict[str, Any]:
        return {"mode": self.mode}

"""Bicubic upsampling of the source, then a 3 x 3 mean filter: a template, not a contender."""

import torch
import torch.nn.functional as F

from gsr_bench.api import Method, TaskInfo, upsample


class SmoothBicubic(Method):
    def __init__(self, task: TaskInfo, size: int = 3) -> None:
        super().__init__(task)
        self.size = size

    def predict(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        up = upsample(source.to(self.device), self.task.scale, "bicubic")
        pad = self.size // 2
        return F.avg_pool2d(F.pad(up, (pad,) * 4, mode="replicate"), self.size, stride=1)

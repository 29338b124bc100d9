"""A small learned method: a residual CNN on the bicubic source and the guide (a template).

It shows the three things a learned method writes: the network (``self.net``, built in
``__init__``), ``forward`` (the prediction with gradients, calling ``self.net`` itself so that
data-parallel training can wrap it), and, where the loss is not the protocol's plain one,
``training_loss``. The core trains it under the protocol's budget: optimizer, schedule, patches,
augmentation, checkpoints and resumption are not the method's business.
"""

import torch
from torch import nn

from gsr_bench.api import TaskInfo, TorchMethod, block_mean, masked_loss, masked_mean, upsample


class TinyResidual(TorchMethod):
    """Bicubic upsampling plus a correction from three convolutions over the guide and it."""

    def __init__(self, task: TaskInfo, width: int = 16, consistency: float = 0.1) -> None:
        super().__init__(task)
        self.width, self.consistency = width, consistency
        self.net = nn.Sequential(
            nn.Conv2d(task.in_channels + 1, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 1, 3, padding=1),
        )

    def forward(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        up = self.normalize(upsample(source, self.task.scale, "bicubic"))
        return self.denormalize(up + self.net(torch.cat([guide, up], 1)))

    def training_loss(self, batch: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
        """The protocol's loss on valid pixels, plus the squared drift of each block's mean from
        its source value (in target standard deviations) over the valid source blocks.

        Both means go through the API's masked helpers, so that several data-parallel ranks
        holding different numbers of valid pixels train as one process does.
        """
        pred = self.forward(batch["guide"], batch["source"]).float()
        fit = masked_loss(pred, batch["target"], batch["valid"], kind)
        drift = (block_mean(pred, self.task.scale) - batch["source"]) / self.task.target_std
        return fit + self.consistency * masked_mean(drift**2, batch["source_valid"])

    @torch.no_grad()
    def predict(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return super().predict(guide, source).clamp_min(0)

    def config(self) -> dict[str, float]:
        return {"width": self.width, "consistency": self.consistency}

"""Stride-free ResNeXt regressor with a predicted variance.

Becker, Russwurm, Wegner and Schindler, "Country-wide retrieval of forest structure from optical
and SAR satellite imagery with deep ensembles", ISPRS J. Photogramm. Remote Sens. 2023; the
regression baseline "ResNeXt" of GSR4B (Karaman et al., ISPRS 2025).

S2 channels enter through a 1 x 1 convolution and S1 channels through a 5 x 5 one (radar speckle
wants a neighbourhood), 32 features each. Four stages of ResNeXt bottleneck blocks ([2, 3, 5, 3],
cardinality 32) keep the full resolution: there is no striding anywhere, which is why the model is
slow. A 1 x 1 pixel shortcut carries the entry features past the stages. Two 1 x 1 heads give the
mean and the log-variance, trained with the Gaussian negative log-likelihood.

``width`` scales every stage (1.0 is the paper's, about 24 M parameters); CPU protocols set a
smaller one, and the run records it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gsr_bench.api import SOURCE_MASK, TaskInfo, TorchMethod, masked_mean, sensor_of

STAGES = (2, 3, 5, 3)
BOTTLENECK = (128, 256, 512, 1024)  # ResNeXt-50 32x4d widths; outputs are twice these
ENTRY = 32
LOG_VAR_MIN, LOG_VAR_MAX = -6.0, 3.0


def _bn_relu(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class Bottleneck(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int, cardinality: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _bn_relu(nn.Conv2d(cin, mid, 1, bias=False), mid),
            _bn_relu(nn.Conv2d(mid, mid, 3, padding=1, groups=cardinality, bias=False), mid),
            nn.Conv2d(mid, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut: nn.Module = (
            nn.Identity()
            if cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.relu(self.body(x) + self.shortcut(x))
        return out


def stage_widths(width: float, cardinality: int = 32) -> list[tuple[int, int]]:
    """(bottleneck, output) channels per stage; the bottleneck stays a multiple of the cardinality."""
    out = []
    for base in BOTTLENECK:
        mid = max(cardinality, round(base * width / cardinality) * cardinality)
        out.append((mid, 2 * mid))
    return out


class ResNeXtNet(nn.Module):
    def __init__(self, s2_channels: int, s1_channels: int, width: float = 1.0, cardinality: int = 32) -> None:
        super().__init__()
        self.s2_in = _bn_relu(nn.Conv2d(s2_channels, ENTRY, 1, bias=False), ENTRY) if s2_channels else None
        self.s1_in = (
            _bn_relu(nn.Conv2d(s1_channels, ENTRY, 5, padding=2, bias=False), ENTRY) if s1_channels else None
        )
        entry = ENTRY * (bool(s2_channels) + bool(s1_channels))
        blocks: list[nn.Module] = []
        cin = entry
        for n, (mid, cout) in zip(STAGES, stage_widths(width, cardinality), strict=True):
            for _ in range(n):
                blocks.append(Bottleneck(cin, mid, cout, cardinality))
                cin = cout
        self.stages = nn.Sequential(*blocks)
        self.pixel_shortcut = nn.Conv2d(entry, cin, 1)
        self.mean = nn.Conv2d(cin, 1, 1)
        self.log_var = nn.Conv2d(cin, 1, 1)

    def forward(self, s2: torch.Tensor, s1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        parts = []
        if self.s2_in is not None:
            parts.append(self.s2_in(s2))
        if self.s1_in is not None:
            parts.append(self.s1_in(s1))
        x = torch.cat(parts, 1)
        y = torch.relu(self.stages(x) + self.pixel_shortcut(x))
        return self.mean(y), self.log_var(y)


class ResNeXt(TorchMethod):
    """Stride-free ResNeXt on the guide alone, mean and variance heads (Gaussian NLL)."""

    def __init__(self, task: TaskInfo, width: float = 1.0, cardinality: int = 32, beta: float = 0.0) -> None:
        super().__init__(task)
        # the guide alone: the source mask says where the source has values, which a direct
        # regression never reads; masks and unknown bands go with the optical entry (per pixel)
        images = [(i, sensor_of(c)) for i, c in enumerate(task.guide_channels) if c != SOURCE_MASK]
        self.s1_idx = [i for i, s in images if s == "S1"]
        self.s2_idx = [i for i, s in images if s != "S1"]
        self.width, self.cardinality, self.beta = width, cardinality, beta
        self.net = ResNeXtNet(len(self.s2_idx), len(self.s1_idx), width, cardinality)

    def _heads(self, guide: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(guide[:, self.s2_idx], guide[:, self.s1_idx])

    def forward(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        mean, _ = self._heads(guide)
        return self.denormalize(mean)

    def training_loss(self, batch: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
        """Gaussian negative log-likelihood in normalized units, over valid pixels.

        ``beta`` > 0 gives the beta-NLL of Seitzer et al. (ICLR 2022), which keeps the mean
        learning where the variance is high. The log-variance (in target variance units) is
        clamped to [-6, 3]: below, one confident pixel dominates the loss; above, the mean's
        gradient fades (it is weighted by the inverse variance) and the mean drifts away, as a
        full-width run at lr 1e-3 showed.
        """
        mean, log_var = self._heads(batch["guide"])
        mean, log_var = mean.float(), log_var.float().clamp(LOG_VAR_MIN, LOG_VAR_MAX)
        target = self.normalize(batch["target"])
        nll = 0.5 * (log_var + (mean - target) ** 2 * torch.exp(-log_var))
        if self.beta:  # beta-NLL: each pixel weighted by its variance**beta, held constant
            nll = nll * torch.exp(self.beta * log_var).detach()
        return masked_mean(nll, batch["valid"])

    @torch.no_grad()
    def predict(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return super().predict(guide, source).clamp_min(0)

    @torch.no_grad()
    def predict_std(self, guide: torch.Tensor) -> torch.Tensor:
        """The predicted standard deviation in Mg/ha (the aleatoric uncertainty)."""
        self.net.eval()
        _, log_var = self._heads(guide.to(self.device))
        return torch.exp(0.5 * log_var.float().clamp(LOG_VAR_MIN, LOG_VAR_MAX)) * self.task.target_std

    def config(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "cardinality": self.cardinality,
            "stages": list(STAGES),
            "stage_widths": [w for _, w in stage_widths(self.width, self.cardinality)],
            "loss": "gaussian-nll" if not self.beta else f"beta-nll ({self.beta})",
        }

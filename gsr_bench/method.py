"""The method interface.

A method plugin's factory takes the :class:`TaskInfo` and options and returns a :class:`Method`.
Training-free methods implement ``predict``; learned methods subclass :class:`TorchMethod`, build
``self.net`` and implement ``forward``, and the core's standard training loop trains them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gsr_bench.losses import masked_loss


@dataclass(frozen=True)
class TaskInfo:
    """What a method is told about the task when it is created.

    Attributes:
        guide_channels: one name per guide channel (``"B4"``, ``"B4@summer"``, ``"red"``); see
            ``gsr_bench.channels`` to find sensors and periods by name. The last is always
            ``avail_source`` (``channels.SOURCE_MASK``): 1 on the pixels whose source block has
            a value, 0 where it has none (no valid target pixel; its value is the nearest
            valid block's).
        scale: the dataset's ratio of source to target pixel size (10 for BioMassters).
        crop: side of the evaluated tiles, in target pixels (training patches may be smaller).
        target_mean: mean of the valid train targets, in the dataset's units.
        target_std: their standard deviation (``normalize``/``denormalize`` use both).
        data_range: the span PSNR and SSIM are computed over.
    """

    guide_channels: tuple[str, ...]
    scale: int
    crop: int
    target_mean: float
    target_std: float
    data_range: float

    @property
    def in_channels(self) -> int:
        return len(self.guide_channels)


class Method:
    """Base of all methods. ``spec`` and ``options`` are set by the registry on creation.

    A training-free method implements :meth:`predict` only. The factory registered in its
    :class:`~gsr_bench.registry.MethodSpec` is called as ``factory(task, **options)``.
    """

    spec: Any = None
    options: dict[str, Any]
    device: torch.device = torch.device("cpu")

    def __init__(self, task: TaskInfo) -> None:
        self.task = task
        self.options = {}
        self.fit_params: dict[str, Any] = {}  # how ``fit`` ran (the loader tier), logged as params

    def fit(self, train: Any, val: Any, ctx: Any) -> dict[str, float]:
        """Train on ``train``, select on ``val`` (tile sets, ``ctx`` the protocol's training
        context: ``gsr_bench.training.TrainContext``); returns numbers to log. Nothing to do by
        default. A :class:`TorchMethod` is trained by the core's standard loop instead, unless
        it overrides this."""
        return {}

    def predict(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` normalized guide and ``[B, 1, h, w]`` source (in the dataset's units)
        -> ``[B, 1, H, W]`` prediction in the same units."""
        raise NotImplementedError

    def to(self, device: torch.device) -> Method:
        self.device = device
        return self

    def num_parameters(self) -> int:
        return 0

    def config(self) -> dict[str, Any]:
        """Hyper-parameters chosen during ``fit`` (logged as params), e.g. a tuned sigma."""
        return {}


class TorchMethod(Method):
    """A learned method: ``self.net`` is trained by the core's standard loop.

    Subclasses build ``self.net`` in ``__init__`` and implement :meth:`forward`; the core trains
    it under the protocol's budget (optimizer, schedule, patches, augmentation, checkpoints) and
    :meth:`predict` calls it without gradients. :meth:`forward` calls ``self.net(...)`` itself,
    never its submodules or attributes: data-parallel training (``--ddp``) wraps ``self.net``.
    """

    net: nn.Module
    autocast: bool = False  # bf16 autocast on CUDA, set from the protocol's device options

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """A source or target in the dataset's units, z-scored with the train targets' statistics."""
        return (x - self.task.target_mean) / self.task.target_std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`normalize`."""
        return x * self.task.target_std + self.task.target_mean

    def forward(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """The prediction with gradients: ``guide`` ``[B, C, P, P]`` z-scored, ``source``
        ``[B, 1, P/s, P/s]`` in the dataset's units -> ``[B, 1, P, P]`` in the same units, where
        ``P`` is the training patch (or the crop at evaluation) and ``s`` the scale."""
        raise NotImplementedError

    def training_loss(self, batch: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
        """The loss of one training batch; the protocol's masked loss on ``forward`` by default.

        ``batch`` holds ``guide`` ``[B, C, P, P]``, ``source`` ``[B, 1, P/s, P/s]``, ``target``
        ``[B, 1, P, P]``, ``valid`` (bool, like the target) and ``source_valid`` (bool, like the
        source); take means over valid pixels with ``masked_mean`` or ``masked_loss`` from
        ``gsr_bench.api``, which stay right under data-parallel training.

        Override for a method that is trained on something else than its prediction (ResNeXt's
        Gaussian negative log-likelihood of a mean and a variance).
        """
        pred = self.forward(batch["guide"], batch["source"])
        return masked_loss(pred.float(), batch["target"], batch["valid"], kind)

    @torch.no_grad()
    def predict(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        self.net.eval()
        guide, source = guide.to(self.device), source.to(self.device)
        if self.autocast and self.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return self.forward(guide, source).float()
        return self.forward(guide, source)

    def to(self, device: torch.device) -> TorchMethod:
        self.device = device
        self.net.to(device)
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

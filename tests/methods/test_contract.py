"""What every learned built-in method owes the training loop: ``forward`` goes through
``self.net(...)`` alone, so that data-parallel training can wrap it (``--ddp``)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from gsr_bench.method import TaskInfo, TorchMethod
from gsr_bench.plugins import PluginManager
from gsr_bench_datasets.biomassters.composite import COMPOSITES

SMALL: dict[str, dict[str, Any]] = {
    "msg": {},
    "msg-ng": {},
    "fdsr": {},
    "unet": {"encoder": "resnet18"},
    "resnext": {"width": 1 / 32, "cardinality": 4},
    "dada": {"encoder": "resnet10t", "features": 8, "pre_iterations": 4, "grad_iterations": 2},
    "lgr": {"encoder": "resnet10t", "features": 8},
    "utae": {"widths": (8, 16)},
    "msg-t": {"widths": (8, 16)},
}


class ForwardOnly(nn.Module):
    """What DistributedDataParallel offers: the wrapped module's forward, nothing else of it."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.wrapped = inner

    def forward(self, *args: Any) -> Any:
        return self.wrapped(*args)


def test_every_learned_builtin_is_covered() -> None:
    pm = PluginManager()
    learned = set()
    for spec in pm.methods:
        if spec.distribution == "gsr-bench":
            channels = COMPOSITES["monthly" if spec.temporal else "leafon-median"][1]
            task = TaskInfo(channels, 10, 250, 60.0, 70.0, 500.0)
            if isinstance(spec.create(task, **SMALL.get(spec.name, {})), TorchMethod):
                learned.add(spec.name)
    assert learned == set(SMALL)


@pytest.mark.parametrize("name", list(SMALL))
def test_forward_calls_only_the_net(name: str) -> None:
    spec = PluginManager().methods.get(name)
    channels = COMPOSITES["monthly" if spec.temporal else "leafon-median"][1]
    torch.manual_seed(0)
    method: TorchMethod = spec.create(TaskInfo(channels, 10, 250, 60.0, 70.0, 500.0), **SMALL[name])
    method.net = ForwardOnly(method.net)
    batch = {
        "guide": torch.randn(2, len(channels), 60, 60),
        "source": torch.rand(2, 1, 6, 6) * 300,
        "target": torch.rand(2, 1, 60, 60) * 300,
        "valid": torch.ones(2, 1, 60, 60, dtype=torch.bool),
    }
    method.training_loss(batch, "l1").backward()

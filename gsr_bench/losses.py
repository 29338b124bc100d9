"""Losses averaged over valid pixels, the same under data-parallel training as in one process.

A method's own ``training_loss`` takes its mean with :func:`masked_mean` to keep that property.
"""

from __future__ import annotations

import torch

from gsr_bench import distributed
from gsr_bench.errors import TrainingError
from gsr_bench.outputs import MethodOutputError, describe_mismatch


def masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the ``valid`` pixels, by selection rather than boolean indexing:
    indexing by a mask needs the count of its pixels on the host, a device sync every step.

    Under DDP the mean is over the valid pixels of the whole batch, every rank's: each rank
    divides its sum by the global count (times the world size, as DDP averages the gradients),
    so N ranks holding different numbers of valid pixels train as one process does. A method's
    own ``training_loss`` takes its mean with this function to keep that property.
    """
    total = torch.where(valid, values, torch.zeros((), dtype=values.dtype, device=values.device)).sum()
    count = valid.sum().to(values.dtype).detach()
    _, size = distributed.world()
    if size > 1:
        torch.distributed.all_reduce(count)
        return total * size / count.clamp_min(1)
    return total / count.clamp_min(1)


def masked_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, kind: str) -> torch.Tensor:
    """The protocol's loss (``l1`` or ``l2``) averaged over valid pixels with :func:`masked_mean`."""
    mismatch = describe_mismatch(pred, target)
    if mismatch:  # before broadcasting [B, H, W] against [B, 1, H, W] trains on nonsense
        raise MethodOutputError(f"forward {mismatch}")
    if kind == "l1":
        per_pixel = (pred - target).abs()
    elif kind in ("l2", "mse"):
        per_pixel = (pred - target) ** 2
    else:
        raise TrainingError(f"unknown loss {kind!r}; known: l1, l2")
    return masked_mean(per_pixel, valid)

"""Data-parallel training of one job over processes started by ``torchrun`` (``run --ddp``).

Every rank runs the same jobs in the same order. Each training batch is drawn whole on every rank
from the same seeded generator and split between the ranks, so N processes with batch B/N each
see exactly the batches of one process with batch B; DDP averages the gradients. Rank 0 alone
writes checkpoints, MLflow and the leaderboard.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

from gsr_bench.errors import GsrBenchError

HINT = "start it with torchrun, e.g. `torchrun --nproc-per-node 2 -m gsr_bench run -m msg --ddp`"


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return world()[0] == 0


def init(device: str | None = None) -> torch.device:
    """Join the process group torchrun describes; returns this rank's device.

    NCCL on CUDA (one GPU per local rank), gloo on CPUs.
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise GsrBenchError(f"--ddp needs the environment torchrun sets up: {HINT}")
    use_cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")


def broadcast(obj: Any) -> Any:
    """``obj`` from rank 0 on every rank (itself outside a process group)."""
    if world()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


def shard(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """This rank's contiguous share of a batch drawn whole on every rank."""
    rank, size = world()
    if size == 1:
        return batch
    n = len(next(iter(batch.values())))
    if n % size:
        raise GsrBenchError(f"train.batch_size {n} is not divisible by the {size} DDP processes")
    per = n // size
    return {k: v[rank * per : (rank + 1) * per] for k, v in batch.items()}


def finish() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

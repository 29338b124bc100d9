"""The standard training loop: every learned method is trained the same way.

From the protocol: optimizer, learning rate and schedule, masked loss, batch size, random crops
aligned to the source grid with flips and 90-degree rotations, a step budget, validation every N
steps keeping the best weights by validation RMSE, and checkpoints to resume an interrupted run.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import random
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from gsr_bench import distributed
from gsr_bench.data.tiles import TileSet
from gsr_bench.errors import GsrBenchError
from gsr_bench.method import TorchMethod
from gsr_bench.protocol import Device, Train

log = logging.getLogger(__name__)


class TrainingError(GsrBenchError):
    """Training cannot go on (NaN loss, a checkpoint of another job)."""


@dataclass
class TrainContext:
    train: Train
    seed: int
    device: torch.device
    job_key: str = ""
    checkpoint_dir: Path | None = None
    progress: bool = True
    flags: Device = field(default_factory=Device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def masked_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, kind: str) -> torch.Tensor:
    diff = (pred - target)[valid]
    if kind == "l1":
        return diff.abs().mean()
    if kind in ("l2", "mse"):
        return (diff**2).mean()
    raise TrainingError(f"unknown loss {kind!r}; known: l1, l2")


def random_patches(
    tiles: TileSet, batch_size: int, patch: int, scale: int, augment: bool, gen: torch.Generator
) -> dict[str, torch.Tensor]:
    """A batch of random patches aligned to the source grid, randomly flipped and rotated."""
    idx = torch.randint(len(tiles), (batch_size,), generator=gen).tolist()
    cells = (tiles.crop - patch) // scale + 1
    out: dict[str, list[torch.Tensor]] = {"guide": [], "source": [], "target": [], "valid": []}
    for i in idx:
        s = tiles[i]
        y, x = (torch.randint(cells, (2,), generator=gen) * scale).tolist()
        p, ys, xs = patch // scale, y // scale, x // scale
        crops = {
            "guide": s["guide"][:, y : y + patch, x : x + patch],
            "target": s["target"][:, y : y + patch, x : x + patch],
            "valid": s["valid"][:, y : y + patch, x : x + patch],
            "source": s["source"][:, ys : ys + p, xs : xs + p],
        }
        if augment:
            k = int(torch.randint(4, (1,), generator=gen))
            flip = bool(torch.randint(2, (1,), generator=gen))
            for name, t in crops.items():
                t = torch.rot90(t, k, dims=(-2, -1))
                crops[name] = torch.flip(t, dims=(-1,)) if flip else t
        for name, t in crops.items():
            out[name].append(t)
    return {k: torch.stack(v) for k, v in out.items()}


@torch.no_grad()
def validation_rmse(method: TorchMethod, tiles: TileSet, batch_size: int = 8) -> float:
    sq, n = 0.0, 0.0
    for start in range(0, len(tiles), batch_size):
        b = tiles.batch(range(start, min(start + batch_size, len(tiles))))
        pred = method.predict(b["guide"], b["source"]).cpu()
        v = b["valid"]
        sq += float(((pred - b["target"])[v] ** 2).sum())
        n += float(v.sum())
    return math.sqrt(sq / max(n, 1))


def _schedule(cfg: Train) -> Any:
    def factor(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "cosine":
            span = max(1, cfg.steps - cfg.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - cfg.warmup_steps) / span)))
        if cfg.schedule == "constant":
            return 1.0
        raise TrainingError(f"unknown schedule {cfg.schedule!r}; known: cosine, constant")

    return factor


def _optimizer(cfg: Train, params: Any) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise TrainingError(f"unknown optimizer {cfg.optimizer!r}; known: adam, adamw")


def _save(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a checkpoint is either the old one or the new one, never half


def _autocast(ctx: TrainContext) -> Any:
    if ctx.device.type == "cuda" and ctx.flags.bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def configure_device(method: TorchMethod, ctx: TrainContext) -> dict[str, Any]:
    """Apply the protocol's CUDA options (channels_last, torch.compile); returns what took effect."""
    cuda = ctx.device.type == "cuda"
    effective = {
        "bf16": bool(cuda and ctx.flags.bf16),
        "channels_last": bool(cuda and ctx.flags.channels_last),
        "compile": bool(cuda and ctx.flags.compile),
    }
    if effective["channels_last"]:
        method.net.to(memory_format=torch.channels_last)
    if effective["compile"]:
        method.net.compile()  # in place: state_dict keys stay those of the plain module
    method.autocast = effective["bf16"]
    return effective


def _load_checkpoint(ckpt: Path, ctx: TrainContext, method: TorchMethod) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = torch.load(ckpt, map_location=ctx.device, weights_only=True)
    except Exception as exc:  # torn or corrupt: start again rather than crash
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        log.warning(
            "%s: unreadable checkpoint (%s: %s); training from scratch", ckpt, type(exc).__name__, first
        )
        return None
    if state.get("job_key") != ctx.job_key:
        raise TrainingError(
            f"{ckpt}: checkpoint of another job (method {state.get('method')!r}, key "
            f"{state.get('job_key')}), not {getattr(method.spec, 'name', '?')!r} with key "
            f"{ctx.job_key}; refusing to load it: delete the file or rerun with --force"
        )
    return state


def train_method(method: TorchMethod, train: TileSet, val: TileSet, ctx: TrainContext) -> dict[str, float]:
    """Train ``method.net`` under the protocol's budget; leaves the best weights loaded.

    With ``ctx.checkpoint_dir`` set, the full training state (weights, optimizer, scheduler, the
    data-order and torch RNG states, step, best weights) is saved every ``checkpoint_every``
    steps; a run started again resumes from it and ends exactly as an uninterrupted run would.
    """
    seed_everything(ctx.seed)
    gen = torch.Generator().manual_seed(ctx.seed)  # the data order: crops, flips, rotations
    net = method.net
    net.to(ctx.device)
    rank, world = distributed.world()
    if world > 1:  # forward goes through the wrapper (gradients averaged); states stay the module's
        method.net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    try:
        return _train(method, net, gen, train, val, ctx, rank, world)
    finally:
        method.net = net


def _train(
    method: TorchMethod,
    net: torch.nn.Module,
    gen: torch.Generator,
    train: TileSet,
    val: TileSet,
    ctx: TrainContext,
    rank: int,
    world: int,
) -> dict[str, float]:
    cfg = ctx.train
    opt = _optimizer(cfg, net.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg))
    step, best_rmse, best_state, elapsed = 0, math.inf, copy.deepcopy(net.state_dict()), 0.0
    resumed_from = 0
    ckpt = ctx.checkpoint_dir / "last.pt" if ctx.checkpoint_dir else None
    state = _load_checkpoint(ckpt, ctx, method) if ckpt is not None and ckpt.exists() else None
    if state is not None:
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        step, best_rmse, best_state = state["step"], state["best_rmse"], state["best_model"]
        elapsed, resumed_from = state["elapsed_s"], state["step"]
        log.info("resuming %s at step %d", ckpt, step)
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ctx.device)
    started = time.perf_counter()
    bar = tqdm(
        total=cfg.steps,
        initial=step,
        desc=f"train {getattr(method.spec, 'name', '')}",
        unit="step",
        disable=not ctx.progress or rank != 0,
        dynamic_ncols=True,
        leave=False,
    )
    scale, pixels, rmse = method.task.scale, 0, math.nan
    per_process = cfg.batch_size // world  # measured below, on every step this run makes
    memory_format = torch.channels_last if ctx.device.type == "cuda" and ctx.flags.channels_last else None
    while step < cfg.steps:
        net.train()
        batch = random_patches(train, cfg.batch_size, cfg.patch_size, scale, cfg.augment, gen)
        batch = {k: v.to(ctx.device) for k, v in distributed.shard(batch).items()}
        if memory_format is not None:
            batch["guide"] = batch["guide"].contiguous(memory_format=memory_format)
        with _autocast(ctx):
            loss = method.training_loss(batch, cfg.loss)
        if not torch.isfinite(loss):
            raise TrainingError(f"loss is {loss.item()} at step {step}: training stopped")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        per_process = len(batch["target"])
        pixels += batch["target"].numel() * world
        if step % cfg.val_every == 0 or step == cfg.steps:
            rmse = validation_rmse(method, val)
            if rmse < best_rmse:
                best_rmse, best_state = rmse, copy.deepcopy(net.state_dict())
        if ckpt is not None and rank == 0 and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            _save(
                ckpt,
                {
                    "job_key": ctx.job_key,
                    "method": getattr(method.spec, "name", ""),
                    "model": net.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "generator": gen.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "python_rng": random.getstate(),
                    "step": step,
                    "best_rmse": best_rmse,
                    "best_model": best_state,
                    "elapsed_s": elapsed + time.perf_counter() - started,
                },
            )
        seconds = time.perf_counter() - started
        bar.set_postfix(
            loss=f"{loss.item():.3f}",
            val_rmse="-" if math.isnan(rmse) else f"{rmse:.1f}",
            mpix_s=f"{pixels / max(seconds, 1e-9) / 1e6:.2f}",
            refresh=False,
        )
        bar.update()
    bar.close()
    net.load_state_dict(best_state)
    out = {
        "train_time_s": elapsed + time.perf_counter() - started,
        "best_val_rmse": best_rmse,
        "train_steps": float(step),
        "batch_per_process": float(per_process),  # the share each DDP rank trained on
        "resumed_from_step": float(resumed_from),
    }
    if ctx.device.type == "cuda":
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated(ctx.device) / 2**20
    else:  # the process high-water mark: an upper bound for this run on a CPU
        out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out

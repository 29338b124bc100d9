"""The standard training loop: every learned method is trained the same way.

From the protocol: optimizer, learning rate and schedule, masked loss, batch size, random crops
aligned to the source grid with flips and 90-degree rotations, a step budget, validation every N
steps keeping the best weights by validation RMSE, and checkpoints to resume an interrupted run.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from gsr_bench.data.tiles import TileSet
from gsr_bench.errors import GsrBenchError
from gsr_bench.method import TorchMethod
from gsr_bench.protocol import Train

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


def train_method(method: TorchMethod, train: TileSet, val: TileSet, ctx: TrainContext) -> dict[str, float]:
    """Train ``method.net`` under the protocol's budget; leaves the best weights loaded."""
    cfg = ctx.train
    seed_everything(ctx.seed)
    gen = torch.Generator().manual_seed(ctx.seed)
    net = method.net
    net.to(ctx.device)
    opt = _optimizer(cfg, net.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg))
    step, best_rmse, best_state = 0, math.inf, copy.deepcopy(net.state_dict())
    ckpt = ctx.checkpoint_dir / "last.pt" if ctx.checkpoint_dir else None
    if ckpt is not None and ckpt.exists():
        try:
            state = torch.load(ckpt, map_location=ctx.device, weights_only=True)
        except Exception as exc:  # a torn or foreign file: train from scratch rather than crash
            log.warning("%s: unreadable checkpoint (%s); training from scratch", ckpt, exc)
            state = None
        if state is not None:
            if state.get("job_key") != ctx.job_key:
                raise TrainingError(
                    f"{ckpt}: checkpoint of another job ({state.get('job_key')}); remove it or use --force"
                )
            net.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            gen.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            step, best_rmse, best_state = state["step"], state["best_rmse"], state["best_model"]
            log.info("resuming %s at step %d", ckpt, step)
    started = time.perf_counter()
    bar = tqdm(
        total=cfg.steps,
        initial=step,
        desc=f"train {getattr(method.spec, 'name', '')}",
        unit="step",
        disable=not ctx.progress,
        dynamic_ncols=True,
        leave=False,
    )
    scale = method.task.scale
    while step < cfg.steps:
        net.train()
        batch = random_patches(train, cfg.batch_size, cfg.patch_size, scale, cfg.augment, gen)
        batch = {k: v.to(ctx.device) for k, v in batch.items()}
        pred = method.forward(batch["guide"], batch["source"])
        loss = masked_loss(pred, batch["target"], batch["valid"], cfg.loss)
        if not torch.isfinite(loss):
            raise TrainingError(f"loss is {float(loss)} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        if step % cfg.val_every == 0 or step == cfg.steps:
            rmse = validation_rmse(method, val)
            if rmse < best_rmse:
                best_rmse, best_state = rmse, copy.deepcopy(net.state_dict())
            bar.set_postfix(loss=f"{loss.item():.3f}", val_rmse=f"{rmse:.1f}")
        if ckpt is not None and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            _save(
                ckpt,
                {
                    "job_key": ctx.job_key,
                    "model": net.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "generator": gen.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "step": step,
                    "best_rmse": best_rmse,
                    "best_model": best_state,
                },
            )
        bar.update()
    bar.close()
    net.load_state_dict(best_state)
    return {
        "train_time_s": time.perf_counter() - started,
        "best_val_rmse": best_rmse,
        "train_steps": float(step),
    }

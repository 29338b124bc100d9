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
from gsr_bench.data.samplers import BatchSampler
from gsr_bench.data.tiles import TileSet
from gsr_bench.errors import TrainingError
from gsr_bench.faults import kill_point
from gsr_bench.method import Method, TorchMethod
from gsr_bench.outputs import MethodOutputError, check_output
from gsr_bench.protocol import Device, Loader, Train

log = logging.getLogger(__name__)


@dataclass
class TrainContext:
    train: Train
    seed: int
    device: torch.device
    job_key: str = ""
    checkpoint_dir: Path | None = None
    progress: bool = True
    flags: Device = field(default_factory=Device)
    loader: Loader = field(default_factory=Loader)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def fit(method: Method, train: TileSet, val: TileSet, ctx: TrainContext) -> dict[str, float]:
    """Train ``method`` for a job: a :class:`TorchMethod` by the standard loop under the
    protocol's budget (unless it overrides ``fit``), any other method by its own ``fit``.
    Returns the numbers to log (with the device flags that took effect)."""
    if isinstance(method, TorchMethod) and type(method).fit is Method.fit:
        effective = configure_device(method, ctx)
        out = train_method(method, train, val, ctx)
        out.update({f"device_{k}": float(v) for k, v in effective.items()})
        return out
    return method.fit(train, val, ctx) or {}


@torch.no_grad()
def validation_rmse(method: TorchMethod, tiles: TileSet, batch_size: int = 8) -> float:
    sq, n = 0.0, 0.0
    for start in range(0, len(tiles), batch_size):
        b = tiles.batch(range(start, min(start + batch_size, len(tiles))))
        pred = method.predict(b["guide"], b["source"])
        if not start:
            check_output(method, "predict", pred, b["target"])
        pred = pred.cpu()
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


def make_optimizer(cfg: Train, params: Any, device: torch.device) -> torch.optim.Optimizer:
    """Adam or AdamW, fused into one kernel per step on CUDA, multi-tensor (foreach) elsewhere."""
    cuda = device.type == "cuda"
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    if cfg.optimizer in kinds:
        return kinds[cfg.optimizer](
            params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=cuda or None, foreach=not cuda or None
        )
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
    """Apply the protocol's device options (channels_last anywhere; bf16 autocast and
    torch.compile on CUDA); returns what took effect."""
    # oneDNN's convolutions run NHWC too: 10-40 % faster training steps on a CPU
    effective = ctx.flags.applied(ctx.device.type)
    deterministic = bool(ctx.flags.deterministic)
    if deterministic and ctx.device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's deterministic mode
    # set for every job, either way: the flags are the process's, and the previous job's may differ
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    if effective["channels_last"]:
        method.net.to(memory_format=torch.channels_last)
    if effective["compile"]:
        method.net.compile()  # in place: state_dict keys stay those of the plain module
    method.autocast = effective["bf16"]
    return {**effective, "deterministic": deterministic}


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
    expected = {k: tuple(v.shape) for k, v in method.net.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.get("model", {}).items()}
    if found != expected:  # the network changed under an unchanged version: never load it
        differ = sorted(set(found) ^ set(expected)) or [k for k in expected if found[k] != expected[k]]
        log.warning(
            "%s: checkpoint of a different network (parameters %s differ in name or shape); "
            "training from scratch (bump the method's version when its network changes)",
            ckpt,
            ", ".join(differ[:3]) + (" ..." if len(differ) > 3 else ""),
        )
        return None
    return state


def train_method(method: TorchMethod, train: TileSet, val: TileSet, ctx: TrainContext) -> dict[str, float]:
    """Train ``method.net`` under the protocol's budget; leaves the best weights loaded.

    With ``ctx.checkpoint_dir`` set, the full training state (weights, optimizer, scheduler, the
    torch and Python RNG states, step, best weights) is saved every ``checkpoint_every`` steps; a
    run started again resumes from it and ends exactly as an uninterrupted run would (each step's
    batch depends on the seed and the step only).
    """
    seed_everything(ctx.seed)
    net = method.net
    net.to(ctx.device)
    rank, world = distributed.world()
    if world > 1:  # forward goes through the wrapper (gradients averaged); states stay the module's
        net = _batch_norm_over_ranks(net, ctx.device)
        method.net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
    try:
        return _train(method, net, train, val, ctx, rank, world)
    finally:
        method.net = net


def _batch_norm_over_ranks(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``net`` with batch statistics taken over every rank's samples, as one process takes them.

    Each rank would otherwise normalize by the statistics of its own share of the batch.
    SyncBatchNorm runs on GPUs only: on a CPU the statistics stay per rank, and a warning says so.
    """
    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules()):
        return net
    if device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    log.warning("batch norm under DDP on a CPU: each rank normalizes by its own samples' statistics")
    return net


class _Monitor:
    """Loss statistics kept on the device and read on the host at logging steps only.

    The first step whose loss is not finite is recorded on the device too, so that a diverged run
    fails with its step without a host sync every step.
    """

    def __init__(self, device: torch.device, step: int) -> None:
        self.loss_sum = torch.zeros((), device=device)
        self.count = torch.zeros((), device=device)
        self.step = torch.full((), step, dtype=torch.long, device=device)
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)

    def add(self, loss: torch.Tensor) -> None:
        loss = loss.detach().float()
        bad = ~torch.isfinite(loss) & (self.first_bad < 0)
        self.first_bad = torch.where(bad, self.step, self.first_bad)
        self.loss_sum += torch.nan_to_num(loss, nan=0.0, posinf=0.0, neginf=0.0)
        self.count += 1
        self.step += 1

    def read(self) -> float:
        """Mean loss since the last read; raises on a non-finite loss (one host sync)."""
        total, count, first_bad = torch.stack([self.loss_sum, self.count, self.first_bad.float()]).tolist()
        if first_bad >= 0:
            raise TrainingError(f"loss is nan at step {int(first_bad)}: training stopped")
        self.loss_sum.zero_()
        self.count.zero_()
        return total / max(count, 1.0)


def _train(
    method: TorchMethod,
    net: torch.nn.Module,
    train: TileSet,
    val: TileSet,
    ctx: TrainContext,
    rank: int,
    world: int,
) -> dict[str, float]:
    cfg = ctx.train
    opt = make_optimizer(cfg, net.parameters(), ctx.device)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg))
    step, best_rmse, best_state, elapsed = 0, math.inf, copy.deepcopy(net.state_dict()), 0.0
    resumed_from = 0
    history: list[tuple[str, int, float]] = []  # logged as MLflow metric series, with their step
    ckpt = ctx.checkpoint_dir / "last.pt" if ctx.checkpoint_dir else None
    state = _load_checkpoint(ckpt, ctx, method) if ckpt is not None and ckpt.exists() else None
    if state is not None:
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"].cpu())  # map_location moved it to the device
        if ctx.device.type == "cuda" and "cuda_rng" in state:  # dropout and friends draw there
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), ctx.device)
        random.setstate(state["python_rng"])
        step, best_rmse, best_state = state["step"], state["best_rmse"], state["best_model"]
        history = list(state.get("history", []))
        elapsed, resumed_from = state["elapsed_s"], state["step"]
        log.info("resuming %s at step %d", ckpt, step)
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ctx.device)
    sampler = BatchSampler(train, cfg, ctx.loader, ctx.seed, ctx.device, progress=ctx.progress and rank == 0)
    monitor = _Monitor(ctx.device, step)
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
    pixels, rmse = 0, math.nan
    per_process = cfg.batch_size // world  # measured below, on every step this run makes
    layout = torch.channels_last if ctx.flags.channels_last else None
    log_every = max(1, cfg.log_every)
    for batch in sampler.batches(step, cfg.steps):
        net.train()
        batch["guide"] = batch["guide"].contiguous(memory_format=layout or torch.contiguous_format)
        try:
            with _autocast(ctx):
                loss = method.training_loss(batch, cfg.loss)
        except MethodOutputError as exc:  # masked_loss checks what forward returned
            raise MethodOutputError(f"method {getattr(method.spec, 'name', '?')!r}: {exc}") from None
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        monitor.add(loss)
        step += 1
        per_process = len(batch["target"])
        pixels += batch["target"].numel() * world
        validate = step % cfg.val_every == 0 or step == cfg.steps
        save = ckpt is not None and rank == 0 and (step % cfg.checkpoint_every == 0 or step == cfg.steps)
        if validate or save or step % log_every == 0:
            loss_value = monitor.read()  # before validating or saving: never keep NaN weights
            history.append(("train_loss", step, loss_value))
            if validate:
                rmse = validation_rmse(method, val)
                history.append(("val_rmse", step, rmse))
                if rmse < best_rmse:
                    best_rmse, best_state = rmse, copy.deepcopy(net.state_dict())
            seconds = time.perf_counter() - started
            bar.set_postfix(
                loss=f"{loss_value:.3f}",
                val_rmse="-" if math.isnan(rmse) else f"{rmse:.1f}",
                tiles_s=f"{pixels / max(seconds, 1e-9) / train.crop**2:.1f}",
                data_wait=f"{sampler.wait_s / max(seconds, 1e-9):.0%}",
                refresh=False,
            )
        if save:
            assert ckpt is not None
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            _save(
                ckpt,
                {
                    "job_key": ctx.job_key,
                    "method": getattr(method.spec, "name", ""),
                    "model": net.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    **(
                        {"cuda_rng": torch.cuda.get_rng_state(ctx.device)}
                        if ctx.device.type == "cuda"
                        else {}
                    ),
                    "python_rng": random.getstate(),
                    "step": step,
                    "best_rmse": best_rmse,
                    "best_model": best_state,
                    "elapsed_s": elapsed + time.perf_counter() - started,
                    "history": history,
                },
            )
            kill_point("train", step)
        bar.update()
    bar.close()
    net.load_state_dict(best_state)
    seconds = time.perf_counter() - started
    out = {
        "train_time_s": elapsed + seconds,
        "best_val_rmse": best_rmse,
        "train_steps": float(step),
        "batch_per_process": float(per_process),  # the share each DDP rank trained on
        "resumed_from_step": float(resumed_from),
        # output pixels trained per second, in tiles of the protocol's crop (patches may be smaller)
        "train_tiles_s": pixels / max(seconds, 1e-9) / train.crop**2,
        "data_wait_share": sampler.wait_s / max(seconds - sampler.load_s, 1e-9),
        "data_load_s": sampler.load_s,
    }
    method.fit_params = {**getattr(method, "fit_params", {}), "loader_tier": sampler.tier}
    # (metric, step, value) of this fit, logged by the runner as MLflow series
    vars(method)["fit_series"] = history
    if ctx.device.type == "cuda":
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated(ctx.device) / 2**20
    else:  # the process high-water mark: an upper bound for this run on a CPU
        out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out

"""``gsr-bench bench``: inference throughput of every method on this device, beside GSR4B's.

Each method predicts a batch of 250 x 250 tiles (random guide and source: speed does not depend
on content) after a warm-up call, synchronized on CUDA; the median of the repeats is kept. Results
are saved under ``RESULTS/bench/``; ``--compare`` checks them against the previous save and fails
on a median slowdown above a threshold.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from gsr_bench.channels import SOURCE_MASK
from gsr_bench.method import TaskInfo, TorchMethod
from gsr_bench.ops import synchronize
from gsr_bench.plugins import PluginManager
from gsr_bench.provenance import device_name

# Mpix/s in the GSR4B table (Karaman et al., ISPRS 2025), on the authors' GPU.
PAPER_MPIX_S = {
    "msg": 53.2,
    "fdsr": 240.8,
    "p2p": 0.3,
    "jbu": 0.9,
    "msg-ng": 116.8,
    "nearest": 262_000.0,
    "bilinear": 82_000.0,
    "bicubic": 37_000.0,
    "unet": 19.0,
    "resnext": 0.8,
}
# Per-tile optimizers get a token budget: their real cost is the protocol's iterations.
BENCH_OPTIONS: dict[str, dict[str, Any]] = {"p2p": {"iterations": 2}}
# The paper-width ResNeXt takes minutes a batch on a CPU: CPUs time the quick protocol's width.
CPU_BENCH_OPTIONS: dict[str, dict[str, Any]] = {"resnext": {"width": 0.03125, "cardinality": 4}}


def bench_options(name: str, device: torch.device) -> dict[str, Any]:
    """The options a method is timed with on ``device`` (recorded beside the timing)."""
    options = dict(BENCH_OPTIONS.get(name, {}))
    if device.type == "cpu":
        options.update(CPU_BENCH_OPTIONS.get(name, {}))
    return options


@dataclass
class Timing:
    method: str
    family: str
    params: int
    median_s: float
    mpix_s: float
    paper_mpix_s: float | None
    device: str
    # learned methods: output pixels trained per second (forward, backward, optimizer step)
    train_mpix_s: float | None = None
    train_batch: int | None = None
    train_patch: int | None = None
    options: dict[str, Any] | None = None
    # per-tile optimizers: seconds one more iteration adds to a call on ``batch`` tiles
    iteration_s: float | None = None
    batch: int | None = None
    # multiply-adds x 2 of convolutions and matrix products a predicted pixel (torch's counter;
    # elementwise work such as DADA's diffusion steps is not counted: their docstrings give it)
    flops_per_pixel: float | None = None
    periods: int = 1  # guide images a tile: temporal methods are timed on a 12-period series


def measure(
    manager: PluginManager,
    names: list[str],
    device: torch.device,
    batch: int = 4,
    repeats: int = 5,
    channels: int = 14,
    train_batch: int = 8,
    train_patch: int = 60,
) -> list[Timing]:
    """Inference of every method in ``names`` and, for learned ones, training steps at
    ``train_batch`` x ``train_patch``: the rates ``gsr-bench estimate`` plans with."""
    name_of_device = device_name(device)
    out = []
    for name in names:
        spec = manager.methods.get(name)
        periods = SERIES_PERIODS if spec.temporal else 1
        task, guide, source = bench_inputs(channels, periods, batch, device)
        options = bench_options(name, device)
        method = spec.create(task, **options).to(device)
        flops = count_flops(method, guide[:1], source[:1]) / (250 * 250)
        median = median_seconds(predict_call(method, guide, source, device), repeats, warmup=1)
        timing = Timing(
            name,
            spec.family,
            method.num_parameters(),
            median,
            batch * 250 * 250 / median / 1e6,
            PAPER_MPIX_S.get(name),
            name_of_device,
            options=options,
            batch=batch,
            flops_per_pixel=flops,
            periods=periods,
        )
        if "iterations" in options:  # a second timing at 5x the iterations gives their cost
            longer = spec.create(task, **{**options, "iterations": 5 * options["iterations"]}).to(device)
            slow = median_seconds(predict_call(longer, guide, source, device), max(1, repeats // 2))
            timing.iteration_s = max(slow - median, 0.0) / (4 * options["iterations"])
        if isinstance(method, TorchMethod):
            step_s = time_training_step(method, device, train_batch, train_patch, repeats)
            timing.train_mpix_s = train_batch * train_patch**2 / step_s / 1e6
            timing.train_batch, timing.train_patch = train_batch, train_patch
        out.append(timing)
    return out


SERIES_PERIODS = 12  # a year of monthly images, as BioMassters has


def bench_inputs(
    channels: int, periods: int, batch: int, device: torch.device
) -> tuple[TaskInfo, torch.Tensor, torch.Tensor]:
    """A task and random 250 x 250 inputs: ``channels`` bands, for each of ``periods`` periods,
    and the source mask (all valid), as methods receive them in a run."""
    names = tuple(f"c{i}@p{t}" if periods > 1 else f"c{i}" for t in range(periods) for i in range(channels))
    task = TaskInfo((*names, SOURCE_MASK), 10, 250, 60.0, 70.0, 500.0)
    g = torch.Generator().manual_seed(0)
    guide = torch.randn(batch, len(names), 250, 250, generator=g)
    guide = torch.cat([guide, torch.ones(batch, 1, 250, 250)], 1).to(device)
    source = (torch.rand(batch, 1, 25, 25, generator=g) * 300).to(device)
    return task, guide, source


def count_flops(method: Any, guide: torch.Tensor, source: torch.Tensor) -> float:
    """FLOPs torch counts in one prediction (2 per multiply-add of convolutions and products)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        method.predict(guide, source)
    return float(counter.get_total_flops())


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 0) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones
    (``fn`` synchronizes the device itself where it must)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def predict_call(
    method: Any, guide: torch.Tensor, source: torch.Tensor, device: torch.device
) -> Callable[[], torch.Tensor]:
    """One timed prediction, synchronized on the device: what every inference timing of the
    suite calls (``gsr-bench bench``, the benchmarks, the CI gate, the GPU check)."""

    def call() -> torch.Tensor:
        out = method.predict(guide, source)
        synchronize(device)
        return out

    return call


def training_step(method: TorchMethod, device: torch.device, batch: int, patch: int) -> Any:
    """A callable making one step of the standard loop's kind (loss, backward, Adam) on a fixed
    random batch of ``batch`` patches of ``patch`` pixels, synchronized on CUDA."""
    from gsr_bench.protocol import Train
    from gsr_bench.training import make_optimizer

    g = torch.Generator().manual_seed(1)
    target = (torch.rand(batch, 1, patch, patch, generator=g) * 300).to(device)
    source = torch.nn.functional.avg_pool2d(target, method.task.scale)
    data = {  # every key a training batch has (gsr_bench.data.samplers.assemble)
        "guide": torch.randn(batch, method.task.in_channels, patch, patch, generator=g).to(device),
        "source": source,
        "target": target,
        "valid": target >= 0,
        "source_valid": source >= 0,
    }
    opt = make_optimizer(Train(), method.net.parameters(), device)
    method.net.train()

    def step() -> float:
        loss = method.training_loss(data, "l1")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        synchronize(device)
        return float(loss.detach())

    return step


def time_training_step(
    method: TorchMethod, device: torch.device, batch: int, patch: int, repeats: int
) -> float:
    """Median seconds of one training step (the first, which allocates Adam's state, excluded)."""
    seconds = median_seconds(training_step(method, device, batch, patch), repeats, warmup=1)
    method.net.eval()
    return seconds


def save(timings: list[Timing], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns():020d}.json"  # sorts in time order
    path.write_text(json.dumps([asdict(t) for t in timings], indent=2))
    return path


def previous(folder: Path, exclude: Path | None = None) -> list[dict[str, Any]] | None:
    saved = sorted(p for p in folder.glob("*.json") if p != exclude) if folder.exists() else []
    return json.loads(saved[-1].read_text()) if saved else None


def regressions(now: list[Timing], before: list[dict[str, Any]], threshold: float) -> list[str]:
    """Methods whose median time grew by more than ``threshold`` (0.1 = 10 %) since ``before``."""
    old = {b["method"]: b for b in before}
    found = []
    for t in now:
        if t.method in old and old[t.method]["device"] == t.device:
            ratio = t.median_s / old[t.method]["median_s"]
            if ratio > 1 + threshold:
                was = old[t.method]["median_s"]
                found.append(f"{t.method}: {ratio - 1:+.0%} median time ({was:.4f} s -> {t.median_s:.4f} s)")
    return found

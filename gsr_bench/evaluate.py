"""Predicting a test split and measuring it: the metrics, the throughput, the saved predictions."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from gsr_bench.data.tiles import Splits, TileSet
from gsr_bench.method import Method, TaskInfo
from gsr_bench.metrics import ExtraMetric, MetricAccumulator
from gsr_bench.ops import project_to_source, synchronize
from gsr_bench.outputs import check_output


def task_info(splits: Splits, crop: int) -> TaskInfo:
    info = splits.info
    channels = info.method_channels
    return TaskInfo(channels, info.scale, crop, info.target_mean, info.target_std, info.data_range)


def evaluate(
    method: Method,
    tiles: TileSet,
    batch_size: int,
    device: torch.device,
    bins: Any,
    warmup_batches: int = 1,
    extra: dict[str, ExtraMetric] | None = None,
    progress: bool = False,
    keep: int = 0,
    project: bool = False,
) -> tuple[dict[str, float], list[torch.Tensor]]:
    """Metrics of ``method`` on ``tiles`` and the predictions (float16, on the CPU) of the first
    ``keep`` tiles (``keep=-1``: of every tile).

    Throughput counts only ``predict`` (data loading excluded), after ``warmup_batches`` calls
    (a whole batch on GPU, one tile on CPU), synchronized on GPU.
    """
    acc = MetricAccumulator(tiles.info.data_range, tiles.info.scale, bins, extra or {})
    projected = MetricAccumulator(tiles.info.data_range, tiles.info.scale, bins, extra or {})
    starts = list(range(0, len(tiles), batch_size))
    # A GPU warms up on a whole batch (the caching allocator and cuBLAS size their buffers by it);
    # a CPU's one-time costs are per process, and a whole batch of a per-tile fit (P2P) takes 18 s.
    first = tiles.batch(range(0, min(batch_size if device.type == "cuda" else 1, len(tiles))))
    for _ in range(warmup_batches):
        method.predict(first["guide"].to(device), first["source"].to(device))
    synchronize(device)
    seconds, pixels = 0.0, 0
    kept: list[torch.Tensor] = []
    # A bar only where evaluation takes a while: per-batch lines would drown the job bar in logs.
    show = progress and len(starts) > 20
    for start in tqdm(starts, desc="evaluate", unit="batch", disable=not show, leave=False):
        b = tiles.batch(range(start, min(start + batch_size, len(tiles))))
        guide, source = b["guide"].to(device), b["source"].to(device)
        synchronize(device)
        t0 = time.perf_counter()
        pred = method.predict(guide, source)
        synchronize(device)
        seconds += time.perf_counter() - t0
        if not start:
            check_output(method, "predict", pred, b["target"])
        pred = pred.float().cpu()
        if not torch.isfinite(pred).all():
            raise ValueError(f"non-finite predictions on tiles {b['id'][:3]}...")
        pixels += pred.numel()
        acc.update(pred, b["target"], b["valid"], b["source"])
        if project:  # the raw prediction is measured too: the projection must earn its place
            fixed = project_to_source(pred, b["source"], tiles.info.scale)
            projected.update(fixed, b["target"], b["valid"], b["source"])
        kept.extend(pred.half()[: len(pred) if keep < 0 else max(0, keep - len(kept))])
    metrics = acc.compute()
    if project:
        metrics.update({f"projected_{k}": v for k, v in projected.compute().items()})
    metrics["throughput_mpix_s"] = pixels / max(seconds, 1e-9) / 1e6
    return metrics, kept


def save_predictions(path: Path, tiles: TileSet, preds: list[torch.Tensor]) -> None:
    """Every test prediction (float16, compressed) with its tile id: ``gsr-bench score`` recomputes
    the metrics from them."""
    np.savez_compressed(path, ids=np.array(tiles.ids()[: len(preds)]), pred=torch.stack(preds).numpy())


def save_figure_tiles(path: Path, tiles: TileSet, preds: list[torch.Tensor]) -> None:
    """The first tiles with their prediction, for the leaderboard's qualitative panel."""
    b = tiles.batch(range(len(preds)))
    rgb = b["guide"][:, list(tiles.info.rgb_channels)]
    np.savez_compressed(
        path,
        ids=np.array(b["id"]),
        rgb=rgb.numpy().astype(np.float16),
        source=b["source"].numpy(),
        target=b["target"].numpy(),
        valid=b["valid"].numpy(),
        pred=torch.stack(preds).float().numpy(),
    )

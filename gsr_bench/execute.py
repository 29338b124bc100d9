"""One job, start to end: create the method, fit it, predict the test split, measure it."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from gsr_bench.data.tiles import Splits
from gsr_bench.evaluate import evaluate, save_figure_tiles, save_predictions, task_info
from gsr_bench.jobs import Job, JobResult
from gsr_bench.method import Method
from gsr_bench.metrics import ExtraMetric
from gsr_bench.model_file import MODEL_FILE, ModelCard, fit_choices, save_model
from gsr_bench.plugins import PluginManager, get_plugin_manager
from gsr_bench.registry import resolve_factory
from gsr_bench.training import TrainContext, fit, seed_everything

log = logging.getLogger(__name__)


def extra_metrics(manager: PluginManager | None = None) -> tuple[dict[str, ExtraMetric], dict[str, Any]]:
    """The plugins' extra metrics, ready to compute, and what the records say of each."""
    specs = list((manager or get_plugin_manager()).metrics)
    fns = {m.name: ExtraMetric(resolve_factory(m.fn), m.aggregate) for m in specs}
    info = {
        m.name: {
            "version": m.version,
            "aggregate": m.aggregate,
            "higher_is_better": m.higher_is_better,
            "label": m.label or m.name,
            "unit": m.unit,
            "description": m.description,
            "distribution": m.distribution,
        }
        for m in specs
    }
    return fns, info


def execute(
    job: Job,
    splits: Splits,
    device: torch.device,
    workdir: Path,
    checkpoint_dir: Path,
    progress: bool,
    manager: PluginManager | None = None,
) -> tuple[dict[str, float], dict[str, Any], list[tuple[str, int, float]]]:
    """Fit and evaluate ``job``: its metrics, the params to log and the training's metric series."""
    proto = job.protocol
    seed_everything(job.seed)
    task = task_info(splits, proto.task.crop)
    method: Method = job.method.create(task, **job.method_options).to(device)
    ctx = TrainContext(
        proto.train, job.seed, device, job.train_key, checkpoint_dir, progress, proto.device, proto.loader
    )
    started = time.perf_counter()
    fit_info = fit(method, splits.train, splits.val, ctx)
    train_time = time.perf_counter() - started
    extra, extra_info = extra_metrics(manager)
    metrics, preds = evaluate(
        method,
        splits.test,
        proto.eval.batch_size,
        device,
        splits.test.info.bins,  # a cross-dataset job is scored as the test dataset says
        proto.eval.warmup_batches,
        extra,
        progress,
        keep=-1 if proto.eval.save_predictions else proto.eval.figure_tiles,
        project=proto.eval.project_to_source,
    )
    metrics.update({k: float(v) for k, v in fit_info.items()})
    metrics["train_time_s"] = float(fit_info.get("train_time_s", train_time))
    metrics["params"] = float(method.num_parameters())
    metrics["test_tiles"] = float(len(splits.test))
    # One seed drives python, numpy, torch and the data order; recorded under each name.
    params = {
        **method.config(),
        **getattr(method, "fit_params", {}),
        **{f"seed_{k}": job.seed for k in ("python", "numpy", "torch", "data_order")},
        "loader": dataclasses.asdict(proto.loader),  # recorded, not hashed: it never changes a batch
    }
    if extra_info:
        params["extra_metrics"] = extra_info
    (workdir / "config.json").write_text(
        json.dumps(
            {
                "job": job.config(),
                "chosen": params,
                "dataset": splits.info.to_dict(),
                "key": job.key,
            },
            indent=2,
            default=str,
        )
    )
    save_model(workdir / MODEL_FILE, model_card(job, splits, task, method), method)
    if proto.eval.save_predictions:
        save_predictions(workdir / "predictions.npz", splits.test, preds)
    if proto.eval.figure_tiles:
        save_figure_tiles(workdir / "tiles.npz", splits.test, preds[: proto.eval.figure_tiles])
    return metrics, params, list(getattr(method, "fit_series", []))


def model_card(job: Job, splits: Splits, task: Any, method: Method) -> ModelCard:
    """What applying this job's model to new data needs (:mod:`gsr_bench.model_file`)."""
    return ModelCard(
        method=job.method.name,
        version=job.method.version,
        code=job.code,
        options={**job.method_options, **fit_choices(method)},
        task=dataclasses.asdict(task),
        guide_mean=[float(v) for v in splits.train.guide_mean],
        guide_std=[float(v) for v in splits.train.guide_std],
        job_key=job.key,
        train_key=job.train_key,
        dataset=job.dataset.name,
        dataset_revision=splits.info.revision,
        protocol=job.protocol.name,
        seed=job.seed,
        units=splits.info.units,
        rgb_channels=splits.info.rgb_channels,
        guide_dtype=job.protocol.data.guide_dtype,
    )


def execute_job(
    job: Job,
    splits: Any,
    device: Any,
    workdir: Path,
    checkpoints: Path,
    progress: bool,
    manager: PluginManager | None,
) -> JobResult:
    """Fit and evaluate one job; a failure becomes a FAILED result, never an exception."""
    started = time.perf_counter()
    try:
        metrics, params, series = execute(
            job, splits, device, workdir, checkpoints / job.train_key, progress, manager
        )
        result = JobResult(job, "FINISHED", metrics, params, series=series)
    except Exception as exc:
        result = JobResult(
            job, "FAILED", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()
        )
        (workdir / "traceback.txt").write_text(result.traceback)
        log.warning("%s failed: %s", job.name, result.error)
    result.seconds = time.perf_counter() - started
    return result

"""``gsr-bench predict``: a method the suite trained, applied to a real georeferenced scene.

The model is found the way ``gsr-bench run`` would make it: the job of that method, dataset,
protocol and seed is planned (its key hashes the method's code and the data), and its finished
run's ``model.pt`` (:mod:`gsr_bench.model_file`) gives the weights, the options and the train
statistics the guide is normalized with. A job edited since, or never run, is not found: the
error names the ``gsr-bench run`` command that makes it. ``--checkpoint`` takes a ``model.pt``
directly, refused when the method's version or code differs from the installed one. A
training-free method needs no job: without one it runs with its defaults, the guide z-scored by
the scene's own statistics (said in the log).
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gsr_bench.channels import SOURCE_MASK
from gsr_bench.data.raster import Scene
from gsr_bench.data.tiles import guide_statistics
from gsr_bench.errors import GsrBenchError
from gsr_bench.fingerprint import code_fingerprint
from gsr_bench.jobs import Job
from gsr_bench.method import Method, TaskInfo, TorchMethod
from gsr_bench.model_file import MODEL_FILE, ModelCard, load_model
from gsr_bench.plugins import PluginManager
from gsr_bench.tracking import Tracker

log = logging.getLogger(__name__)


@dataclass
class Model:
    """A method ready to predict, with where it came from.

    Attributes:
        method: created, weights loaded, not yet on a device.
        card: its card; for a training-free method without a job, one made for this scene
            (``card.job_key`` is ``""`` and ``card.guide_mean`` is filled by :func:`scene_statistics`).
        origin: one line for the log and the output's tags.
    """

    method: Method
    card: ModelCard
    origin: str

    @property
    def has_job(self) -> bool:
        return bool(self.card.job_key)


def run_command(job: Job, root: str | None, options: Sequence[str] | None) -> str:
    """The ``gsr-bench run`` command that makes ``job``."""
    parts = ["gsr-bench", "run", "-m", job.method.name, "-d", job.dataset.name]
    parts += ["--protocol", job.protocol.name, "--seeds", str(job.seed)]
    if root:
        parts += ["--root", root]
    for option in options or []:
        parts += ["-O", option]
    return shlex.join(parts)


def from_checkpoint(manager: PluginManager, path: Path) -> Model:
    """The model of a ``model.pt`` file, if the installed method is the one that made it."""
    card, weights = load_model(path)
    spec = manager.methods.get(card.method)
    code = code_fingerprint(spec.factory)
    if (spec.version, code) != (card.version, card.code):
        raise GsrBenchError(
            f"{path}: made by {card.method} v{card.version} (code {card.code}); the installed {spec.name} is "
            f"v{spec.version} (code {code}): its weights may not mean the same; rerun the job"
        )
    origin = f"{path.name} ({card.method} v{card.version}, job {card.job_key})"
    return Model(_restore(spec, card, weights), card, origin)


def from_job(tracker: Tracker, jobs: Sequence[Job], root: str | None, options: Sequence[str] | None) -> Model:
    """The model of the first of ``jobs`` (one job planned for each device's numerics) with a
    finished run; a training-free method without one gets its defaults."""
    job = jobs[0]
    run = next((r for r in (tracker.finished_run(j.key) for j in jobs) if r is not None), None)
    if run is None:
        model = _untrained(job)
        if isinstance(model.method, TorchMethod):
            raise GsrBenchError(
                f"no finished job {job.name} (key {job.key}) in {tracker.uri}; make it with: "
                f"{run_command(job, root, options)}"
            )
        return model
    with tempfile.TemporaryDirectory(prefix="gsr-bench-model-") as tmp:
        path = tracker.download(run.info.run_id, MODEL_FILE, Path(tmp))
        if path is None:
            raise GsrBenchError(
                f"the finished run of {job.name} (run {run.info.run_id}) has no {MODEL_FILE}: it ran before "
                f"jobs saved their model; rerun it with: {run_command(job, root, options)} --force"
            )
        card, weights = load_model(path)
    origin = f"job {job.name} (key {card.job_key}, run {run.info.run_id})"
    return Model(_restore(job.method, card, weights), card, origin)


def _restore(spec: Any, card: ModelCard, weights: dict[str, torch.Tensor] | None) -> Method:
    try:
        method: Method = spec.create(card.task_info, **card.options)
    except Exception as exc:
        raise GsrBenchError(
            f"{card.method}: cannot be created from its card ({type(exc).__name__}: {exc})"
        ) from None
    if isinstance(method, TorchMethod):
        if weights is None:
            raise GsrBenchError(f"{card.method}: a learned method, but its model file holds no weights")
        missing, unexpected = method.net.load_state_dict(weights, strict=False)
        if missing or unexpected:
            raise GsrBenchError(
                f"{card.method}: its weights do not fit the network ({len(missing)} missing, "
                f"{len(unexpected)} unexpected: {', '.join([*missing, *unexpected][:3])})"
            )
    return method


def _untrained(job: Job) -> Model:
    """A training-free method with its defaults, for the job's dataset; statistics to follow."""
    dataset = job.dataset.create(**job.dataset_options)
    channels = (*dataset.guide_channels, SOURCE_MASK)
    task = TaskInfo(channels, dataset.scale, job.protocol.task.crop, 0.0, 1.0, dataset.data_range)
    card = ModelCard(
        method=job.method.name,
        version=job.method.version,
        code=job.code,
        options=dict(job.method_options),
        task=dataclasses.asdict(task),
        guide_mean=[],
        guide_std=[],
        job_key="",
        train_key="",
        dataset=job.dataset.name,
        dataset_revision="",
        protocol=job.protocol.name,
        seed=job.seed,
        units=dataset.units,
        rgb_channels=dataset.rgb_indices(),
        guide_dtype=job.protocol.data.guide_dtype,
    )
    method = job.method.create(task, **card.options)
    origin = f"{job.method.name} v{job.method.version} with its defaults (training-free, no job)"
    return Model(method, card, origin)


def scene_statistics(model: Model, scene: Scene) -> Model:
    """For a model without a job: the guide's mean and std from the scene itself (a decimated
    read), masks left as 0/1, and the source's for the task, as a job takes them from train."""
    overview = scene.read_overview(1024)
    flat = overview.reshape(len(overview), -1)
    with np.errstate(all="ignore"):  # a band never observed: mean 0, std 0 (then 1)
        observed = np.nan_to_num(np.nanmean(flat, axis=1)), np.nan_to_num(np.nanstd(flat, axis=1))
    mean, std = guide_statistics(model.card.guide_channels, *observed)
    source = scene.source_array[np.isfinite(scene.source_array)]
    task = {**model.card.task, "target_mean": float(source.mean()), "target_std": float(source.std() or 1.0)}
    card = dataclasses.replace(
        model.card, guide_mean=[float(v) for v in mean], guide_std=[float(v) for v in std], task=task
    )
    method = model.method.spec.create(card.task_info, **card.options)
    return Model(method, card, model.origin + "; guide z-scored with the scene's own statistics")


def prepare_for_scene(model: Model, protocol: Any, device: torch.device) -> Method:
    """The method on ``device``; a training-free one from a job has its ``fit`` run again: with
    the choices it made restored, it takes only the seed and the protocol's settings, no data
    (without a job, it keeps its defaults)."""
    method = model.method.to(device)
    if model.has_job and not isinstance(method, TorchMethod):
        from gsr_bench.training import TrainContext

        ctx = TrainContext(
            protocol.train, model.card.seed, device, "", None, False, protocol.device, protocol.loader
        )
        try:
            method.fit(None, None, ctx)
        except Exception as exc:
            raise GsrBenchError(
                f"{model.card.method}: its fit needs data beyond the choices its job recorded "
                f"({type(exc).__name__}: {exc}); predict cannot apply it to a scene"
            ) from None
    return method


def output_tags(model: Model, scene: Scene) -> dict[str, str]:
    """The GeoTIFF tags of the map: what made it."""
    card = model.card
    return {
        "GSR_BENCH_METHOD": card.method,
        "GSR_BENCH_METHOD_VERSION": str(card.version),
        "GSR_BENCH_CODE_FINGERPRINT": card.code,
        "GSR_BENCH_JOB_KEY": card.job_key or "none (training-free, defaults)",
        "GSR_BENCH_DATASET": f"{card.dataset} {card.dataset_revision}".strip(),
        "GSR_BENCH_PROTOCOL": card.protocol,
        "GSR_BENCH_SEED": str(card.seed),
        "GSR_BENCH_SOURCE": scene.source.name,
        "GSR_BENCH_GUIDE": ",".join(p.name for p in scene.guides),
        "UNITS": card.units,
    }

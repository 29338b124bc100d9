"""Executing jobs: the local runner, Ray tasks and data-parallel ranks.

The runner skips jobs whose key has a finished MLflow run, resumes interrupted ones from their
checkpoints, and gives each job its own run whatever happens to the others.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from gsr_bench.errors import GsrBenchError
from gsr_bench.faults import raise_point
from gsr_bench.jobs import (
    CELL_KEY_TAG,
    CODE_TAG,
    Job,
    JobResult,
    cache_dir,
    data_key,
    load_splits,
    release_splits,
)
from gsr_bench.planning import select_device
from gsr_bench.plugins import PluginManager
from gsr_bench.tracking import JOB_KEY_TAG, Tracker, flatten

log = logging.getLogger(__name__)


class Runner:
    """Runs jobs one at a time on one device, skipping finished ones, logging each to MLflow."""

    def __init__(
        self,
        manager: PluginManager,
        tracker: Tracker,
        results_dir: Path,
        device: str | None = None,
        force: bool = False,
        progress: bool = True,
        executor: str = "local",
        ray_address: str | None = None,
        records: Path | None = None,
    ) -> None:
        self.manager, self.tracker, self.results_dir = manager, tracker, Path(results_dir)
        self.records = records  # where each finished job's result record goes (None: nowhere)
        self.device, self.force, self.progress = device, force, progress
        self._splits: dict[str, Any] = {}
        self.executor, self.ray_address = executor, ray_address
        self.cache_dir = cache_dir(self.results_dir)

    def pending(self, jobs: Sequence[Job]) -> tuple[list[Job], list[JobResult]]:
        todo, skipped = [], []
        for job in jobs:
            run = None if self.force else self.tracker.finished_run(job.key)
            if run is None:
                todo.append(job)
                if not self.force:
                    self._say_why_again(job)
            else:
                metrics = dict(run.data.metrics)
                seconds = metrics.pop("job_seconds", 0.0)
                result = JobResult(
                    job, "SKIPPED", metrics, tags=dict(run.data.tags), run_id=run.info.run_id, seconds=seconds
                )
                skipped.append(result)
                self._publish(result)
        return todo, skipped

    def _publish(self, r: JobResult) -> None:
        """The job's record, when this run publishes; a finished job without one (run before
        under a protocol that did not publish, or with --no-leaderboard) gets it now."""
        if self.records is None or r.status not in ("FINISHED", "SKIPPED"):
            return
        from gsr_bench.records import record_of, record_path, write_record

        record = record_of(r)
        if r.status == "FINISHED" or not record_path(self.records, record).exists():
            write_record(self.records, record)

    def _say_why_again(self, job: Job) -> None:
        """One line when a job reruns because its method's code changed under the same version."""
        old = self.tracker.finished_run(job.cell_key, CELL_KEY_TAG)
        if old is None:
            return
        before = old.data.tags.get(CODE_TAG, "?")
        log.warning(
            "%s: method %r v%s changed its code since its finished run (fingerprint %s, now %s) "
            "without a version bump; rerunning it (bump the version when results may change)",
            job.name,
            job.method.name,
            job.method.version,
            before,
            job.code,
        )

    def splits(self, job: Job) -> Any:
        key = data_key(job)
        if key not in self._splits:
            self._splits[key] = load_splits(job, self.cache_dir, self.progress, workers=None)
        return self._splits[key]

    def run(self, jobs: Sequence[Job]) -> list[JobResult]:
        from tqdm.auto import tqdm

        from gsr_bench import distributed

        todo, results = self.pending(jobs)
        if self.force:  # from scratch: resuming would report the old weights as a new result
            for job in todo:
                shutil.rmtree(self.results_dir / "checkpoints" / job.train_key, ignore_errors=True)
        distributed.broadcast([j.key for j in todo])  # DDP: the other ranks train the same jobs
        if not todo:
            return results
        for job in todo:  # data problems are the user's to fix: stop before any run is created
            self.splits(job)
        distributed.barrier()  # DDP: the data is prepared before the other ranks read it
        if self.executor == "ray":
            return results + self.run_ray(todo, self.ray_address)
        left = Counter(data_key(j) for j in todo)
        bar = tqdm(todo, unit="job", desc="jobs", disable=not self.progress, dynamic_ncols=True)
        for job in bar:
            bar.set_postfix_str(job.name)
            results.append(self.run_one(job))
            key = data_key(job)
            left[key] -= 1
            if not left[key]:  # its last job: the tiles it kept resident go
                self.release(job)
        return results

    def release(self, job: Job) -> None:
        """Forget the splits of ``job``'s data key, with the tiles they keep on the device."""
        splits = self._splits.pop(data_key(job), None)
        if splits is not None:
            release_splits(splits)

    def _tags(self, job: Job, device: Any) -> dict[str, str]:
        from gsr_bench.metrics import METRICS_REVISION
        from gsr_bench.provenance import device_name, distribution_info, git_hash, package_versions

        dist = distribution_info(job.method.distribution)
        return {
            JOB_KEY_TAG: job.key,
            "train_key": job.train_key,
            CELL_KEY_TAG: job.cell_key,
            CODE_TAG: job.code,
            "plugin_version": dist["version"],
            "plugin_url": dist["url"],
            "plugin_requirement": dist["requirement"],
            "dataset_root": str(job.dataset_options.get("root") or ""),  # local: never in a record
            "method": job.method.name,
            "method_version": job.method.version,
            "family": job.method.family,
            "dataset": job.dataset.name,
            "dataset_version": job.dataset.version,
            "protocol": job.protocol.name,
            "protocol_version": job.protocol.version,
            "seed": str(job.seed),
            "plugin": job.method.plugin,
            "plugin_distribution": job.method.distribution,
            "method_description": job.method.description,
            "method_paper": job.method.paper,
            "git_hash": git_hash(),
            "packages": json.dumps(package_versions(), sort_keys=True),
            "device": device_name(device),
            "dataset_revision": self.splits(job).info.revision,
            "dataset_units": self.splits(job).info.units,
            "dataset_label": self.splits(job).info.label,
            "dataset_source_name": self.splits(job).info.source_name,
            "dataset_guide": self.splits(job).info.guide,
            "test_dataset": job.test.dataset.name if job.test else job.dataset.name,
            "test_split": job.test.split if job.test else "test",
            "test_dataset_revision": self.splits(job).test.info.revision,
            "ddp_world_size": str(_world_size()),
            "metrics_revision": str(METRICS_REVISION),
            "metric_versions": json.dumps({m.name: m.version for m in self.manager.metrics}, sort_keys=True),
        }

    def run_one(self, job: Job) -> JobResult:
        device = select_device(self.device, job.protocol.device.policy)
        tags = self._tags(job, device)
        run_id = self.tracker.start(job.name, tags)
        workdir = Path(tempfile.mkdtemp(prefix="gsr-bench-"))
        status = "KILLED"
        try:
            result = execute_job(
                job,
                self.splits(job),
                device,
                workdir,
                self.results_dir / "checkpoints",
                self.progress,
                self.manager,
            )
            result.tags, result.run_id, result.artifacts = tags, run_id, workdir
            self._log(result)
            status = result.status
            return result
        finally:
            self.tracker.end(run_id, status)
            shutil.rmtree(workdir, ignore_errors=True)

    def run_ray(self, jobs: Sequence[Job], address: str | None = None) -> list[JobResult]:
        """Each job a Ray task (a GPU each where the cluster has GPUs); only this driver logs."""
        try:
            import ray
        except ImportError:
            raise GsrBenchError("the ray executor needs Ray: pip install 'gsr-bench[ray]'") from None

        started_here = not ray.is_initialized()
        if started_here and address is None:
            # a Ray of our own runs only these jobs: at Ray's default nice 15 they would starve
            # behind any other work on the machine, and their throughput would be measured so
            os.environ.setdefault("RAY_worker_niceness", "0")
        if started_here:
            _check_reachable(address)
            _join_ray(ray.init, address)
        try:
            gpus = ray.cluster_resources().get("GPU", 0)
            remote = ray.remote(_remote_job)
            pending: dict[Any, tuple[Job, str, dict[str, str]]] = {}
            device = "cuda" if gpus else "cpu"
            results = []
            for planned in jobs:
                # the keys hash the flags the workers' device applies, not the driver's
                job = replace(planned, numerics=planned.protocol.device.applied(device))
                if job.key != planned.key and not self.force:
                    _, skipped = self.pending([job])
                    if skipped:
                        results += skipped
                        continue
                tags = self._tags(job, select_device("cpu", "cpu"))
                tags["device"] = f"ray:{device}"
                run_id = self.tracker.start(job.name, tags)
                ref = remote.options(num_cpus=1, num_gpus=1 if gpus else 0).remote(
                    job, self.cache_dir, self.results_dir / "checkpoints", device
                )
                pending[ref] = (job, run_id, tags)
            try:
                results += self._collect_ray(ray, pending)
            finally:
                for _, run_id, _ in pending.values():  # interrupted: no run stays RUNNING
                    self.tracker.end(run_id, "KILLED")
            return results
        finally:
            if started_here:
                ray.shutdown()

    def _collect_ray(self, ray: Any, pending: dict[Any, tuple[Job, str, dict[str, str]]]) -> list[JobResult]:
        """Log each Ray task's result as it finishes; a task that raised (its worker died, its data
        could not load) fails its own run and the others go on."""
        results = []
        while pending:
            (done,), _ = ray.wait(list(pending), num_returns=1)
            job, run_id, tags = pending[done]
            try:
                result, artifacts = ray.get(done)
            except Exception as exc:
                cause = getattr(exc, "cause", None) or exc  # a RayTaskError wraps the task's own
                error = f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0]}"
                result, artifacts = JobResult(job, "FAILED", error=error, traceback=str(exc)), {}
                log.warning("%s failed in its Ray task: %s", job.name, error)
            del pending[done]
            workdir = Path(tempfile.mkdtemp(prefix="gsr-bench-"))
            for name, data in artifacts.items():
                (workdir / name).write_bytes(data)
            result.tags, result.run_id, result.artifacts = tags, run_id, workdir
            try:
                self._log(result)
            finally:
                self.tracker.end(run_id, result.status)
                shutil.rmtree(workdir, ignore_errors=True)
            results.append(result)
        return results

    def _log(self, r: JobResult) -> None:
        # the whole resolved protocol, then what the key hashes (the same names agree)
        # (the loader is recorded as chosen.loader.*; other methods' and datasets' tables are theirs)
        protocol = r.job.protocol.to_dict()
        for table in ("methods", "method_train", "loader", "datasets"):
            protocol.pop(table)
        # the method's declared overrides: hashed as the train fields they resolve to
        params = flatten({"protocol": protocol, "method": {"overrides": dict(r.job.method.overrides)}})
        params.update(flatten(r.job.config()))
        params.update(flatten(r.params, "chosen."))
        tags = dict(r.tags)
        if r.error:
            tags["error"] = r.error
        metrics = dict(r.metrics)
        metrics["job_seconds"] = r.seconds
        self.tracker.log(r.run_id, params, metrics, tags)
        self.tracker.log_series(r.run_id, r.series)
        if r.artifacts is not None:
            for path in sorted(r.artifacts.iterdir()):
                self.tracker.log_artifact(r.run_id, path)
        self._publish(r)


RAY_CLIENT_ATTEMPTS = 3


def _join_ray(init: Callable[..., Any], address: str | None, wait_s: float = 2.0) -> None:
    """``ray.init`` with a clear error; a Ray Client (``ray://``) join is tried again when the
    cluster's per-client server died as it started (Ray's fork race, ray-project/ray#63202: a few
    per cent of joins, more on a loaded head), since a fresh attempt forks a fresh server."""
    attempts = RAY_CLIENT_ATTEMPTS if address and address.startswith("ray://") else 1
    for attempt in range(1, attempts + 1):
        try:
            init(address=address, include_dashboard=False, log_to_driver=False)
            return
        except (ConnectionError, RuntimeError, ValueError) as exc:
            server_side = "failure from server" in str(exc)
            if server_side and attempt < attempts:
                log.warning(
                    "the Ray Client server at %s failed to start (attempt %d of %d); trying again",
                    address,
                    attempt,
                    attempts,
                )
                time.sleep(wait_s * attempt)
                continue
            raise GsrBenchError(
                f"cannot join the Ray cluster at {address or 'a local Ray'}: {_ray_reason(exc)}"
            ) from None


def _ray_reason(exc: BaseException) -> str:
    """The line that says why: a server's traceback ends with it, other errors start with it."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    reason = (lines[-1] if "Traceback" in str(exc) else lines[0]) if lines else type(exc).__name__
    if os.environ.get("RAY_AUTH_MODE") != "token":
        reason += (
            " (a cluster with token authentication needs RAY_AUTH_MODE=token and its RAY_AUTH_TOKEN here)"
        )
    return reason[:400]


def _check_reachable(address: str | None) -> None:
    """Fail in seconds on a ``host:port`` nobody listens on: Ray itself retries for minutes."""
    if not address or address == "auto" or "://" in address or ":" not in address:
        return
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except (OSError, ValueError) as exc:
        raise GsrBenchError(f"cannot reach the Ray cluster at {address}: {exc}") from None


def _world_size() -> int:
    from gsr_bench import distributed

    return distributed.world()[1]


def follow(
    manager: PluginManager, jobs: Sequence[Job], cache_dir: Path, checkpoints: Path, device: Any
) -> None:
    """A DDP rank other than 0: trains (and evaluates, unlogged) the jobs rank 0 announces."""
    from gsr_bench import distributed

    by_key = {j.key: j for j in jobs}
    keys: list[str] = distributed.broadcast(None)
    if not keys:
        return
    distributed.barrier()
    loaded: dict[str, Any] = {}
    left = Counter(data_key(by_key[key]) for key in keys)
    for key in keys:
        job = by_key[key]
        tiles = data_key(job)
        if tiles not in loaded:
            loaded[tiles] = load_splits(job, cache_dir)
        splits = loaded[tiles]
        workdir = Path(tempfile.mkdtemp(prefix="gsr-bench-ddp-"))
        try:
            execute_job(job, splits, device, workdir, checkpoints, False, manager)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        left[tiles] -= 1
        if not left[tiles]:
            release_splits(loaded.pop(tiles))


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
    from gsr_bench.execute import execute

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


def _remote_job(
    job: Job, cache_dir: Path, checkpoints: Path, device: str
) -> tuple[JobResult, dict[str, bytes]]:
    """A job in a Ray worker: everything but MLflow; the artifacts travel back as bytes."""
    import torch

    raise_point("remote", job.method.name)
    splits = load_splits(job, cache_dir)
    workdir = Path(tempfile.mkdtemp(prefix="gsr-bench-ray-"))
    try:
        result = execute_job(job, splits, torch.device(device), workdir, checkpoints, False, None)
        return result, {p.name: p.read_bytes() for p in workdir.iterdir()}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

"""The local executor: jobs one at a time on one device, each logged to its own MLflow run.

It skips jobs whose key has a finished run, resumes interrupted ones from their checkpoints,
shares one copy of a data key's tiles between its jobs, and hands jobs to Ray (``executor =
"ray"``) with the same bookkeeping.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

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
            from gsr_bench.execute import execute_job

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
        from gsr_bench.executors import ray as ray_executor

        with ray_executor.connected(address) as ray:
            gpus = ray.cluster_resources().get("GPU", 0)
            remote = ray.remote(ray_executor.remote_job)
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
                for ref, result, artifacts, error in ray_executor.finished(ray, list(pending)):
                    job, run_id, tags = pending.pop(ref)
                    if result is None:  # the task raised: its own run fails, the others go on
                        traceback = artifacts.pop("traceback.txt", b"").decode()
                        result = JobResult(job, "FAILED", error=error, traceback=traceback)
                        log.warning("%s failed in its Ray task: %s", job.name, error)
                    results.append(self._finish_remote(result, run_id, tags, artifacts))
            finally:
                for _, run_id, _ in pending.values():  # interrupted: no run stays RUNNING
                    self.tracker.end(run_id, "KILLED")
            return results

    def _finish_remote(
        self, result: JobResult, run_id: str, tags: dict[str, str], artifacts: dict[str, bytes]
    ) -> JobResult:
        """A Ray task's result logged to the run the driver opened for it, with its artifacts."""
        workdir = Path(tempfile.mkdtemp(prefix="gsr-bench-"))
        for name, data in artifacts.items():
            (workdir / name).write_bytes(data)
        result.tags, result.run_id, result.artifacts = tags, run_id, workdir
        try:
            self._log(result)
        finally:
            self.tracker.end(run_id, result.status)
            shutil.rmtree(workdir, ignore_errors=True)
        return result

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


def _world_size() -> int:
    from gsr_bench import distributed

    return distributed.world()[1]

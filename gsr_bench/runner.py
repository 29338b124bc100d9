"""Jobs and their execution.

A job is (method, dataset, protocol, seed). Its key hashes what its metrics depend on, field by
field (:mod:`gsr_bench.jobkeys`): the method's version, options and code fingerprint, what the
dataset is (never where it sits), the protocol's fields that change numbers, the seed and the
device flags that take effect. A finished MLflow run with that key means the job is done.
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gsr_bench.errors import GsrBenchError
from gsr_bench.faults import raise_point
from gsr_bench.jobkeys import EVAL, TRAIN, digest, protocol_part, without_code
from gsr_bench.plugins import PluginManager
from gsr_bench.protocol import Protocol
from gsr_bench.registry import DatasetSpec, MethodSpec, check_factory
from gsr_bench.tracking import JOB_KEY_TAG, Tracker, flatten

CELL_KEY_TAG = "cell_key"  # the job key without the code fingerprint
CODE_TAG = "code_fingerprint"

log = logging.getLogger(__name__)

CACHE_ENV = "GSR_BENCH_CACHE"


def cache_dir(results_dir: Path) -> Path:
    """Prepared data outlives results: GSR_BENCH_CACHE lets several result folders share it."""
    return Path(os.environ.get(CACHE_ENV) or Path(results_dir) / "cache")


@dataclass(frozen=True)
class Job:
    """One (method, dataset, protocol, seed) as planned, with everything its keys hash.

    Attributes:
        protocol: with the method's declared overrides and the protocol's own per-method
            training table applied.
        dataset_options: the dataset factory's keywords (a ``root`` among them: local, never
            hashed or recorded).
        dataset_info: what the dataset reports of itself (:meth:`GSRDataset.describe`): its
            options that change the data, its content revision, scale, units.
        numerics: the device flags that take effect where the job runs (bf16, compile, ...).
        code: the method's code fingerprint (:mod:`gsr_bench.fingerprint`).
    """

    method: MethodSpec
    dataset: DatasetSpec
    protocol: Protocol
    seed: int
    method_options: Mapping[str, Any] = field(default_factory=dict)
    dataset_options: Mapping[str, Any] = field(default_factory=dict)
    dataset_info: Mapping[str, Any] = field(default_factory=dict)
    test: TestOn | None = None  # evaluated on another dataset than it trains on
    numerics: Mapping[str, bool] = field(default_factory=dict)
    code: str = ""

    @property
    def name(self) -> str:
        return f"{self.method.name}/{self.datasets_label}/{self.protocol.name}/seed{self.seed}"

    @property
    def datasets_label(self) -> str:
        """``train`` or ``train->test`` (with ``:split`` when that is not the test split)."""
        if self.test is None:
            return self.dataset.name
        split = f":{self.test.split}" if self.test.split != "test" else ""
        return f"{self.dataset.name}->{self.test.dataset.name}{split}"

    def train_config(self) -> dict[str, Any]:
        """Exactly what changes the trained weights (:mod:`gsr_bench.jobkeys`)."""
        info = self.dataset_info
        return {
            "method": {
                "name": self.method.name,
                "version": self.method.version,
                "code": self.code,
                "options": dict(sorted({**self.method.options, **self.method_options}.items())),
            },
            "dataset": _dataset_identity(self.dataset, info),
            "protocol": protocol_part(self.protocol, TRAIN),
            "numerics": dict(sorted(self.numerics.items())),
            "seed": self.seed,
        }

    def config(self) -> dict[str, Any]:
        """What the metrics depend on: the training's fields, the evaluation's and the test
        dataset's; what the key hashes, what a record holds, what MLflow gets as params."""
        return {
            **self.train_config(),
            "eval": protocol_part(self.protocol, EVAL),
            **({"test": self.test.config()} if self.test else {}),
        }

    @property
    def train_key(self) -> str:
        """The key of the training alone: jobs that train alike share their checkpoint, so a
        model trained once is tested on other datasets without training again."""
        return digest(self.train_config())[:16]

    @property
    def key(self) -> str:
        return digest(self.config())[:16]

    @property
    def cell_key(self) -> str:
        """The key without the code fingerprint: a rerun finds the run its code edit replaces."""
        return digest(without_code(self.config()))[:16]


def _dataset_identity(spec: DatasetSpec, info: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": spec.name,
        "version": spec.version,
        "options": dict(info.get("options", {})),
        "revision": info.get("content_revision", ""),
        "scale": info.get("scale"),
    }


@dataclass(frozen=True)
class TestOn:
    """The dataset and split a job is evaluated on, when not its own test split."""

    dataset: DatasetSpec
    split: str = "test"
    options: Mapping[str, Any] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)

    def config(self) -> dict[str, Any]:
        return {"dataset": _dataset_identity(self.dataset, self.info), "split": self.split}


def parse_option(pair: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as TOML where it parses (``3``, ``true``, ``[1, 2]``)."""
    import tomllib

    key, sep, text = pair.partition("=")
    if not sep or not key.strip():
        raise GsrBenchError(f"dataset option {pair!r} must look like KEY=VALUE")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    return key.strip(), value


def dataset_options(
    spec: DatasetSpec,
    protocol: Protocol,
    root: str | None = None,
    pairs: Sequence[str] | None = None,
    strict: bool = True,
) -> dict[str, Any]:
    """The factory keywords of ``spec``: the protocol's ``[datasets.NAME]``, then the command
    line's ``-O KEY=VALUE``, and ``--root`` for a dataset whose factory takes a ``root``.
    ``strict=False`` drops command-line options the factory does not take (a train and a test
    dataset share the command line)."""
    import inspect

    options = dict(protocol.datasets.get(spec.name, {}))
    given = dict(parse_option(p) for p in pairs or [])
    params = _factory_params(spec)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if not strict:
        given = {k: v for k, v in given.items() if k in params or takes_any}
    options.update(given)
    if root and "root" in params:
        options["root"] = root
    elif root and strict and not takes_any:
        raise GsrBenchError(
            f"dataset {spec.name!r} reads no folder: --root is for datasets read from one "
            "(biomassters); drop it"
        )
    unknown = [k for k in options if params and k not in params and not takes_any]
    if unknown:
        allowed = ", ".join(n for n in params if n != "self") or "none"
        raise GsrBenchError(
            f"dataset {spec.name!r} has no option {', '.join(map(repr, unknown))} (its options: {allowed})"
        )
    for key, value in options.items():
        _check_option_type(f"dataset {spec.name!r}", key, value, params.get(key))
    return options


def _check_option_type(owner: str, key: str, value: Any, param: Any) -> None:
    """A value of another type than the parameter's default (``-O tile=abc`` for an int), in
    one line naming the option and the type it takes."""
    import inspect

    default = getattr(param, "default", inspect.Parameter.empty)
    if default is inspect.Parameter.empty or default is None:
        return
    kind = type(default)
    fits = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        fits = True
    if not fits and kind in (bool, int, float, str):
        raise GsrBenchError(
            f"{owner} option {key!r} takes {kind.__name__} (default {default!r}), got {value!r}"
        )


def _check_sizes(dataset: Any, protocol: Protocol, method: str) -> None:
    """Crops and patches on the source grid, or one line naming the values (never a reshape
    error deep inside a method)."""
    scale, crop, patch = dataset.scale, protocol.task.crop, protocol.train.patch_size
    for key, value in (("task.crop", crop), ("train.patch_size", patch)):
        if value % scale:
            lower, upper = value - value % scale, value - value % scale + scale
            raise GsrBenchError(
                f"protocol {protocol.name!r}: {key} {value} is not a multiple of the scale {scale} of "
                f"dataset {dataset.name!r} (for method {method!r}); use {lower or upper} or {upper} "
                "in a protocol file (--protocol FILE.toml)"
            )


def time_series_options(dataset: Any, options: Mapping[str, Any]) -> dict[str, Any] | None:
    """The options a temporal method runs ``dataset`` with: the given ones when its guide already
    has several periods, else with the dataset's :attr:`~gsr_bench.dataset.GSRDataset.time_series`
    options; ``None`` when it has no time series."""
    from gsr_bench.data.channels import periods

    if len(periods(dataset.guide_channels)) > 1:
        return dict(options)
    if not dataset.time_series:
        return None
    return {**options, **dataset.time_series}


def plan_jobs(
    manager: PluginManager,
    methods: Sequence[str],
    datasets: Sequence[str],
    protocol: Protocol,
    seeds: Sequence[int] | None = None,
    root: str | None = None,
    option_pairs: Sequence[str] | None = None,
    test_dataset: str | None = None,
    test_split: str = "test",
    skip_unfit: bool = False,
    device: str | None = None,
) -> list[Job]:
    """Every (method, dataset, seed) under ``protocol``; unknown names, broken factories and
    sizes that do not fit a dataset's scale fail before anything runs. With ``test_dataset``,
    each job trains on its dataset and is evaluated on ``test_split`` of ``test_dataset``.

    A temporal method runs on the dataset's time-series guide; on a dataset without one it is an
    error, or skipped with a warning when ``skip_unfit`` (``--all``). ``device`` (default: each
    protocol's policy) decides which numerics flags take effect, which the keys hash."""
    from gsr_bench.fingerprint import code_fingerprint

    method_specs = [manager.methods.get(m) for m in methods]
    dataset_specs = [manager.datasets.get(d) for d in datasets]
    for spec in method_specs:  # a typo in a plugin fails here, in one line
        check_factory("method", spec)
    t_spec = manager.datasets.get(test_dataset) if test_dataset is not None else None
    t_base = dataset_options(t_spec, protocol, root, option_pairs) if t_spec else {}
    made: dict[str, Any] = {}

    def create(spec: DatasetSpec, options: dict[str, Any]) -> Any:
        key = json.dumps([spec.name, options], sort_keys=True, default=str)
        if key not in made:
            made[key] = spec.create(**options)
        return made[key]

    def variant(spec: DatasetSpec, options: dict[str, Any], temporal: bool) -> tuple[Any, ...] | None:
        """(options, dataset, its description) as a method of this kind runs it."""
        dataset = create(spec, options)
        if temporal:
            ts = time_series_options(dataset, options)
            if ts is None:
                return None
            options, dataset = ts, create(spec, ts)
        described = dataset.describe()
        _check_no_paths(spec, described)
        table = protocol.datasets.get(spec.name, {})
        described["variant"] = _variant(spec, dataset, described["options"], table)
        return options, dataset, described

    jobs = []
    for d in dataset_specs:
        base = dataset_options(d, protocol, root, option_pairs, strict=t_spec is None)
        for m in method_specs:
            found = variant(d, base, m.temporal)
            t_found = variant(t_spec, t_base, m.temporal) if t_spec else None
            if found is None or (t_spec and t_found is None):
                name = d.name if found is None else t_spec.name  # type: ignore[union-attr]
                message = (
                    f"method {m.name!r} reads a time series of guide images; dataset {name!r} has one "
                    "guide image and declares no time series (GSRDataset.time_series)"
                )
                if not skip_unfit:
                    raise GsrBenchError(message)
                log.warning("skipped: %s", message)
                continue
            options, dataset, described = found
            test = TestOn(t_spec, test_split, t_found[0], t_found[2]) if t_spec and t_found else None
            proto = protocol.for_method(m.name, m.overrides)
            _check_sizes(dataset, proto, m.name)
            chosen = list(seeds if seeds is not None else proto.seeds)
            numerics = proto.device.applied(select_device(device, proto.device.policy).type)
            code = code_fingerprint(m.factory)
            method_options = dict(proto.methods.get(m.name, {}))
            _check_method_options(m, method_options, proto.name)
            for seed in chosen if m.seeded else chosen[:1]:
                jobs.append(
                    Job(m, d, proto, int(seed), method_options, options, described, test, numerics, code)
                )
    return jobs


def _check_method_options(spec: MethodSpec, options: Mapping[str, Any], protocol: str) -> None:
    """The protocol's ``[methods.NAME]`` table against the factory's keywords, before any job
    runs: a misspelt option is one line with the closest names, not a TypeError mid-run."""
    import difflib
    import inspect

    try:
        params = dict(inspect.signature(check_factory("method", spec)).parameters)
    except (TypeError, ValueError):
        return
    params.pop("task", None)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    for key, value in options.items():
        if key not in params:
            close = difflib.get_close_matches(key, list(params), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(params) or "none"
            raise GsrBenchError(
                f"protocol {protocol!r} [methods.{spec.name}]: method {spec.name!r} has no option "
                f"{key!r}{hint} (its options: {known})"
            )
        _check_option_type(f"method {spec.name!r}", key, value, params[key])


def _factory_params(spec: DatasetSpec) -> Mapping[str, Any]:
    """The keyword parameters of a dataset's factory (none known for an opaque callable)."""
    import inspect

    try:
        return inspect.signature(check_factory("dataset", spec)).parameters
    except (TypeError, ValueError):
        return {}


def _variant(
    spec: DatasetSpec, dataset: Any, options: Mapping[str, Any], table: Mapping[str, Any]
) -> dict[str, Any]:
    """The options that differ from the dataset's defaults under the protocol (``-O
    test_cols=5``): a leaderboard section is labelled by them. The time-series options are left
    to the guide's label (``monthly composite``)."""
    import inspect

    params = _factory_params(spec)
    defaults = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    defaults.update(spec.options)
    defaults.update(table)
    series = set(dataset.time_series or {})
    return {k: v for k, v in sorted(options.items()) if k not in series and defaults.get(k, v) != v}


def _check_no_paths(spec: DatasetSpec, described: Mapping[str, Any]) -> None:
    """A key names what the data is, never where it sits: the same job on two machines must
    have one key. A dataset whose options hold a path is a plugin bug, said in one line."""
    for key, value in dict(described.get("options", {})).items():
        text = str(value)
        if isinstance(value, str | Path) and (os.path.isabs(text) or text.startswith("~")):
            raise GsrBenchError(
                f"dataset {spec.name!r} of plugin {spec.plugin or '?'!r} reports option {key!r} = "
                f"{text!r}, a path: GSRDataset.options() must name what the data is (its "
                "content_revision() says which files), never where it sits"
            )


@dataclass
class JobResult:
    job: Job
    status: str  # FINISHED | FAILED | SKIPPED
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    error: str = ""
    traceback: str = ""
    artifacts: Path | None = None
    run_id: str = ""
    seconds: float = 0.0
    series: list[tuple[str, int, float]] = field(default_factory=list)  # (metric, step, value)


def select_device(requested: str | None, policy: str) -> Any:
    import torch

    choice = requested or policy
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise GsrBenchError(f"device {choice!r} requested but CUDA is not available here; use --device cpu")
    return torch.device(choice)


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
        key = _data_key(job)
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
        left = Counter(_data_key(j) for j in todo)
        bar = tqdm(todo, unit="job", desc="jobs", disable=not self.progress, dynamic_ncols=True)
        for job in bar:
            bar.set_postfix_str(job.name)
            results.append(self.run_one(job))
            key = _data_key(job)
            left[key] -= 1
            if not left[key]:  # its last job: the tiles it kept resident go
                self.release(job)
        return results

    def release(self, job: Job) -> None:
        """Forget the splits of ``job``'s data key, with the tiles they keep on the device."""
        splits = self._splits.pop(_data_key(job), None)
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


def _data_key(job: Job) -> str:
    """Jobs with equal keys read the same tiles: the dataset with its options, the protocol's
    task and data fields (what a split is read and cropped with), and the test set. Not the
    training fields: methods with their own budget share one copy of the splits."""
    import dataclasses

    test = job.test.config() if job.test else None
    proto = job.protocol
    parts = [job.dataset.name, dict(job.dataset_options), dataclasses.asdict(proto.task)]
    return json.dumps([*parts, dataclasses.asdict(proto.data), test], sort_keys=True, default=str)


def release_splits(splits: Any) -> None:
    """Free the tiles ``splits`` keep in memory (on a GPU: the device tier's whole train split)."""
    for tiles in {id(t): t for t in (splits.train, splits.val, splits.test)}.values():
        tiles.release()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def load_splits(job: Job, cache_dir: Path, progress: bool = False, workers: int | None = 1) -> Any:
    """The job's tiles; Ray workers and DDP ranks (the defaults) prepare nothing in parallel."""
    import dataclasses

    splits = job.dataset.create(**job.dataset_options).load(
        job.protocol, cache_dir, progress=progress, workers=workers
    )
    if job.test is None:
        return splits
    other = job.test.dataset.create(**job.test.options)
    test = other.load_test(job.protocol, cache_dir, job.test.split, splits, progress, workers)
    return dataclasses.replace(splits, test=test)


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
    left = Counter(_data_key(by_key[key]) for key in keys)
    for key in keys:
        job = by_key[key]
        data_key = _data_key(job)
        if data_key not in loaded:
            loaded[data_key] = load_splits(job, cache_dir)
        splits = loaded[data_key]
        workdir = Path(tempfile.mkdtemp(prefix="gsr-bench-ddp-"))
        try:
            execute_job(job, splits, device, workdir, checkpoints, False, manager)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        left[data_key] -= 1
        if not left[data_key]:
            release_splits(loaded.pop(data_key))


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
    from gsr_bench.evaluate import execute

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

"""Jobs: what one (method, dataset, protocol, seed) is, its keys, its result, and its tiles.

A job's key hashes what its metrics depend on, field by field (:mod:`gsr_bench.jobkeys`): the
method's version, options and code fingerprint, what the dataset is (never where it sits), the
protocol's fields that change numbers, the seed and the device flags that take effect. A
finished MLflow run with that key means the job is done.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gsr_bench.jobkeys import EVAL, TRAIN, digest, protocol_part, without_code
from gsr_bench.protocol import Protocol
from gsr_bench.registry import DatasetSpec, MethodSpec

CELL_KEY_TAG = "cell_key"  # the job key without the code fingerprint
CODE_TAG = "code_fingerprint"
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


def data_key(job: Job) -> str:
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

    from gsr_bench.data import store

    dataset = job.dataset.create(**job.dataset_options)
    splits = store.load(dataset, job.protocol, cache_dir, progress=progress, workers=workers)
    if job.test is None:
        return splits
    other = job.test.dataset.create(**job.test.options)
    test = store.load_test(other, job.protocol, cache_dir, job.test.split, splits, progress, workers)
    return dataclasses.replace(splits, test=test)

"""Result records: one schema-versioned JSON file per finished job, under ``leaderboard/results/``.

The committed records are the published results and the leaderboard is generated from them alone:
a contributor who runs one method adds its records beside the published ones, and submits exactly
those in a pull request, which ``gsr-bench leaderboard --check`` validates. A record names what the
job ran (its configuration, the method's code fingerprint and distribution), never a path of the
machine it ran on.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gsr_bench.record_schema import SCHEMA, SCHEMA_VERSION, problems

if TYPE_CHECKING:
    from gsr_bench.jobs import Job, JobResult

RECORDS_DIR = "results"
BUILTIN_DISTRIBUTION = "gsr-bench"


def config_hash(config: Mapping[str, Any]) -> str:
    """The SHA-256 of a job's resolved configuration; its first 16 digits are the job key."""
    from gsr_bench.jobkeys import digest

    return digest(config)


def protocol_variant(job: Job) -> dict[str, Any]:
    """The protocol fields a job ran with that differ from its built-in protocol of the same
    name and version (``--project-to-source``): its results get their own section."""
    from gsr_bench.errors import GsrBenchError
    from gsr_bench.jobkeys import EVAL, TRAIN, protocol_part
    from gsr_bench.plugins import get_plugin_manager

    try:
        base = get_plugin_manager().load_protocol(job.protocol.name)
        base = base.for_method(job.method.name, job.method.overrides)
    except GsrBenchError:
        return {}
    if base.version != job.protocol.version:
        return {}
    out = {}
    for which in (TRAIN, EVAL):
        ours, theirs = protocol_part(job.protocol, which), protocol_part(base, which)
        out.update({k: v for k, v in ours.items() if theirs.get(k) != v})
    return out


def record_of(result: JobResult) -> dict[str, Any]:
    """The record of a finished job, from what its MLflow run logged. It names no path of the
    machine it ran on: what the data is, never where it sat."""
    from gsr_bench.provenance import distribution_info

    job, tags = result.job, result.tags
    config = json.loads(json.dumps(job.config(), default=str))
    dist = distribution_info(job.method.distribution)
    test_info = job.test.info if job.test else job.dataset_info
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "job_key": job.key,
        "cell_key": job.cell_key,
        "config_hash": config_hash(config),
        "method": {
            "name": job.method.name,
            "version": job.method.version,
            "family": job.method.family,
            "description": job.method.description,
            "paper": job.method.paper,
            "plugin": job.method.plugin,
            "distribution": job.method.distribution,
            "distribution_version": dist["version"],
            "code": job.code,
            "install": {"url": dist["url"], "requirement": dist["requirement"]},
        },
        "dataset": {
            "name": job.dataset.name,
            "version": job.dataset.version,
            "revision": tags.get("dataset_revision", ""),
            "content_revision": config["dataset"]["revision"],
            "units": tags.get("dataset_units", ""),
            "label": tags.get("dataset_label", "target"),
            "source_name": tags.get("dataset_source_name", "source"),
            "guide": tags.get("dataset_guide", ""),
            "options": config["dataset"]["options"],
            "variant": json.loads(json.dumps(job.dataset_info.get("variant", {}), default=str)),
        },
        "test": {
            "dataset": tags.get("test_dataset", job.dataset.name),
            "split": tags.get("test_split", "test"),
            "revision": tags.get("test_dataset_revision", ""),
            "content_revision": str(test_info.get("content_revision", "")),
            "options": json.loads(json.dumps(test_info.get("options", {}), default=str)),
        },
        "protocol": {
            "name": job.protocol.name,
            "version": job.protocol.version,
            "variant": json.loads(json.dumps(protocol_variant(job), default=str)),
        },
        "seed": job.seed,
        "config": config,
        "provenance": {
            "git_hash": tags.get("git_hash", ""),
            "packages": json.loads(tags.get("packages", "{}")),
            "device": tags.get("device", ""),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "mlflow_run_id": result.run_id,
        },
        "metrics": {
            k: float(v) for k, v in sorted({**result.metrics, "job_seconds": result.seconds}.items())
        },
        "metrics_revision": int(tags.get("metrics_revision", "1")),
        **({"metric_info": extra} if (extra := result.params.get("extra_metrics")) else {}),
    }


def _options_text(options: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in options.items())


def pair_label(train: str, test: str, split: str = "test", revision: str = "", guide: str = "") -> str:
    """A leaderboard section's dataset: ``train``, or ``train → test`` when a job was evaluated
    on another dataset, with which of its splits (when not its test split) and which part of it
    (a subset's revision: two folders of samples are two sections); then the guide when it is
    not the dataset's default (``biomassters-synthetic, monthly composite``)."""
    suffix = f", {guide}" if guide else ""
    if train == test and split == "test":
        return train + suffix
    notes = [f"{split} split"] if split != "test" else []
    notes += [revision] if revision and revision != "official" else []
    return f"{train} → {test}" + (f" ({', '.join(notes)})" if notes else "") + suffix


def slug(text: str) -> str:
    """A file name part: ``a → b (train split)`` -> ``a-to-b-train-split``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text.replace(" → ", "-to-")).strip("-")


def section_of(record: Mapping[str, Any]) -> str:
    """The label of the leaderboard section a record's row goes to (:func:`pair_label`),
    with the dataset options and protocol fields it ran with that differ from the defaults."""

    test, dataset = record["test"], record["dataset"]
    label = pair_label(
        dataset["name"], test["dataset"], test["split"], test.get("revision", ""), dataset.get("guide", "")
    )
    differs = {**dataset.get("variant", {}), **record["protocol"].get("variant", {})}
    return f"{label} [{_options_text(differs)}]" if differs else label


def section_id(record: Mapping[str, Any]) -> str:
    """What makes two records comparable: the dataset with every option and its content, the
    test dataset, split and content, the guide, the protocol and version, and the evaluation
    fields. Records of one section id are ranked together; of two, never."""
    from gsr_bench.jobkeys import digest

    config, test = record["config"], record["test"]
    parts = {
        "dataset": {k: v for k, v in config["dataset"].items()},
        "test": config.get("test") or [test["dataset"], test["split"], test.get("content_revision", "")],
        "guide": record["dataset"].get("guide", ""),
        "protocol": [record["protocol"]["name"], record["protocol"]["version"]],
        "eval": config.get("eval", {}),
        "variant": record["protocol"].get("variant", {}),
    }
    return digest(parts)[:12]


def record_path(root: Path, record: Mapping[str, Any]) -> Path:
    """``ROOT/SECTION/PROTOCOL/METHOD-seedN-KEY.json``, ``SECTION`` the leaderboard section's
    label (``DATASET``, or ``DATASET-to-TEST-...`` for a job tested on another dataset)."""

    name = f"{slug(record['method']['name'])}-seed{record['seed']}-{record['job_key']}.json"
    return Path(root) / slug(section_of(record)) / slug(record["protocol"]["name"]) / name


def write_record(root: Path, record: Mapping[str, Any]) -> Path:
    """Write ``record``; a record of the same job under other code (the same cell key: an edit
    without a version bump, rerun) is superseded by it and removed."""
    path = record_path(root, record)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)  # a record is whole or absent
    prefix = f"{path.name.rsplit('-', 1)[0]}-"
    for other in path.parent.glob(f"{prefix}*.json"):
        if other != path:
            try:
                if json.loads(other.read_text()).get("cell_key") == record.get("cell_key"):
                    other.unlink()
            except (OSError, ValueError):
                continue
    return path


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str
    severity: str = "error"  # "warning": reported, does not fail the check

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


def schema_problems(record: Any) -> list[str]:
    if not isinstance(record, dict):
        return ["not a JSON object"]
    if record.get("schema") != SCHEMA:
        return [f"schema {record.get('schema')!r}, expected {SCHEMA!r}"]
    if record.get("schema_version") != SCHEMA_VERSION:
        return [f"schema_version {record.get('schema_version')!r}; this gsr-bench reads {SCHEMA_VERSION}"]
    found = problems(record)
    if found:
        return found
    if "rmse" not in record["metrics"]:
        found.append("metrics lack 'rmse'")
    digest = config_hash(record["config"])
    if record["config_hash"] != digest or record["job_key"] != digest[:16]:
        found.append("config_hash and job_key do not match the recorded config (edited by hand?)")
    return found


def load(root: Path) -> Iterator[tuple[Path, Any]]:
    """Every ``*.json`` under ``root`` as ``(path, parsed)``; ``parsed`` is the error message of a
    file that is not JSON."""
    for path in sorted(Path(root).rglob("*.json")):
        try:
            yield path, json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            yield path, f"not readable JSON ({exc})"


def valid_records(root: Path) -> list[dict[str, Any]]:
    """The records that pass the schema check (the others are ``check``'s to report)."""
    return [r for _, r in load(root) if not isinstance(r, str) and not schema_problems(r)]


def leaderboard_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as one row of the leaderboard's table; ``run_id`` finds its figures' tiles in a
    local MLflow store that holds the run."""
    train, test = record["dataset"]["name"], record["test"]
    return {
        "run_id": record["provenance"].get("mlflow_run_id", ""),
        "job_key": record["job_key"],
        "section": section_id(record),
        "dataset": section_of(record),
        "train_dataset": train,
        "test_dataset": test["dataset"],
        "test_split": test["split"],
        "protocol": record["protocol"]["name"],
        "protocol_version": record["protocol"]["version"],
        "dataset_version": record["dataset"]["version"],
        "method": record["method"]["name"],
        "method_version": record["method"]["version"],
        "family": record["method"]["family"],
        "seed": int(record["seed"]),
        "description": record["method"].get("description", ""),
        "distribution": record["method"].get("distribution", ""),
        "units": record["dataset"]["units"],
        "label": record["dataset"]["label"],
        "source_name": record["dataset"].get("source_name", "source"),
        **record["metrics"],
    }

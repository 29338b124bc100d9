"""Result records: one schema-versioned JSON file per finished job, under ``leaderboard/results/``.

The committed records are the published results: the leaderboard is generated from them together
with the local MLflow store, so a contributor who runs one method adds rows beside the published
ones instead of replacing them, and submits the new records in a pull request, which
``gsr-bench leaderboard --check`` validates.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gsr_bench.plugins import PluginManager
    from gsr_bench.runner import JobResult

SCHEMA = "gsr-bench/result"
SCHEMA_VERSION = 1
RECORDS_DIR = "results"

# field -> type; nested tables are checked field by field
_REQUIRED: dict[str, Any] = {
    "schema": str,
    "schema_version": int,
    "job_key": str,
    "config_hash": str,
    "seed": int,
    "config": dict,
    "metrics": dict,
    "method": {"name": str, "version": str, "family": str, "distribution": str},
    "dataset": {"name": str, "version": str, "units": str, "label": str},
    "test": {"dataset": str, "split": str},
    "protocol": {"name": str, "version": str},
    "provenance": {"git_hash": str, "packages": dict, "device": str, "created_at": str},
}


def config_hash(config: Mapping[str, Any]) -> str:
    """The SHA-256 of a job's resolved configuration; its first 16 digits are the job key."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def record_of(result: JobResult) -> dict[str, Any]:
    """The record of a finished job, from what its MLflow run logged."""
    job, tags = result.job, result.tags
    config = json.loads(json.dumps(job.config(), default=str))
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "job_key": job.key,
        "config_hash": config_hash(job.config()),
        "method": {
            "name": job.method.name,
            "version": job.method.version,
            "family": job.method.family,
            "description": job.method.description,
            "paper": job.method.paper,
            "plugin": job.method.plugin,
            "distribution": job.method.distribution,
        },
        "dataset": {
            "name": job.dataset.name,
            "version": job.dataset.version,
            "revision": tags.get("dataset_revision", ""),
            "units": tags.get("dataset_units", ""),
            "label": tags.get("dataset_label", "target"),
            "source_name": tags.get("dataset_source_name", "source"),
            "guide": tags.get("dataset_guide", ""),
            "options": config["dataset"].get("options", {}),
        },
        "test": {
            "dataset": tags.get("test_dataset", job.dataset.name),
            "split": tags.get("test_split", "test"),
            "revision": tags.get("test_dataset_revision", ""),
        },
        "protocol": {"name": job.protocol.name, "version": job.protocol.version},
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
    }


def section_of(record: Mapping[str, Any]) -> str:
    """The leaderboard section a record's row goes to (``leaderboard.pair_label``)."""
    from gsr_bench.leaderboard import pair_label

    test = record["test"]
    return pair_label(
        record["dataset"]["name"],
        test["dataset"],
        test["split"],
        test.get("revision", ""),
        record["dataset"].get("guide", ""),
    )


def record_path(root: Path, record: Mapping[str, Any]) -> Path:
    """``ROOT/SECTION/PROTOCOL/METHOD-seedN-KEY.json``, ``SECTION`` the leaderboard section's
    dataset (``DATASET``, or ``DATASET-to-TEST-...`` for a job tested on another dataset)."""
    from gsr_bench.leaderboard import slug

    section = section_of(record)
    name = f"{slug(record['method']['name'])}-seed{record['seed']}-{record['job_key']}.json"
    return Path(root) / slug(section) / slug(record["protocol"]["name"]) / name


def write_record(root: Path, record: Mapping[str, Any]) -> Path:
    path = record_path(root, record)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)  # a record is whole or absent
    return path


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str
    severity: str = "error"  # "warning": reported, does not fail the check

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


def _schema_problems(record: Any) -> list[str]:
    if not isinstance(record, dict):
        return ["not a JSON object"]
    if record.get("schema") != SCHEMA:
        return [f"schema {record.get('schema')!r}, expected {SCHEMA!r}"]
    if record.get("schema_version") != SCHEMA_VERSION:
        return [f"schema_version {record.get('schema_version')!r}; this gsr-bench reads {SCHEMA_VERSION}"]
    found = []
    for key, kind in _REQUIRED.items():
        value = record.get(key)
        if isinstance(kind, dict):
            if not isinstance(value, dict):
                found.append(f"{key!r} missing or not an object")
                continue
            found += [
                f"{key}.{k} missing or not {t.__name__}"
                for k, t in kind.items()
                if not isinstance(value.get(k), t)
            ]
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            found.append(f"{key!r} missing or not {kind.__name__}")
    if found:
        return found
    bad = [k for k, v in record["metrics"].items() if not isinstance(v, int | float) or isinstance(v, bool)]
    if bad:
        found.append(f"metrics not numbers: {', '.join(bad[:5])}")
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
    return [r for _, r in load(root) if not isinstance(r, str) and not _schema_problems(r)]


def _identity(record: Mapping[str, Any]) -> tuple[str, ...]:
    """What one leaderboard cell is about: two records of it can only disagree."""
    test = record["test"]
    return (
        record["dataset"]["name"],
        test["dataset"],
        test["split"],
        test.get("revision", ""),
        record["dataset"].get("guide", ""),
        record["protocol"]["name"],
        record["protocol"]["version"],
        record["method"]["name"],
        record["method"]["version"],
        str(record["seed"]),
    )


def check(root: Path, manager: PluginManager | None = None) -> list[Problem]:
    """Schema, duplicates and staleness of every record under ``root``.

    A record is stale when its method's installed version or its built-in protocol's version is
    newer than the one it was run with: its row would be superseded, so rerun the job instead.
    """
    from gsr_bench.protocol import list_protocols

    problems: list[Problem] = []
    good: list[tuple[Path, dict[str, Any]]] = []
    for path, record in load(root):
        if isinstance(record, str):
            problems.append(Problem(path, record))
            continue
        found = _schema_problems(record)
        problems += [Problem(path, message) for message in found]
        if not found:
            good.append((path, record))
            if path != record_path(root, record):
                problems.append(Problem(path, f"should be at {record_path(root, record)}", "warning"))
    keys = Counter(r["job_key"] for _, r in good)
    cells = Counter(_identity(r) for _, r in good)
    protocols = {p.name: p.version for p in list_protocols()}
    for path, r in good:
        if keys[r["job_key"]] > 1:
            problems.append(Problem(path, f"duplicate: another record has job key {r['job_key']}"))
        elif cells[_identity(r)] > 1:
            problems.append(
                Problem(
                    path, "duplicate: another record has the same method, version, dataset, protocol and seed"
                )
            )
        m = r["method"]
        if manager is not None:
            if m["name"] not in manager.methods:
                problems.append(Problem(path, f"method {m['name']!r} is not installed here", "warning"))
            elif manager.methods.get(m["name"]).version != m["version"]:
                now = manager.methods.get(m["name"]).version
                problems.append(
                    Problem(
                        path, f"stale: method {m['name']!r} is at version {now}, the record at {m['version']}"
                    )
                )
        p = r["protocol"]
        if p["name"] in protocols and protocols[p["name"]] != p["version"]:
            now = protocols[p["name"]]
            message = f"stale: protocol {p['name']!r} is at version {now}, the record at {p['version']}"
            problems.append(Problem(path, message))
    return problems


def leaderboard_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as the leaderboard's ``collect`` sees an MLflow run (no artifacts: no run id)."""
    created = time.mktime(time.strptime(record["provenance"]["created_at"][:19], "%Y-%m-%dT%H:%M:%S"))
    train, test = record["dataset"]["name"], record["test"]
    return {
        "run_id": "",
        "start_time": int(created * 1000),
        "job_key": record["job_key"],
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

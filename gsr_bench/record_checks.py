"""Checking result records against the installed code: schema, machine paths, duplicates,
staleness; and pruning the records a newer version superseded (``gsr-bench leaderboard
--check`` and ``--prune``)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gsr_bench.plugins import PluginManager
from gsr_bench.records import (
    BUILTIN_DISTRIBUTION,
    Problem,
    load,
    record_path,
    schema_problems,
    section_id,
)


def _cell(record: Mapping[str, Any]) -> tuple[str, ...]:
    """One leaderboard cell: two records of it can only disagree."""
    m = record["method"]
    return (section_id(record), m["name"], m["version"], str(record["seed"]))


_PATH = re.compile(r"^(/|~|[A-Za-z]:[\\/]|file:)")


def _paths(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """``(field, text)`` of every string in ``value`` that is a path of a machine."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _paths(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _paths(v, f"{where}[{i}]")
    elif isinstance(value, str) and _PATH.match(value) and len(value) > 1:
        yield where, value


def staleness(
    record: Mapping[str, Any], manager: PluginManager | None, codes: dict[str, str] | None = None
) -> str:
    """Why ``record`` no longer holds for the installed code (``""`` when it does): its method,
    dataset or built-in protocol is at another version, or its method's code changed under the
    same version. A method or dataset that is not installed cannot be judged here."""
    from gsr_bench.fingerprint import code_fingerprint
    from gsr_bench.metrics import METRICS_REVISION
    from gsr_bench.protocol import list_protocols

    m, d, p = record["method"], record["dataset"], record["protocol"]
    if manager is not None:
        if m["name"] in manager.methods:
            spec = manager.methods.get(m["name"])
            if spec.version != m["version"]:
                return f"method {m['name']!r} is at version {spec.version}, the record at {m['version']}"
            codes = {} if codes is None else codes  # one fingerprint a method, not one a record
            if spec.name not in codes:
                codes[spec.name] = code_fingerprint(spec.factory)
            now = codes[spec.name]
            if now and m.get("code") and now != m["code"]:
                return (
                    f"method {m['name']!r} v{m['version']} has other code here (fingerprint {now}, the "
                    f"record's {m['code']}): bump its version and rerun, or install the record's "
                    f"{m.get('distribution') or 'distribution'} {m.get('distribution_version', '')}"
                )
        if d["name"] in manager.datasets and manager.datasets.get(d["name"]).version != d["version"]:
            now = manager.datasets.get(d["name"]).version
            return f"dataset {d['name']!r} is at version {now}, the record at {d['version']}"
    listed = manager.list_protocols() if manager is not None else list_protocols()
    protocols = {q.name: q.version for q in listed}
    if p["name"] in protocols and protocols[p["name"]] != p["version"]:
        return f"protocol {p['name']!r} is at version {protocols[p['name']]}, the record at {p['version']}"
    revision = int(record.get("metrics_revision", 1))
    if revision != METRICS_REVISION:
        return (
            f"its metrics follow definitions of revision {revision}, these of {METRICS_REVISION}: "
            "`gsr-bench score` recomputes them from the run's saved predictions"
        )
    return ""


def _differences(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _differences(a.get(k), b.get(k), f"{where}.{k}" if where else str(k))
        return out
    return [] if a == b else [f"{where} {a!r} / {b!r}"]


def check(root: Path, manager: PluginManager | None = None) -> list[Problem]:
    """Schema, paths, duplicates and staleness of every record under ``root``.

    A stale record (its method, dataset or protocol at another version here, or its method's
    code changed without a version bump) is an error: its row is left out of the leaderboard;
    ``gsr-bench leaderboard --prune`` removes the ones a newer version superseded.
    """
    problems: list[Problem] = []
    good: list[tuple[Path, dict[str, Any]]] = []
    for path, record in load(root):
        if isinstance(record, str):
            problems.append(Problem(path, record))
            continue
        found = schema_problems(record)
        problems += [Problem(path, message) for message in found]
        if found:
            continue
        good.append((path, record))
        for where, text in _paths(record):
            problems.append(Problem(path, f"{where} holds a path of a machine ({text!r}): records name none"))
        if path != record_path(root, record):
            problems.append(Problem(path, f"should be at {record_path(root, record)}", "warning"))
    keys = Counter(r["job_key"] for _, r in good)
    codes: dict[str, str] = {}
    cells: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for _, r in good:
        cells.setdefault(_cell(r), []).append(r)
    for path, r in good:
        m = r["method"]
        if keys[r["job_key"]] > 1:
            problems.append(Problem(path, f"duplicate: another record has job key {r['job_key']}"))
        elif len(cells[_cell(r)]) > 1:
            other = next(o for o in cells[_cell(r)] if o is not r)
            differ = _differences(r["config"], other["config"])
            problems.append(
                Problem(
                    path,
                    f"duplicate: another record of {m['name']} v{m['version']} seed {r['seed']} in this "
                    f"section differs in {'; '.join(differ[:3]) or 'nothing but its key'}",
                )
            )
        if not m["distribution_version"]:
            problems.append(Problem(path, f"method {m['name']!r}: its distribution's version is missing"))
        if manager is not None and m["name"] not in manager.methods:
            problems.append(Problem(path, f"method {m['name']!r} is not installed here", "warning"))
        if m["distribution"] != BUILTIN_DISTRIBUTION and not m["install"].get("url"):
            problems.append(
                Problem(
                    path,
                    f"method {m['name']!r} of {m['distribution'] or '?'} gives no URL to install it from "
                    f"(only {m['install'].get('requirement') or 'nothing'}): set the project's URL in "
                    "its pyproject.toml",
                    "warning",
                )
            )
        why = staleness(r, manager, codes)
        if why:
            problems.append(Problem(path, f"stale: {why}"))
    return problems


def prune(root: Path, manager: PluginManager | None) -> list[tuple[Path, str]]:
    """Remove the records a newer version of their cell supersedes (stale by version: the
    leaderboard leaves them out already); ``(path, why)`` of each removed file."""
    removed: list[tuple[Path, str]] = []
    codes: dict[str, str] = {}
    for path, record in load(root):
        if isinstance(record, str) or schema_problems(record):
            continue
        why = staleness(record, manager, codes)
        if why and "fingerprint" not in why:  # other code: a version bump or a reinstall decides
            path.unlink()
            removed.append((path, why))
    for folder in sorted({p.parent for p, _ in removed}, key=lambda p: -len(p.parts)):
        for empty in (folder, folder.parent):
            if empty.is_dir() and not any(empty.iterdir()) and empty != Path(root):
                empty.rmdir()
    return removed

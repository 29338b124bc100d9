"""``gsr-bench data download``: the official BioMassters files from their public S3 buckets.

The root becomes a (subset) BioMassters folder in the official layout: the metadata CSVs first,
filtered to the selection (so its content revision names the subset), then every selected file,
each verified before it gets its final name. A rerun fetches only what is missing or wrong:
``.download/verified.jsonl`` logs every verified file as it lands (a SIGKILL loses only the
files in flight, whose ``.part`` files are resumed by range requests), and ``download.json``
records the source, the selection, the counts and the time of the last run.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import errno
import json
import os
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gsr_bench.api import GsrBenchError, check_room, kill_point
from gsr_bench_datasets.biomassters.download_summary import (
    Tally,
    describe_selection,
    report,
    selection_table,
)
from gsr_bench_datasets.biomassters.selection import RemoteFile, Selection, select
from gsr_bench_datasets.biomassters.transfer import Fetcher, Outcome, SourceError, Stopped, make_client

REGIONS = {"us": "us-east-1", "eu": "eu-central-1", "as": "ap-southeast-1"}
FEATURES_METADATA = "features_metadata.csv"
STATE = ".download"  # the official metadata and the log of verified files
MANIFEST = "download.json"
LOCK = ".download.lock"


@dataclass(frozen=True)
class Source:
    """Where the files come from: a bucket of AWS (by region) or of any S3-compatible server."""

    region: str = "us"
    bucket: str | None = None
    endpoint_url: str | None = None

    @property
    def bucket_name(self) -> str:
        return self.bucket or f"drivendata-competition-biomassters-public-{self.region}"

    def describe(self) -> dict[str, Any]:
        return {"bucket": self.bucket_name, "region": self.region, "endpoint_url": self.endpoint_url}

    def where(self) -> str:
        return f"s3://{self.bucket_name}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")


def _rows(path: Path) -> tuple[list[dict[str, str]], list[str]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader), list(reader.fieldnames or [])


def _write_rows(path: Path, rows: Sequence[Mapping[str, str]], columns: list[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _verified_log(root: Path) -> dict[str, tuple[int, int]]:
    """``{key: (size, mtime_ns)}`` of the files earlier runs verified."""
    path = root / STATE / "verified.jsonl"
    out: dict[str, tuple[int, int]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
                out[entry["key"]] = (int(entry["size"]), int(entry["mtime_ns"]))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a kill: that file is checked again
    return out


def _label_sizes(client: Any, bucket: str, prefix: str) -> dict[str, int]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: int(o["Size"]) for page in pages for o in page.get("Contents", [])}


def plan(
    fetcher: Fetcher, root: Path, selection: Selection
) -> tuple[list[RemoteFile], dict[str, tuple[list[dict[str, str]], list[str]]]]:
    """The metadata from the bucket (into ``ROOT/.download``), the selected files, and the
    filtered metadata to write into the root (``{file name: (rows, columns)}``)."""
    state = root / STATE
    state.mkdir(parents=True, exist_ok=True)
    if not fetcher.get_small(FEATURES_METADATA, state / FEATURES_METADATA):
        raise SourceError(f"no {FEATURES_METADATA} at the root of the bucket")
    features, columns = _rows(state / FEATURES_METADATA)
    labels: dict[str, list[dict[str, str]]] = {}
    label_columns: dict[str, list[str]] = {}
    for split in selection.splits:
        name = f"{split}_agbm_metadata.csv"
        if selection.labels and fetcher.get_small(name, state / name):
            labels[split], label_columns[split] = _rows(state / name)
    files, kept, kept_labels = select(features, labels, selection)
    unsized = {f.split for f in files if f.size is None and f.kind == "agbm"}
    if unsized:  # no label metadata for the split (the test labels): sizes from a listing
        sizes: dict[str, int] = {}
        for split in sorted(unsized):
            sizes.update(_label_sizes(fetcher.client, fetcher.bucket, f"{split}_agbm/"))
        files = [
            f if f.size is not None else RemoteFile(f.key, f.split, f.kind, sizes.get(f.key)) for f in files
        ]
    out = {FEATURES_METADATA: (list(kept), columns)}
    for split, rows in kept_labels.items():
        out[f"{split}_agbm_metadata.csv"] = (list(rows), label_columns[split])
    return files, out


def _untouched(root: Path, keys: set[str]) -> list[str]:
    found = []
    for folder in sorted(root.glob("*_features")) + sorted(root.glob("*_agbm")):
        for path in sorted(folder.glob("*.tif")):
            key = path.relative_to(root).as_posix()
            if key not in keys:
                found.append(key)
    return found


def download(
    root: Path,
    selection: Selection,
    source: Source,
    workers: int = 16,
    retries: int = 5,
    dry_run: bool = False,
    bandwidth: float = 10.0,
    progress: bool = True,
) -> int:
    """Download ``selection`` from ``source`` into ``root`` (see the module docstring).

    Returns:
        The exit status: 0 when every selected file is verified, 1 when some are not, 130
        when interrupted.

    Raises:
        GsrBenchError: another download holds the root, the source cannot serve the
            metadata, the selection is invalid or the disk cannot hold it.
    """
    from filelock import FileLock, Timeout

    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(root / LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise GsrBenchError(f"{root}: another gsr-bench data download is writing into this folder") from None
    try:
        return _download(root, selection, source, workers, retries, dry_run, bandwidth, progress)
    finally:
        lock.release()


def _download(
    root: Path,
    selection: Selection,
    source: Source,
    workers: int,
    retries: int,
    dry_run: bool,
    bandwidth: float,
    progress: bool,
) -> int:
    from tqdm import tqdm

    client = make_client(source.endpoint_url, REGIONS.get(source.region, source.region), workers)
    stop = threading.Event()
    fetcher = Fetcher(client, source.bucket_name, root, retries, stop=stop)
    try:
        files, metadata = plan(fetcher, root, selection)
    except SourceError as exc:
        raise GsrBenchError(f"{source.where()}: {exc}") from None
    print(f"selection: {describe_selection(selection)}\n{selection_table(files, bandwidth)}")
    if dry_run:
        return 0
    tally = Tally(selected=len(files), selected_bytes=sum(f.size or 0 for f in files))
    log = _verified_log(root)
    todo: list[tuple[str, RemoteFile]] = []
    for f in files:
        path = root / f.key
        if path.is_file():
            st = path.stat()
            vouched = log.get(f.key) == (st.st_size, st.st_mtime_ns) and f.size in (None, st.st_size)
            if vouched:
                tally.present += 1
            else:
                todo.append(("confirm", f))
        else:
            todo.append(("fetch", f))
    need = sum((f.size or 0) - _part_size(root / f.key) for action, f in todo if action == "fetch")
    check_room(root, need, f"download into {root}")
    for name, (rows, columns) in metadata.items():
        _write_rows(root / name, rows, columns)
    started = time.perf_counter()
    status, error = _run(fetcher, todo, tally, root, workers, progress, tqdm, need)
    tally_dict = asdict(tally)
    manifest = {
        "source": source.describe(),
        "selection": selection.describe(),
        **tally_dict,
        "seconds": round(time.perf_counter() - started, 2),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "complete": status == 0,
    }
    tmp = root / f"{MANIFEST}.tmp"
    try:  # whole or not at all: the last complete manifest stays until this one is written
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(tmp, root / MANIFEST)
    except OSError as exc:  # the disk that stopped the download cannot take the manifest either
        tmp.unlink(missing_ok=True)
        error = error or _disk_error(exc, root)
    others = _untouched(root, {f.key for f in files})
    if others:
        print(
            f"{len(others)} file(s) under {root} are not in this selection ({others[0]}, ...): left untouched"
        )
    report(tally, manifest["seconds"], status)
    if error:
        raise GsrBenchError(error)
    return status


def _part_size(path: Path) -> int:
    part = path.with_name(path.name + ".part")
    return part.stat().st_size if part.is_file() else 0


def _run(
    fetcher: Fetcher,
    todo: list[tuple[str, RemoteFile]],
    tally: Tally,
    root: Path,
    workers: int,
    progress: bool,
    tqdm: Any,
    need: int,
) -> tuple[int, str]:
    """Fetch ``todo`` in parallel: the exit status and, when the disk failed, its one line."""
    bar = tqdm(total=need, unit="B", unit_scale=True, desc="download", disable=not progress, smoothing=0.1)
    fetcher.on_bytes = bar.update
    pending = iter(todo)
    done, status, error, started = 0, 0, "", time.perf_counter()
    with (root / STATE / "verified.jsonl").open("a") as log, cf.ThreadPoolExecutor(workers) as pool:
        running: dict[cf.Future[Outcome], RemoteFile] = {}

        def submit() -> None:
            for action, f in pending:  # at most 2 x workers queued: memory flat at any count
                task = fetcher.confirm if action == "confirm" else fetcher.fetch
                running[pool.submit(task, f)] = f
                if len(running) >= 2 * workers:
                    return

        try:
            submit()
            while running:
                finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    f = running.pop(future)
                    try:
                        outcome = future.result()
                    except Stopped:
                        continue
                    tally.add(outcome)
                    if outcome.ok:
                        st = (root / f.key).stat()
                        entry = {
                            "key": f.key,
                            "size": st.st_size,
                            "mtime_ns": st.st_mtime_ns,
                            "md5": outcome.md5,
                        }
                        log.write(json.dumps(entry) + "\n")
                        log.flush()
                        done += 1
                        kill_point("download", done)
                    rate = done / max(time.perf_counter() - started, 1e-9)
                    bar.set_postfix_str(f"{done}/{len(todo)} files, {rate:.1f} files/s", refresh=False)
                submit()
        except KeyboardInterrupt:
            status = 130
        except OSError as exc:  # the disk filled (or the root went away): stop, keep what is verified
            status, error = 1, _disk_error(exc, root)
        finally:
            if status:
                fetcher.stop.set()
                for future in running:
                    future.cancel()
            bar.close()
    if status == 0 and tally.failed:
        status = 1
    return status, error


def _disk_error(exc: OSError, root: Path) -> str:
    if exc.errno == errno.ENOSPC:
        free = shutil.disk_usage(root).free
        return (
            f"{root}: the disk is full ({free / 2**20:.1f} MiB free); free space and rerun the same "
            "command to resume (verified files are kept)"
        )
    return f"{exc.filename or root}: {exc.strerror or exc}"

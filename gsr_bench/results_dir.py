"""The results folder: checked writable before any work starts, and held by one run at a time."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from gsr_bench.errors import GsrBenchError

LOCK_NAME = ".gsr-bench.lock"
PID_NAME = ".gsr-bench.pid"


def ensure_writable(folder: Path) -> None:
    """Fail now, with the folder's name, rather than after hours of training."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise GsrBenchError(
            f"results folder {folder} is not writable ({exc.strerror}); pass --results DIR with a "
            f"folder you can write to"
        ) from None


@contextlib.contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """Hold the folder's lock for the duration of a run; a second run refuses with a clear line.

    Two runs writing one SQLite store and one checkpoint folder would race on the same jobs.
    The lock (filelock's, an ``flock`` on POSIX) goes with the process however it ends; the
    holder's pid sits beside it, for the refusal to name.
    """
    ensure_writable(folder)
    lock = FileLock(folder / LOCK_NAME)
    holder_file = folder / PID_NAME
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = holder_file.read_text().strip() if holder_file.is_file() else ""
        raise GsrBenchError(
            f"results folder {folder} is in use by another gsr-bench run (pid {holder or 'unknown'}); "
            "wait for it to finish or pass another --results"
        ) from None
    try:
        holder_file.write_text(str(os.getpid()))
        yield
    finally:
        holder_file.unlink(missing_ok=True)
        lock.release()

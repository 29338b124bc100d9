"""The results folder: checked writable before any work starts, and held by one run at a time."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from gsr_bench.errors import GsrBenchError

LOCK_NAME = ".gsr-bench.lock"


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
    The lock is an ``flock`` on a file, so it disappears with the process however it ends.
    """
    ensure_writable(folder)
    path = folder / LOCK_NAME
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise GsrBenchError(
            f"results folder {folder} is in use by another gsr-bench run (pid {holder}); wait for "
            f"it to finish or pass another --results"
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()

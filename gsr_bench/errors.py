"""User-facing errors: one clear line, no traceback unless ``--verbose``."""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Iterable
from pathlib import Path


class GsrBenchError(Exception):
    """An error caused by the user's input or environment, with what to do about it."""


class UnknownNameError(GsrBenchError, KeyError):
    """An unknown method, dataset or protocol name."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known = sorted(known)
        same_case = [k for k in known if k.lower() == name.lower()]  # -m DGF for dgf
        lowered = {k.lower(): k for k in known}
        close = same_case or [
            lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.5)
        ]
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = f" Known: {', '.join(known)}." if known else f" No {kind}s are registered."
        super().__init__(f"unknown {kind} {name!r}.{hint}{listing}")
        self.name = name

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class TrainingError(GsrBenchError):
    """Training cannot go on (NaN loss, a checkpoint of another job, an unknown loss)."""


class DataError(GsrBenchError):
    """A missing, corrupt or inconsistent data file."""


class DiskFullError(DataError):
    """No room left to write: what was written so far is kept for a rerun to resume."""


def check_room(folder: Path, need: int, what: str) -> None:
    """Refuse a write of ``need`` bytes into ``folder`` that the disk cannot take."""
    free = shutil.disk_usage(folder).free
    if free < need:
        raise DiskFullError(
            f"{what}: the disk is full ({free / 2**20:.1f} MiB free, {need / 2**20:.1f} needed "
            "to go on); free space and rerun the same command to resume (what was written so far "
            "is kept)"
        )


class ProtocolError(GsrBenchError):
    """A protocol file that cannot be used."""


class TrackingError(GsrBenchError):
    """The MLflow tracking store cannot be used."""

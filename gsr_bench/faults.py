"""Deterministic interruptions, for the tests that prove a killed run resumes.

``GSR_BENCH_KILL_AT=STAGE:N`` makes the process SIGKILL itself right after unit ``N`` of
``STAGE`` is safely on disk: ``train:40`` once step 40's checkpoint is written, ``prepare:3``
once the third tile is flushed. A test then knows exactly where the kill fell, on any machine,
instead of racing a progress bar. ``GSR_BENCH_RAISE_AT=STAGE:NAME`` raises there instead
(``remote:bilinear``: a Ray task of that method fails outside the job's own error handling).
Unset, nothing happens.
"""

from __future__ import annotations

import os
import signal

KILL_ENV = "GSR_BENCH_KILL_AT"
RAISE_ENV = "GSR_BENCH_RAISE_AT"


class InjectedFault(RuntimeError):
    """The failure ``GSR_BENCH_RAISE_AT`` asked for."""


def kill_point(stage: str, count: int) -> None:
    """SIGKILL this process if ``GSR_BENCH_KILL_AT`` names ``stage:count``."""
    if os.environ.get(KILL_ENV) == f"{stage}:{count}":
        os.kill(os.getpid(), signal.SIGKILL)


def raise_point(stage: str, name: str) -> None:
    """Raise :class:`InjectedFault` if ``GSR_BENCH_RAISE_AT`` names ``stage:name``."""
    if os.environ.get(RAISE_ENV) == f"{stage}:{name}":
        raise InjectedFault(f"injected failure at {stage}:{name} ({RAISE_ENV})")

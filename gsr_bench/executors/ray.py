"""The Ray executor's parts: joining a cluster, one job as a Ray task, and its results.

Only the driver logs to MLflow: a task returns its result and its artifacts as bytes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from gsr_bench.errors import GsrBenchError
from gsr_bench.faults import raise_point
from gsr_bench.jobs import Job, JobResult, load_splits

log = logging.getLogger(__name__)


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


@contextlib.contextmanager
def connected(address: str | None) -> Iterator[Any]:
    """The ``ray`` module, joined to ``address`` (a Ray of our own when None) unless this
    process already is; a Ray started here is shut down on exit."""
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
        yield ray
    finally:
        if started_here:
            ray.shutdown()


def finished(
    ray: Any, pending: Iterable[Any]
) -> Iterator[tuple[Any, JobResult | None, dict[str, bytes], str]]:
    """``(ref, result, artifacts, error)`` of each task of ``pending`` as it finishes; a task
    that raised (its worker died, its data could not load) has no result and says why."""
    left = list(pending)
    while left:
        (done,), _ = ray.wait(left, num_returns=1)
        left.remove(done)
        try:
            result, artifacts = ray.get(done)
        except Exception as exc:
            cause = getattr(exc, "cause", None) or exc  # a RayTaskError wraps the task's own
            error = f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0]}"
            yield done, None, {"traceback.txt": str(exc).encode()}, error
            continue
        yield done, result, artifacts, ""


def remote_job(
    job: Job, cache_dir: Path, checkpoints: Path, device: str
) -> tuple[JobResult, dict[str, bytes]]:
    """A job in a Ray worker: everything but MLflow; the artifacts travel back as bytes."""
    import torch

    raise_point("remote", job.method.name)
    splits = load_splits(job, cache_dir)
    workdir = Path(tempfile.mkdtemp(prefix="gsr-bench-ray-"))
    try:
        from gsr_bench.execute import execute_job

        result = execute_job(job, splits, torch.device(device), workdir, checkpoints, False, None)
        return result, {p.name: p.read_bytes() for p in workdir.iterdir()}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

"""Data-parallel ranks: rank 0 runs the jobs as the local runner does; the others follow."""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gsr_bench.jobs import Job, data_key, load_splits, release_splits
from gsr_bench.plugins import PluginManager


def follow(
    manager: PluginManager, jobs: Sequence[Job], cache_dir: Path, checkpoints: Path, device: Any
) -> None:
    """A DDP rank other than 0: trains (and evaluates, unlogged) the jobs rank 0 announces."""
    from gsr_bench import distributed

    by_key = {j.key: j for j in jobs}
    keys: list[str] = distributed.broadcast(None)
    if not keys:
        return
    distributed.barrier()
    loaded: dict[str, Any] = {}
    left = Counter(data_key(by_key[key]) for key in keys)
    for key in keys:
        job = by_key[key]
        tiles = data_key(job)
        if tiles not in loaded:
            loaded[tiles] = load_splits(job, cache_dir)
        splits = loaded[tiles]
        workdir = Path(tempfile.mkdtemp(prefix="gsr-bench-ddp-"))
        try:
            from gsr_bench.execute import execute_job

            execute_job(job, splits, device, workdir, checkpoints, False, manager)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        left[tiles] -= 1
        if not left[tiles]:
            release_splits(loaded.pop(tiles))

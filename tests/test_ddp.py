"""``run --ddp`` under torchrun: 2 gloo processes on CPU equal one process with the same batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gsr_bench.tracking import Tracker

ARGS = ["run", "-m", "msg-ng", "--protocol", "smoke", "-q", "--no-leaderboard", "--device", "cpu"]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_two_gloo_processes_equal_one(workdir: Path) -> None:
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    ddp = _run([*torchrun, "-m", "gsr_bench", *ARGS, "--ddp", "--results", "ddp"], workdir)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = _run([sys.executable, "-m", "gsr_bench", *ARGS, "--results", "single"], workdir)
    assert single.returncode == 0, single.stderr[-3000:]
    (a,) = Tracker(workdir / "ddp").runs()  # one run: rank 1 trained but logged nothing
    (b,) = Tracker(workdir / "single").runs()
    assert a.data.tags["ddp_world_size"] == "2" and b.data.tags["ddp_world_size"] == "1"
    assert a.data.tags["job_key"] == b.data.tags["job_key"]
    # each rank trained on half of smoke's batch of 4, not on all of it
    assert a.data.metrics["batch_per_process"] == 2 and b.data.metrics["batch_per_process"] == 4
    for name in ("rmse", "mae", "ssim", "best_val_rmse"):
        assert a.data.metrics[name] == pytest.approx(b.data.metrics[name], rel=1e-3), name


def test_ddp_without_torchrun_is_a_clear_error(workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    out = subprocess.run(
        [sys.executable, "-m", "gsr_bench", *ARGS, "--ddp"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "torchrun --nproc-per-node 2" in out.stderr and "Traceback" not in out.stderr

"""The Ray executor: every job a Ray task on a local Ray of 2 CPUs, the driver alone logging."""

from __future__ import annotations

from pathlib import Path

import pytest

from gsr_bench.cli import main
from gsr_bench.tracking import Tracker

METHODS = ["nearest", "bicubic", "jbu", "guided-filter", "msg-ng", "p2p"]


def _metrics(results: Path) -> dict[str, dict[str, float]]:
    return {r.data.tags["method"]: dict(r.data.metrics) for r in Tracker(results).runs()}


def test_ray_executor_matches_local(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray", reason="the dev extra installs ray")
    base = ["run", "--protocol", "smoke", "-q", "--no-leaderboard"] + [a for m in METHODS for a in ("-m", m)]
    assert main([*base, "--results", "local"]) == 0
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert main([*base, "--results", "remote", "--executor", "ray"]) == 0
    finally:
        ray.shutdown()
    local, remote = _metrics(workdir / "local"), _metrics(workdir / "remote")
    assert set(remote) == set(METHODS)
    for method in METHODS:
        for name in ("rmse", "mae", "ssim", "bias", "consistency_rmse"):
            # Ray workers run torch on one thread: float sums may differ in the last bits
            assert remote[method][name] == pytest.approx(local[method][name], rel=1e-4, abs=1e-6), (
                method,
                name,
            )
    run = next(iter(Tracker(workdir / "remote").runs()))
    assert run.data.tags["device"] == "ray:cpu"
    assert any(p.name == "tiles.npz" for p in (workdir / "remote" / "artifacts").rglob("*"))

"""The Ray executor: every job a Ray task, the driver alone logging; on a Ray started in-process
(2 CPUs) and on an existing cluster started by ``ray start --head`` and reached by its address."""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gsr_bench.cli import main
from gsr_bench.plugins import PluginManager
from gsr_bench.tracking import Tracker

METHODS = PluginManager().methods.names()  # run --all


def _metrics(results: Path) -> dict[str, dict[str, float]]:
    return {r.data.tags["method"]: dict(r.data.metrics) for r in Tracker(results).runs()}


def test_ray_executor_matches_local(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray", reason="the dev extra installs ray")
    base = ["run", "--all", "--protocol", "smoke", "-q", "--no-leaderboard"]
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ray_executor_on_an_existing_cluster(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A head node in its own processes, as on a real cluster, with token authentication; the CLI
    joins it by the address ``ray start`` prints, holding the cluster's token."""
    pytest.importorskip("ray", reason="the dev extra installs ray")
    ray_cli = Path(sys.executable).with_name("ray")
    token = secrets.token_hex(16)
    for name, value in (
        ("RAY_AUTH_MODE", "token"),
        ("RAY_AUTH_TOKEN", token),
        ("RAY_USAGE_STATS_ENABLED", "0"),
    ):
        monkeypatch.setenv(name, value)
    client_port = _free_port()
    start = [str(ray_cli), "start", "--head", f"--port={_free_port()}", "--num-cpus=2"]
    start += ["--include-dashboard=false", f"--ray-client-server-port={client_port}"]
    out = subprocess.run(start, check=True, capture_output=True, text=True, env=dict(os.environ), timeout=120)
    base = ["run", "--protocol", "smoke", "-q", "--no-leaderboard", "--executor", "ray", "--ray-address"]
    try:
        found = re.search(r"--address='([^']+)'", out.stdout + out.stderr)
        assert found, out.stdout + out.stderr
        # the cluster's GCS address, then the Ray Client's ray:// one; each CLI a process of its
        # own, as a user's: Ray reads its authentication settings at import
        targets = [(found.group(1), ["bicubic", "msg-ng"]), (f"ray://127.0.0.1:{client_port}", ["nearest"])]
        for address, methods in targets:
            cli = [
                sys.executable,
                "-m",
                "gsr_bench",
                *base,
                address,
                *(a for m in methods for a in ("-m", m)),
            ]
            run = subprocess.run(cli, capture_output=True, text=True, env=dict(os.environ), timeout=600)
            assert run.returncode == 0, (address, run.stderr[-3000:])
    finally:
        subprocess.run(
            [str(ray_cli), "stop", "--force"], capture_output=True, env=dict(os.environ), timeout=120
        )
    runs = list(Tracker(workdir / "results").runs())
    assert sorted(r.data.tags["method"] for r in runs) == ["bicubic", "msg-ng", "nearest"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["device"] for r in runs} == {"ray:cpu"}


def test_unreachable_ray_address_is_one_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray", reason="the dev extra installs ray")
    args = ["run", "-m", "bicubic", "--protocol", "smoke", "-q", "--executor", "ray"]
    assert main([*args, "--ray-address", f"127.0.0.1:{_free_port()}"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the Ray cluster at 127.0.0.1:" in err and "Traceback" not in err
    assert not list(Tracker(workdir / "results").runs())

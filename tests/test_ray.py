"""The Ray executor: every job a Ray task, the driver alone logging; on a Ray started in-process
(2 CPUs) and on an existing cluster started by ``ray start --head`` and reached by its address."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gsr_bench.cli import main
from gsr_bench.errors import GsrBenchError
from gsr_bench.executors.ray import RAY_CLIENT_ATTEMPTS, _join_ray
from gsr_bench.plugins import PluginManager
from gsr_bench.tracking import Tracker

METHODS = PluginManager().methods.names()  # run --all


@pytest.fixture(autouse=True)
def _workers_at_normal_priority(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray runs its workers at nice 15: beside two busy processes they got 3.7 % of a core each
    and the executor test crawled on a loaded machine. Every Ray these tests start inherits this."""
    monkeypatch.setenv("RAY_worker_niceness", "0")


def _metrics(results: Path) -> dict[str, dict[str, float]]:
    return {r.data.tags["method"]: dict(r.data.metrics) for r in Tracker(results).runs()}


def test_ray_executor_matches_local(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray", reason="the dev extra installs ray")
    import torch

    base = ["run", "--all", "--protocol", "smoke", "--publish", "-q", "--no-leaderboard"]
    # Ray tasks get one CPU and so one torch thread: so does the local run, else float sums
    # differ and 20 steps of a batch-normalized net amplify it (ResNeXt: 62.6 against 61.9)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*base, "--results", "local"]) == 0
    finally:
        torch.set_num_threads(threads)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)  # never a cluster
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


def _wait_for_address(head: subprocess.Popen[str]) -> str:
    """The GCS address ``ray start --block`` prints once the head is up (a head that cannot
    start exits: its start-up time is the machine's, never a deadline of the test)."""
    seen = []
    assert head.stdout is not None
    while True:
        line = head.stdout.readline()
        if not line and head.poll() is not None:
            break
        seen.append(line)
        found = re.search(r"--address='([^']+)'", line)
        if found:
            return found.group(1)
    raise AssertionError("ray start printed no address:\n" + "".join(seen[-30:]))


def _stop(head: subprocess.Popen[str]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            return
        try:
            head.wait(timeout=20)
            time.sleep(1)  # the group's other processes exit with their parent
        except subprocess.TimeoutExpired:
            continue


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
    start = [str(ray_cli), "start", "--head", "--block", f"--port={_free_port()}", "--num-cpus=2"]
    start += ["--include-dashboard=false", f"--ray-client-server-port={client_port}"]
    # its own session: the test stops this head and its processes alone (`ray stop` would end
    # every Ray on the machine, a parallel test's too)
    head = subprocess.Popen(
        start,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ),
        start_new_session=True,
    )
    base = [
        "run",
        "--protocol",
        "smoke",
        "--publish",
        "-q",
        "--no-leaderboard",
        "--executor",
        "ray",
        "--ray-address",
    ]
    try:
        address = _wait_for_address(head)
        # the cluster's GCS address, then the Ray Client's ray:// one; each CLI a process of its
        # own, as a user's: Ray reads its authentication settings at import
        targets = [(address, ["bicubic", "msg-ng"]), (f"ray://127.0.0.1:{client_port}", ["nearest"])]
        for target, methods in targets:
            cli = [sys.executable, "-m", "gsr_bench", *base, target, *(a for m in methods for a in ("-m", m))]
            run = subprocess.run(cli, capture_output=True, text=True, env=dict(os.environ), timeout=600)
            assert run.returncode == 0, (target, run.stderr[-3000:])
    finally:
        _stop(head)
    runs = list(Tracker(workdir / "results").runs())
    assert sorted(r.data.tags["method"] for r in runs) == ["bicubic", "msg-ng", "nearest"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["device"] for r in runs} == {"ray:cpu"}


def test_unreachable_ray_address_is_one_line(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray", reason="the dev extra installs ray")
    args = ["run", "-m", "bicubic", "--protocol", "smoke", "--publish", "-q", "--executor", "ray"]
    assert main([*args, "--ray-address", f"127.0.0.1:{_free_port()}"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the Ray cluster at 127.0.0.1:" in err and "Traceback" not in err
    assert not list(Tracker(workdir / "results").runs())


_SERVER_DIED = (
    "Initialization failure from server:\nTraceback (most recent call last):\n"
    '  File "proxier.py", line 771, in Datapath\n'
    "RuntimeError: Starting Ray client server failed. See ray_client_server_23000.err for detailed logs."
)


def test_ray_client_join_tries_again_when_its_server_dies(caplog: pytest.LogCaptureFixture) -> None:
    """Ray's own fork race (ray-project/ray#63202) kills the per-client server now and then: the
    join is tried again, and an error that persists names the server's reason, not the traceback."""
    calls: list[str | None] = []

    def flaky(*, address: str | None, **_: object) -> None:
        calls.append(address)
        if len(calls) == 1:
            raise ConnectionAbortedError(_SERVER_DIED)

    _join_ray(flaky, "ray://127.0.0.1:10001", wait_s=0)
    assert len(calls) == 2 and "trying again" in caplog.text

    def dead(*, address: str | None, **_: object) -> None:
        calls.append(address)
        raise ConnectionAbortedError(_SERVER_DIED)

    calls.clear()
    with pytest.raises(GsrBenchError, match="Starting Ray client server failed") as error:
        _join_ray(dead, "ray://127.0.0.1:10001", wait_s=0)
    assert len(calls) == RAY_CLIENT_ATTEMPTS and "Traceback" not in str(error.value)
    calls.clear()
    with pytest.raises(GsrBenchError):  # a GCS address has no per-client server to retry
        _join_ray(dead, "127.0.0.1:6379", wait_s=0)
    assert len(calls) == 1


def test_a_ray_task_that_raises_fails_its_run_and_the_others_go_on(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A task that raises outside the job's own error handling (its data cannot load, its worker
    dies) left every pending MLflow run RUNNING and stopped the driver."""
    ray = pytest.importorskip("ray", reason="the dev extra installs ray")
    from gsr_bench.faults import RAISE_ENV

    monkeypatch.setenv(RAISE_ENV, "remote:bilinear")  # before ray.init: the workers inherit it
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        args = ["run", "-m", "nearest", "-m", "bilinear", "--protocol", "smoke", "-q", "--no-leaderboard"]
        assert main([*args, "--executor", "ray"]) == 1
    finally:
        ray.shutdown()
    tracker = Tracker(workdir / "results")
    status = {
        r.data.tags["method"]: (r.info.status, r.data.tags.get("error", ""))
        for s in ("FINISHED", "FAILED", "RUNNING", "KILLED")
        for r in tracker.runs(s)
    }
    assert status["nearest"] == ("FINISHED", "")
    assert status["bilinear"][0] == "FAILED" and "InjectedFault: injected failure" in status["bilinear"][1]
    assert "bilinear" in capsys.readouterr().out

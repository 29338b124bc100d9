"""Interrupted training resumes to the same result; bad checkpoints and NaN losses are handled."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from gsr_bench import MethodSpec, hookimpl
from gsr_bench.cli import main
from gsr_bench.faults import KILL_ENV
from gsr_bench.method import TorchMethod
from gsr_bench.planning import plan_jobs
from gsr_bench.plugins import PluginManager, get_plugin_manager
from gsr_bench.protocol import load_protocol
from gsr_bench.tracking import Tracker

SMOKE = Path(__file__).parents[1] / "gsr_bench" / "protocols" / "smoke.toml"


def _protocol(folder: Path, steps: int = 150) -> Path:
    text = SMOKE.read_text().replace('name = "smoke"', 'name = "resume"')
    text = text.replace("steps = 20", f"steps = {steps}").replace("val_every = 10", "val_every = 50")
    path = folder / "resume.toml"
    path.write_text(text)
    return path


def _finished(results: Path, method: str) -> dict[str, float]:
    (run,) = [r for r in Tracker(results).runs() if r.data.tags["method"] == method]
    return dict(run.data.metrics)


def _checkpoint_step(results: Path) -> int:
    for path in results.glob("checkpoints/*/last.pt"):
        try:
            return int(torch.load(path, weights_only=True)["step"])
        except Exception:  # being replaced right now
            return 0
    return 0


def test_killed_training_resumes_to_the_same_metrics(workdir: Path) -> None:
    proto = _protocol(workdir)
    base = ["run", "-m", "nearest", "-m", "msg-ng", "--protocol", str(proto), "-q", "--publish"]
    assert main([*base, "--results", "ref"]) == 0
    reference = _finished(workdir / "ref", "msg-ng")

    # the process kills itself once step 60's checkpoint is written: the same point on any machine
    proc = subprocess.run(
        [sys.executable, "-m", "gsr_bench", *base, "--results", "killed"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, KILL_ENV: "train:60"},
    )
    assert proc.returncode == -signal.SIGKILL
    killed_at = _checkpoint_step(workdir / "killed")
    assert killed_at == 60

    assert len(list(Tracker(workdir / "killed").runs("FINISHED"))) == 1  # nearest ran before the kill
    assert main([*base, "--results", "killed", "--leaderboard", "lb-killed"]) == 0
    resumed = _finished(workdir / "killed", "msg-ng")
    tracker = Tracker(workdir / "killed")
    every = [r for status in ("FINISHED", "RUNNING", "KILLED", "FAILED") for r in tracker.runs(status)]
    assert len(every) == 2  # the interrupted MLflow run was resumed, not duplicated
    assert main([*base, "--results", "ref", "--leaderboard", "lb-ref"]) == 0  # all skipped
    ref = pd.read_csv(workdir / "lb-ref" / "results.csv").set_index("method")
    got = pd.read_csv(workdir / "lb-killed" / "results.csv").set_index("method")
    quality = [
        c for c in ref.columns if c.endswith("_mean") and not c.startswith(("throughput", "train_time"))
    ]
    pd.testing.assert_frame_equal(got[quality], ref[quality], rtol=1e-6)
    assert resumed["resumed_from_step"] == killed_at
    for name in ("rmse", "mae", "ssim", "best_val_rmse", "bias"):
        assert resumed[name] == pytest.approx(reference[name], rel=1e-6, abs=1e-9), name


def test_corrupt_checkpoint_restarts_and_foreign_one_is_refused(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proto = _protocol(workdir, steps=40)
    protocol = load_protocol(proto)
    (job_ng,) = plan_jobs(get_plugin_manager(), ["msg-ng"], ["biomassters-synthetic"], protocol)
    (job_msg,) = plan_jobs(get_plugin_manager(), ["msg"], ["biomassters-synthetic"], protocol)
    corrupt = workdir / "results" / "checkpoints" / job_ng.train_key / "last.pt"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"\x80\x02 torn write")
    base = ["run", "--protocol", str(proto), "-q", "--no-leaderboard"]
    with caplog.at_level(logging.WARNING):
        assert main([*base, "-m", "msg-ng"]) == 0
    assert f"checkpoints/{job_ng.train_key}/last.pt: unreadable checkpoint" in caplog.text
    assert _finished(workdir / "results", "msg-ng")["resumed_from_step"] == 0

    foreign = workdir / "results" / "checkpoints" / job_msg.train_key / "last.pt"
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(corrupt.read_bytes())  # msg-ng's finished checkpoint under msg's key
    assert main([*base, "-m", "msg"]) == 1
    (failed,) = Tracker(workdir / "results").runs("FAILED")
    assert "checkpoint of another job (method 'msg-ng'" in failed.data.tags["error"]
    assert "refusing to load it" in failed.data.tags["error"]


class NaNNet(TorchMethod):
    def __init__(self, task) -> None:  # type: ignore[no-untyped-def]
        super().__init__(task)
        self.net = nn.Conv2d(1, 1, 1)

    def forward(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        up = source.repeat_interleave(10, -2).repeat_interleave(10, -1)
        return self.net(up) * float("nan")


class NaNPlugin:
    @hookimpl
    def gsr_bench_register_methods(self, register):  # type: ignore[no-untyped-def]
        register(MethodSpec("nan-net", "gsr", "1", "diverges at once", NaNNet))


def test_nan_loss_fails_the_run_with_its_step(workdir: Path, plugin_manager: PluginManager) -> None:
    plugin_manager.register(NaNPlugin(), "nan", "tests")
    assert main(["run", "-m", "nan-net", "-m", "nearest", "--protocol", "smoke", "--publish", "-q"]) == 1
    tracker = Tracker(workdir / "results")
    (failed,) = tracker.runs("FAILED")
    assert "loss is nan at step 0" in failed.data.tags["error"]
    assert [r.data.tags["method"] for r in tracker.runs()] == ["nearest"]


def test_force_trains_from_scratch(workdir: Path) -> None:
    proto = _protocol(workdir, steps=20)
    base = ["run", "-m", "msg-ng", "--protocol", str(proto), "-q", "--no-leaderboard"]
    assert main(base) == 0
    assert main([*base, "--force"]) == 0
    first, again = sorted(Tracker(workdir / "results").runs("FINISHED"), key=lambda r: r.info.start_time)
    # the finished checkpoint is not resumed: the forced run trains again, to the same weights
    assert again.data.metrics["resumed_from_step"] == 0
    assert again.data.metrics["rmse"] == pytest.approx(first.data.metrics["rmse"], rel=1e-6)


class Narrow(TorchMethod):
    width = 4

    def __init__(self, task) -> None:  # type: ignore[no-untyped-def]
        super().__init__(task)
        self.net = nn.Conv2d(1, self.width, 1)

    def forward(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        up = source.repeat_interleave(10, -2).repeat_interleave(10, -1)
        return self.net(up).mean(1, keepdim=True)


class Wide(Narrow):
    width = 8


def test_checkpoint_of_a_changed_network_is_discarded(
    workdir: Path, plugin_manager: PluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    """Same name and version, another network (a contributor edited it): never loaded."""
    proto = _protocol(workdir, steps=20)
    base = ["run", "-m", "edited", "--protocol", str(proto), "-q", "--no-leaderboard"]

    current: dict[str, type] = {"net": Narrow}

    def create(task):  # type: ignore[no-untyped-def]
        return current["net"](task)

    class Plugin:
        @hookimpl
        def gsr_bench_register_methods(self, register):  # type: ignore[no-untyped-def]
            register(MethodSpec("edited", "gsr", "1", "a network being edited", create))

    plugin_manager.register(Plugin(), "edited", "tests")
    assert main(base) == 0
    # the run finished; leave its checkpoint as an interrupted run would, then change the network
    for run in Tracker(workdir / "results").runs("FINISHED"):
        Tracker(workdir / "results").client.delete_run(run.info.run_id)
    current["net"] = Wide
    with caplog.at_level(logging.WARNING):
        assert main(base) == 0
    assert "checkpoint of a different network (parameters weight, bias" in caplog.text
    (run,) = Tracker(workdir / "results").runs("FINISHED")
    assert run.data.metrics["resumed_from_step"] == 0


def test_every_job_failing_still_writes_a_leaderboard(workdir: Path, plugin_manager: PluginManager) -> None:
    plugin_manager.register(NaNPlugin(), "nan", "tests")
    assert (
        main(["run", "-m", "nan-net", "--protocol", "smoke", "--publish", "-q"]) == 1
    )  # failed, did not crash
    assert "No finished runs yet" in (workdir / "leaderboard" / "README.md").read_text()
    assert "No finished runs yet" in (workdir / "leaderboard" / "index.html").read_text()


@pytest.mark.parametrize("flag_first", [True, False])
def test_verbose_prints_a_failed_jobs_traceback_before_or_after_the_command(
    workdir: Path, plugin_manager: PluginManager, capsys: pytest.CaptureFixture[str], flag_first: bool
) -> None:
    plugin_manager.register(NaNPlugin(), "nan", "tests")
    run = ["run", "-m", "nan-net", "--protocol", "smoke", "--publish", "-q", "--no-leaderboard", "--force"]
    assert main(run) == 1
    assert "rerun with --verbose" in capsys.readouterr().err
    args = ["-v", *run] if flag_first else [*run, "-v"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "nan-net/biomassters-synthetic/smoke/seed0 failed:" in err
    assert "Traceback (most recent call last)" in err and "loss is nan at step 0" in err

"""Runs end to end through the CLI: MLflow records, skipping, failures, tracking errors."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from gsr_bench import MethodSpec, MetricSpec, hookimpl
from gsr_bench.cli import main
from gsr_bench.method import Method
from gsr_bench.plugins import PluginManager
from gsr_bench.tracking import Tracker
from gsr_bench_datasets.biomassters.composite import COMPOSITES


def test_smoke_run_records_skips_and_forces(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-m", "nearest", "-m", "bicubic", "--protocol", "smoke", "--publish", "-q"]) == 0
    runs = list(Tracker(workdir / "results").runs())
    assert len(runs) == 2
    tags = runs[0].data.tags
    for key in (
        "job_key",
        "method_version",
        "dataset_version",
        "protocol_version",
        "git_hash",
        "packages",
        "device",
        "seed",
    ):
        assert tags.get(key), key
    assert {"rmse", "mae", "ssim", "psnr", "throughput_mpix_s", "rmse_bin_lt10"} <= set(runs[0].data.metrics)
    assert (workdir / "results" / "mlflow.db").exists()
    for name in ("README.md", "results.csv", "index.html"):
        assert (workdir / "leaderboard" / name).exists()
    figures = {p.name for p in (workdir / "leaderboard" / "figures").iterdir()}
    assert figures == {f"biomassters-synthetic_smoke_{f}.png" for f in ("tiles", "bins", "speed")}
    capsys.readouterr()

    assert (
        main(
            [
                "run",
                "-m",
                "nearest",
                "-m",
                "bicubic",
                "--protocol",
                "smoke",
                "--publish",
                "-q",
                "--no-leaderboard",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.count("SKIPPED") == 2  # the work done: none, not how fast
    assert len(list(Tracker(workdir / "results").runs())) == 2

    assert (
        main(
            ["run", "-m", "nearest", "--protocol", "smoke", "--publish", "-q", "--force", "--no-leaderboard"]
        )
        == 0
    )
    assert len(list(Tracker(workdir / "results").runs())) == 3


class Broken(Method):
    def predict(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("this method is broken on purpose")


class Escaped(Method):
    def predict(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return source.repeat_interleave(10, -2).repeat_interleave(10, -1) * 1.01


class TestPlugin:
    @hookimpl
    def gsr_bench_register_methods(self, register):  # type: ignore[no-untyped-def]
        register(MethodSpec("broken", "gsr", "1", "fails", Broken))
        register(MethodSpec("html-test", "sr", "1", "<script>alert('x')</script>", Escaped))

    @hookimpl
    def gsr_bench_register_metrics(self, register):  # type: ignore[no-untyped-def]
        register(MetricSpec("max_abs_error", _max_abs_error, False, aggregate="max", label="max |error|"))


def _max_abs_error(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> float:
    return float((pred - target).abs()[valid].max())


def test_failed_method_is_logged_and_others_go_on(
    workdir: Path, plugin_manager: PluginManager, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin_manager.register(TestPlugin(), "test-plugin", "tests")
    assert (
        main(
            [
                "run",
                "-m",
                "broken",
                "-m",
                "html-test",
                "-m",
                "bilinear",
                "--protocol",
                "smoke",
                "--publish",
                "-q",
            ]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert "FAILED" in out and "this method is broken on purpose" in out
    tracker = Tracker(workdir / "results")
    failed = list(tracker.runs("FAILED"))
    assert len(failed) == 1 and "broken on purpose" in failed[0].data.tags["error"]
    assert {r.data.tags["method"] for r in tracker.runs()} == {"html-test", "bilinear"}
    page = (workdir / "leaderboard" / "index.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    # a plugin's metric reaches the runs, the records, the CSVs and the page, with its arrow
    assert "max |error| ↓" in page and "max |error| ↓" in (workdir / "leaderboard" / "README.md").read_text()
    runs = {r.data.tags["method"]: r for r in tracker.runs()}
    assert runs["bilinear"].data.metrics["max_abs_error"] > runs["bilinear"].data.metrics["rmse"]
    table = pd.read_csv(workdir / "leaderboard" / "results.csv")
    assert sorted(table["max_abs_error_mean"]) == pytest.approx(
        sorted(r.data.metrics["max_abs_error"] for r in runs.values()), rel=1e-5
    )
    record = json.loads(next((workdir / "leaderboard" / "results").rglob("*.json")).read_text())
    assert record["metric_info"]["max_abs_error"]["aggregate"] == "max"
    # The failed job is not finished, so the next run tries it again.
    assert main(["run", "-m", "broken", "--protocol", "smoke", "--publish", "-q", "--no-leaderboard"]) == 1
    assert len(list(tracker.runs("FAILED"))) == 2


def test_tracking_uri_env_is_honoured(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = workdir / "elsewhere" / "team.db"
    db.parent.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    assert main(["run", "-m", "nearest", "--protocol", "smoke", "--publish", "-q", "--no-leaderboard"]) == 0
    with sqlite3.connect(db) as con:
        assert con.execute("select count(*) from runs").fetchone()[0] == 1
    assert not (workdir / "results" / "mlflow.db").exists()


def test_unreachable_tracking_server_is_one_clear_line(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            "-m",
            "nearest",
            "--protocol",
            "smoke",
            "--publish",
            "-q",
            "--tracking-uri",
            "http://127.0.0.1:9",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("gsr-bench: error: tracking URI http://127.0.0.1:9 cannot be used")
    assert "Traceback" not in err and err.count("\n") == 1
    # fails at once rather than retrying for minutes: MLflow was told not to retry
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["run", "-m", "bicubc", "--protocol", "smoke", "--publish"],
            "unknown method 'bicubc'. Did you mean 'bicubic'",
        ),
        (
            ["run", "-m", "nearest", "-d", "biomasters", "--protocol", "smoke", "--publish"],
            "Did you mean 'biomassters'",
        ),
        (["run", "-m", "nearest", "--protocol", "smoek"], "unknown protocol 'smoek'"),
        (
            ["run", "-m", "nearest", "-d", "biomassters", "--protocol", "smoke", "--publish"],
            "pass --root DIR or set GSR_BENCH_BIOMASSTERS_ROOT",
        ),
    ],
)
def test_bad_names_are_one_line_without_traceback(
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.delenv("GSR_BENCH_BIOMASSTERS_ROOT", raising=False)
    assert main([*argv, "-q"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    if (workdir / "results").exists():  # the tracker may be open by then, but no run was made
        tracker = Tracker(workdir / "results")
        assert not [r for status in ("RUNNING", "FINISHED", "FAILED", "KILLED") for r in tracker.runs(status)]
    assert main([*argv, "-q", "--verbose"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_bad_protocol_file_is_named(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = workdir / "mine.toml"
    bad.write_text('name = "mine"\nversion = "1"\n[eval]\nbatchsize = 3\n')
    assert main(["run", "-m", "nearest", "--protocol", str(bad), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: unknown key 'eval.batchsize' (did you mean 'eval.batch_size'?)" in err
    assert not (workdir / "results").exists()


def test_project_to_source_reports_raw_and_projected(workdir: Path) -> None:
    assert (
        main(
            [
                "run",
                "-m",
                "bilinear",
                "--protocol",
                "smoke",
                "--publish",
                "-q",
                "--project-to-source",
                "--no-leaderboard",
            ]
        )
        == 0
    )
    (run,) = Tracker(workdir / "results").runs()
    m = run.data.metrics
    assert m["consistency_rmse"] > 1.0  # bilinear does not keep block means
    assert m["projected_consistency_rmse"] < 1e-3
    assert "projected_rmse" in m and m["projected_rmse"] != m["rmse"]
    assert run.data.params["protocol.eval.project_to_source"] == "True"


@pytest.mark.parametrize("composite", ["seasonal", "monthly"])
def test_other_composites_reach_the_regression_methods(workdir: Path, composite: str) -> None:
    """A protocol naming another composite: prepared once, its channel names travel to the methods.

    Fails for a regression method whose input normalization blows up (availability masks
    constant over the train chips sent RMSEs to 10^3-10^6), that outputs a constant (RMSE alone
    passed that: within 3x of bicubic), or whose output does not follow the target."""
    protocol = workdir / f"{composite}.toml"
    text = (Path(__file__).parents[1] / "gsr_bench" / "protocols" / "smoke.toml").read_text()
    text = text.replace('name = "smoke"', f'name = "smoke-{composite}"')
    protocol.write_text(f'{text}composite = "{composite}"\n')  # into [datasets.biomassters-synthetic]
    args = ["run", "-m", "resnext", "-m", "unet", "-m", "bicubic", "--protocol", str(protocol), "-q"]
    assert main(args) == 0
    runs = {r.data.tags["method"]: r for r in Tracker(workdir / "results").runs()}
    assert {r.info.status for r in runs.values()} == {"FINISHED"}
    # masks constant over the train chips once sent these to RMSEs of 10^3-10^6
    assert all(r.data.metrics["rmse"] < 3 * runs["bicubic"].data.metrics["rmse"] for r in runs.values())
    tracker = Tracker(workdir / "results")
    test_h5 = next(Path(os.environ["GSR_BENCH_CACHE"]).glob("prepared/*/test.h5"))
    with h5py.File(test_h5, "r") as f:
        targets = {c.decode(): f["target"][i, 0, :250, :250] for i, c in enumerate(f["chip_id"][:])}
    for m, r in runs.items():
        path = tracker.download(r.info.run_id, "predictions.npz", workdir / "dl" / m)
        with np.load(path) as npz:
            pred = npz["pred"][:, 0].astype(np.float64)
            target = np.stack([targets[str(i)] for i in npz["ids"]])
        # 20 smoke steps teach regression little (R² -0.2 to 0.1), but a guide that reaches it
        # moves its output with the target: correlation 0.08-0.42 measured, 0 for noise
        assert np.corrcoef(pred.ravel(), target.ravel())[0, 1] > 0.05, m
        assert pred.std(axis=(1, 2)).mean() > 1.0, m  # varies within a tile: not a constant
    resnext = runs["resnext"].data.params
    assert resnext["method.options.width"] == "0.03125"
    assert resnext["chosen.stage_widths"] == "[8, 16, 32, 64]"
    assert "method.options.width" not in runs["unet"].data.params
    assert runs["unet"].data.params["chosen.encoder"] == "resnet34"
    channels = set()
    for path in Path(os.environ["GSR_BENCH_CACHE"]).glob("prepared/*/train.h5"):
        with h5py.File(path, "r") as f:
            channels.add(tuple(json.loads(f.attrs["guide_channels"])))
    assert COMPOSITES[composite][1] in channels


def test_one_copy_of_the_splits_per_data_key_freed_after_its_last_job(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Methods with their own training budget read the same tiles: one copy of the splits, not
    one per protocol fingerprint (at paper scale, copies of a 15 GB train split stacked up on the
    GPU), released once the last job that reads it is done."""
    from gsr_bench.executors import local as runner_module
    from gsr_bench.executors.local import Runner
    from gsr_bench.jobs import data_key
    from gsr_bench.planning import plan_jobs
    from gsr_bench.plugins import get_plugin_manager
    from gsr_bench.protocol import load_protocol

    quick = load_protocol("quick")
    pm = get_plugin_manager()
    dada, msg, utae = (
        plan_jobs(pm, [m], ["biomassters-synthetic"], quick, [0])[0] for m in ("dada", "msg", "utae")
    )
    assert dada.protocol.fingerprint() != msg.protocol.fingerprint()  # quick's [method_train.dada]
    assert data_key(dada) == data_key(msg)
    assert data_key(utae) != data_key(msg)  # the monthly guide: other tiles
    loads: list[Any] = []
    real = runner_module.load_splits

    def counted(job: Any, *args: Any, **kw: Any) -> Any:
        loads.append(real(job, *args, **kw))
        return loads[-1]

    monkeypatch.setattr(runner_module, "load_splits", counted)
    held: list[tuple[bool, bool]] = []  # at each release: train tiles resident, file open
    real_release = runner_module.release_splits

    def release(splits: Any) -> None:
        held.append((bool(splits.train._resident), splits.train._file is not None))
        real_release(splits)

    monkeypatch.setattr(runner_module, "release_splits", release)
    smoke = load_protocol("smoke").with_overrides({"method_train": {"msg-ng": {"steps": 4}}}, "test")
    jobs = plan_jobs(pm, ["msg-ng", "bilinear"], ["biomassters-synthetic"], smoke, [0])
    assert jobs[0].protocol.fingerprint() != jobs[1].protocol.fingerprint()
    runner = Runner(pm, Tracker(workdir / "results"), workdir / "results", "cpu", progress=False)
    results = runner.run(jobs)
    assert [r.status for r in results] == ["FINISHED", "FINISHED"]
    assert len(loads) == 1 and not runner._splits
    (splits,) = loads
    assert held == [(True, True)]  # one release, after the jobs: the tiles were held till then
    assert splits.train._file is None  # read, then let go
    assert not splits.train._resident and not splits.test._cache

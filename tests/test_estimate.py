"""``gsr-bench estimate``: jobs, data and time from saved bench rates, before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gsr_bench.cli import main
from gsr_bench.estimate import estimate, load_rates
from gsr_bench.plugins import PluginManager
from gsr_bench.protocol import load_protocol
from gsr_bench.runner import plan_jobs


def _rates(folder: Path) -> Path:
    rates = [
        {"method": "bicubic", "device": "cpu:test", "mpix_s": 10.0, "options": {}, "batch": 4},
        {
            "method": "msg",
            "device": "cpu:test",
            "mpix_s": 1.0,
            "train_mpix_s": 0.5,
            "options": {},
            "batch": 4,
        },
        {
            "method": "p2p",
            "device": "cpu:test",
            "mpix_s": 0.1,
            "options": {"iterations": 2},
            "batch": 4,
            "iteration_s": 0.5,
        },
    ]
    (folder / "bench").mkdir(parents=True)
    path = folder / "bench" / "20260101-000000-1.json"
    path.write_text(json.dumps(rates))
    return path


def test_job_times_follow_the_protocol_budget(tmp_path: Path) -> None:
    _rates(tmp_path)
    rates = load_rates(tmp_path / "bench", "cpu")
    proto = load_protocol("quick")
    jobs = plan_jobs(PluginManager(), ["bicubic", "msg", "p2p"], ["biomassters-synthetic"], proto, [0])
    found, data = estimate(jobs, rates)
    by = {e.method: e for e in found}
    t = proto.train
    test_px = proto.datasets["biomassters-synthetic"]["test_chips"] * 250 * 250
    assert by["bicubic"].train_s == 0 and by["bicubic"].eval_s == pytest.approx(test_px / 10e6)
    train_s = t.steps * t.batch_size * t.patch_size**2 / 0.5e6
    val_s = (t.steps // t.val_every) * 8 * 250 * 250 / 1e6  # 8 of the 80 train chips validate
    assert by["msg"].train_s == pytest.approx(train_s + val_s)
    calls = proto.datasets["biomassters-synthetic"]["test_chips"] / 4
    p2p_eval = test_px / 0.1e6 + calls * 0.5 * (t.per_image_iterations - 2)
    assert by["p2p"].eval_s == pytest.approx(p2p_eval)
    (d,) = data
    assert d.chips == 104 and d.gigabytes == pytest.approx(104 * (250 * 250 * (14 * 2 + 5) + 2500) / 1e9)


def test_estimate_command_prints_the_table_and_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _rates(tmp_path)
    args = ["estimate", "-m", "msg", "-m", "bicubic", "--results", str(tmp_path), "--device", "cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "msg/biomassters-synthetic/quick/seed1" in out and "total" in out and "104 chips" in out
    assert main([*args, "--max-hours", "0.0001", "--strict"]) == 1
    assert "exceeds --max-hours" in capsys.readouterr().err


def test_missing_rates_say_how_to_make_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", "-m", "msg", "--results", str(tmp_path), "--device", "cuda"]) == 2
    assert "gsr-bench bench --device cuda" in capsys.readouterr().err


GSR4B_METHODS = ("msg", "msg-ng", "fdsr", "jbu", "p2p", "unet", "resnext", "nearest", "bilinear", "bicubic")


def test_paper_fits_a_day_of_the_reference_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    """The budget the paper protocol's comments promise for GSR4B's table, by its own reference
    rates (the methods beyond it have no GPU rates yet: their first GPU check makes them)."""
    methods = [a for m in GSR4B_METHODS for a in ("-m", m)]
    args = ["estimate", *methods, "-d", "biomassters", "--protocol", "paper", "--rates", "h200-reference"]
    assert main([*args, "--strict", "--max-hours", "24"]) == 0
    out = capsys.readouterr().out
    assert "11,462 chips" in out and "resnext/biomassters/paper/seed2" in out
    assert (
        main(
            [
                "estimate",
                "-m",
                "dada",
                "-d",
                "biomassters",
                "--protocol",
                "paper",
                "--rates",
                "h200-reference",
            ]
        )
        == 2
    )
    assert "no bench rate for method 'dada'" in capsys.readouterr().err

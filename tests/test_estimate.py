"""``gsr-bench estimate``: jobs, data and time from saved bench rates, before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gsr_bench.cli import main
from gsr_bench.estimate import estimate, load_rates
from gsr_bench.planning import plan_jobs
from gsr_bench.plugins import PluginManager
from gsr_bench.protocol import load_protocol


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
    """Times worked out by hand from quick's numbers (300 steps of 8 patches of 60 px, a
    validation on 8 chips every 100 steps, 24 test chips of 250 px, P2P's 16 iterations) and the
    rates above.

    Fails if the budget drops the batch or the patch size, forgets the validations, counts the
    test chips at the protocol's crop wrong, or prices P2P's iterations beyond the two the bench
    measured other than per batch of 4."""
    _rates(tmp_path)
    rates = load_rates(tmp_path / "bench", "cpu")
    proto = load_protocol("quick")
    jobs = plan_jobs(PluginManager(), ["bicubic", "msg", "p2p"], ["biomassters-synthetic"], proto, [0])
    found, data, missing = estimate(jobs, rates)
    assert not missing
    by = {e.method: e for e in found}
    # 24 x 250² px = 1.5 Mpx at 10 Mpix/s
    assert by["bicubic"].train_s == 0 and by["bicubic"].eval_s == pytest.approx(0.15)
    # 300 x 8 x 60² px = 8.64 Mpx trained at 0.5 Mpix/s: 17.28 s; 3 validations x 8 x 250² px =
    # 1.5 Mpx predicted at 1 Mpix/s: 1.5 s
    assert by["msg"].train_s == pytest.approx(18.78)
    assert by["msg"].eval_s == pytest.approx(1.5)
    # 1.5 Mpx at 0.1 Mpix/s: 15 s; 6 batches of 4 x 0.5 s x (16 - 2) more iterations: 42 s
    assert by["p2p"].eval_s == pytest.approx(57.0)
    (d,) = data
    # 104 chips of 250² px: 14 guide channels in float16, the target (float32) and mask (bool),
    # and the 25² source in float32
    assert d.chips == 104 and d.gigabytes == pytest.approx(104 * (62500 * (28 + 4 + 1) + 2500) / 1e9)


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


GSR4B_METHODS = ("msg", "msg-ng", "fdsr", "jbu", "p2p", "unet", "resnext", "nearest", "bilinear", "bicubic")


def test_paper_fits_a_day_of_the_reference_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    """The budget the paper protocol's comments promise for GSR4B's table, by its own reference
    rates (the methods beyond it have no measured GPU rates yet: derived from their FLOPs)."""
    methods = [a for m in GSR4B_METHODS for a in ("-m", m)]
    args = ["estimate", *methods, "-d", "biomassters", "--protocol", "paper", "--rates", "h200-reference"]
    assert main([*args, "--strict", "--max-hours", "24"]) == 0
    out = capsys.readouterr().out
    assert "11,462 chips" in out and "resnext/biomassters/paper/seed2" in out
    every = ["estimate", "--all", "-d", "biomassters", "--protocol", "paper", "--rates", "h200-reference"]
    assert main(every) == 0  # the README's command: methods without a GPU rate derived, marked
    out = capsys.readouterr().out
    assert all(f"{m}/biomassters/paper/seed0" in out for m in ("dada", "lgr", "msg-t", "utae"))
    assert out.count("derived from") == 4 * 3  # three seeds each


def test_methods_without_a_rate_are_derived_from_flops_or_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's own paper estimate stopped at `no bench rate for method 'dada'`; a machine
    with no saved rates stopped at once. Now: every method with a rate is estimated, those
    without one from their FLOP count at the measured methods' effective FLOP/s (marked), and
    what cannot be derived is listed."""
    from gsr_bench.estimate import derive_rates, flops_per_mpix

    pm = PluginManager()
    rates = load_rates(tmp_path, path=Path("h200-reference"))
    derived, why = derive_rates(["utae", "dada", "nearest"], rates, pm)
    utae_flops, learned = flops_per_mpix(pm.methods.get("utae"))
    assert learned and utae_flops > 1e9
    assert "derived from" in derived["utae"]["derived"] and derived["utae"]["train_mpix_s"] > 0
    # the same FLOP/s for every derived method: rates in inverse proportion to their FLOPs
    dada_flops, _ = flops_per_mpix(pm.methods.get("dada"))
    assert derived["utae"]["mpix_s"] * utae_flops == pytest.approx(derived["dada"]["mpix_s"] * dada_flops)
    assert why == {"nearest": "no FLOPs counted: time it with `gsr-bench bench`"}
    args = [
        "estimate",
        "-m",
        "utae",
        "-m",
        "nearest",
        "-m",
        "msg",
        "--results",
        str(tmp_path),
        "--device",
        "cpu",
    ]
    assert main(args) == 0  # nothing saved here: the shipped reference rates, with a warning
    out, err = capsys.readouterr()
    assert "planning with the shipped H200 reference rates" in err
    assert "utae/biomassters-synthetic/quick/seed0" in out and "derived from" in out and "5 jobs" in out


def test_derived_rates_calibrate_with_the_flops_each_rate_was_timed_at() -> None:
    """The FLOPs of a measured method are those of the options it was timed with, as bench
    recorded them: recounting at the CPU's bench options gave the paper-width ResNeXt of the
    reference rates the FLOPs of a 1/32-width one, and skewed every derived rate."""
    from gsr_bench.estimate import derive_rates, flops_per_mpix

    pm = PluginManager()
    rate = {"method": "msg", "device": "cpu", "mpix_s": 10.0, "train_mpix_s": 5.0, "options": {}}
    dada_flops, _ = flops_per_mpix(pm.methods.get("dada"))
    recorded, _ = derive_rates(["dada"], {"msg": {**rate, "flops_per_pixel": 2e4}}, pm)
    assert recorded["dada"]["mpix_s"] == pytest.approx(10.0 * 2e4 * 1e6 / dada_flops)
    assert recorded["dada"]["train_mpix_s"] == pytest.approx(recorded["dada"]["mpix_s"] / 2)
    counted = {}
    for width in (32, 8):  # a rate without recorded FLOPs: counted at the options it was timed at
        timed = {**rate, "options": {"width": width}}
        counted[width], _ = derive_rates(["dada"], {"msg": timed}, pm)
    msg_32, _ = flops_per_mpix(pm.methods.get("msg"), options={"width": 32})
    msg_8, _ = flops_per_mpix(pm.methods.get("msg"), options={"width": 8})
    assert msg_32 > 2 * msg_8
    ratio = counted[32]["dada"]["mpix_s"] / counted[8]["dada"]["mpix_s"]
    assert ratio == pytest.approx(msg_32 / msg_8)

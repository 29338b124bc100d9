"""``gsr-bench bench``: the table, the saved timings and the regression gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gsr_bench.cli import main


def test_bench_table_and_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "-m", "nearest", "-m", "bicubic", "--repeats", "3", "--results", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "GSR4B Mpix/s" in out and "37,000" in out and "262,000" in out
    (saved,) = (tmp_path / "bench").glob("*.json")
    timings = json.loads(saved.read_text())
    assert {t["method"] for t in timings} == {"nearest", "bicubic"} and all(t["mpix_s"] > 0 for t in timings)
    # A previous save 100x faster than anything real: the comparison must flag a regression.
    for t in timings:
        t["median_s"] /= 100
    saved.write_text(json.dumps(timings))
    assert main([*args, "--compare"]) == 1
    assert "regression: nearest" in capsys.readouterr().err
    # Against a save of the same speed and a generous threshold, it passes.
    assert main([*args, "--compare", "--threshold", "100"]) == 0


def test_bench_counts_flops_and_times_temporal_methods_on_a_year(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "bench",
        "-m",
        "utae",
        "-m",
        "bicubic",
        "--repeats",
        "1",
        "--batch",
        "1",
        "--results",
        str(tmp_path),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "kFLOP/px" in out and "read 12 guide images" in out
    (saved,) = (tmp_path / "bench").glob("*.json")
    timings = {t["method"]: t for t in json.loads(saved.read_text())}
    assert timings["utae"]["periods"] == 12 and timings["bicubic"]["periods"] == 1
    # U-TAE's convolutions over 12 months: tens of kFLOP a pixel; interpolation counts none
    assert 1e4 < timings["utae"]["flops_per_pixel"] < 1e6
    assert timings["bicubic"]["flops_per_pixel"] == 0

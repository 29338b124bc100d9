"""``gsr-bench data check``: summary, statistics, non-zero exit naming each bad file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from gsr_bench.cli import main


def test_check_ok_with_stats(synth_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", "--root", str(synth_root), "--stats", "--max-chips", "4"]) == 0
    out = capsys.readouterr().out
    assert "train: 9" in out and "test: 3" in out
    assert "agb_mean" in out and "s1_vv_asc_mean" in out and "corr_agb_ndvi_leafon" in out
    assert "0 error(s)" in out


def test_check_real_sample(real_sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", "--root", str(real_sample), "--stats"]) == 0
    out = capsys.readouterr().out
    assert "train: 1" in out
    assert "121.65" in out  # the real label's mean


def test_check_names_every_bad_file(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "bad"
    shutil.copytree(synth_root, root)
    files = sorted((root / "train_features").glob("*_S2_*.tif"))
    files[0].unlink()
    files[1].write_bytes(files[1].read_bytes()[:5000])  # truncated download
    tifffile.imwrite(
        files[2],
        np.zeros((256, 256, 10), np.uint16),
        photometric="minisblack",
        planarconfig="contig",
    )
    s1 = sorted((root / "train_features").glob("*_S1_*.tif"))[0]
    tifffile.imwrite(s1, np.zeros((256, 256, 4), np.float64), photometric="minisblack", planarconfig="contig")
    assert main(["data", "check", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"{files[0].name}: file missing" in out
    assert f"{files[1].name}: " in out
    assert f"{files[2].name}: expected 11 bands, found 10" in out
    assert f"warning: {s1}" in out and "dtype float64" in out

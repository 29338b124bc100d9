"""A disk that fills up during ``data synth``, ``prepare`` or ``download``: one line, and a rerun
resumes.

The disk is real: a small tmpfs mounted for the test (needs root; skipped otherwise), grown
afterwards with ``remount`` as a user would free space.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from gsr_bench.cli import main
from gsr_bench.data.prepare import prepare_split
from gsr_bench_datasets.biomassters.dataset import BioMassters
from gsr_bench_datasets.biomassters.synth import synthesize


@pytest.fixture
def small_disk(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A tmpfs of ``request.param`` (a prepared chip is 2 MB, a synthetic chip's TIFFs 30 MB)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    size = f"size={request.param}"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", size, "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()[:80]}): needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def _grow(mount: Path) -> None:
    subprocess.run(["mount", "-o", "remount,size=256M", str(mount)], check=True)


@pytest.mark.parametrize("small_disk", ["6M"], indirect=True)
def test_prepare_on_a_full_disk_stops_with_one_line_and_resumes(
    small_disk: Path, synth_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = small_disk / "train.h5"
    args = [
        "data",
        "prepare",
        "-d",
        "biomassters",
        "--crop",
        "250",
        "--root",
        str(synth_root),
        "--split",
        "train",
        "--out",
        str(out),
        "--workers",
        "1",
    ]
    assert main([*args, "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "disk is full" in err and "rerun" in err
    partial = Path(str(out) + ".partial")
    with h5py.File(partial, "r") as f:  # closed cleanly between two chips: readable, some done
        written = int(f["done"][:].sum())
    assert 0 < written < 9
    _grow(small_disk)
    assert main([*args, "-q"]) == 0
    with h5py.File(out, "r") as f:
        assert f.attrs["complete"] and f["done"][:].all()
    reference = prepare_split(
        BioMassters(str(synth_root)), "train", small_disk / "ref.h5", crop=250, workers=1, progress=False
    )
    with h5py.File(out, "r") as a, h5py.File(reference, "r") as b:
        np.testing.assert_array_equal(a["guide"][:], b["guide"][:])
        assert dict(a.attrs)["guide_mean"].tolist() == dict(b.attrs)["guide_mean"].tolist()


@pytest.mark.parametrize("small_disk", ["80M"], indirect=True)
def test_synth_on_a_full_disk_stops_and_a_rerun_keeps_the_chips_written(
    small_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = small_disk / "synth"
    args = ["data", "synth", "--out", str(out), "--chips", "2", "--test-chips", "1", "--workers", "1", "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "disk is full" in err
    assert not (out / "features_metadata.csv").exists()
    _grow(small_disk)
    labels = sorted((out / "train_agbm").glob("*.tif"))
    assert labels  # one chip fitted before the disk filled up
    kept = {p: p.stat().st_mtime_ns for p in labels}
    assert main(args) == 0
    for p, mtime in kept.items():  # finished chips are not simulated again
        assert p.stat().st_mtime_ns == mtime
    fresh = synthesize(tmp_path / "fresh", 2, test_chips=1, workers=1, progress=False)
    assert (out / "features_metadata.csv").read_text() == (fresh / "features_metadata.csv").read_text()


@pytest.mark.parametrize("small_disk", ["4M"], indirect=True)
def test_download_refuses_a_disk_too_small_and_stops_on_one_that_fills(
    small_disk: Path, local_s3: Any, synth_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused before the first file when the listing's sizes do not fit; on a disk that passes
    that check but fills during the download (tmpfs rounds every file up to whole pages, which
    the sizes do not count), one line, and the rerun on a grown disk completes."""
    root = small_disk / "bio"
    args = ["data", "download", "--root", str(root), "--endpoint-url", local_s3.url, "--bucket", synth_bucket]
    args += ["--split", "train", "--months", "8", "--sensors", "S2", "-q", "--workers", "2"]
    assert main(args) == 2, capsys.readouterr()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the disk is full" in err[0] and "rerun the same command" in err[0], err
    assert not list(root.glob("*_features/*")) and not list(root.glob("*_agbm/*"))

    need = 9 * 1_443_550 + 9 * 262_482  # nine S2 images of August and nine labels
    used = shutil.disk_usage(small_disk).used  # the metadata copies of the refused try
    room = need + used + 32 * 1024  # what the check asks for, and less than the pages take
    subprocess.run(["mount", "-o", f"remount,size={room}", str(small_disk)], check=True)
    assert main(args) == 2, capsys.readouterr()
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "the disk is full" in err[0], captured
    verified = (root / ".download" / "verified.jsonl").read_text().splitlines()
    assert 0 < len(verified) < 18, verified
    _grow(small_disk)
    assert main(args) == 0, capsys.readouterr()
    assert json.loads((root / "download.json").read_text())["present"] >= len(verified)
    assert main(["data", "check", "--root", str(root)]) == 0

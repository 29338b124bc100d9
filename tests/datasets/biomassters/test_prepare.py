"""``data prepare``: content, statistics, resume after a kill, and nothing left on bad input."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from gsr_bench.cli import main
from gsr_bench.data.prepare import prepare_split
from gsr_bench.data.store import prepare
from gsr_bench.errors import DataError
from gsr_bench.faults import KILL_ENV
from gsr_bench_datasets.biomassters.dataset import BioMassters

ROOT_ARGS = ["data", "prepare", "-d", "biomassters", "--root"]


def test_prepared_content(prepared: dict[str, Path], synth_root: Path) -> None:
    with h5py.File(prepared["train"], "r") as f:
        assert f.attrs["complete"]
        assert f["guide"].shape == (9, 14, 250, 250)
        # float16, one uncompressed chunk a tile: a read is one copy into the destination
        assert f["guide"].chunks == (1, 14, 250, 250) and f["guide"].compression is None
        assert f["guide"].dtype == np.float16 and f["target"].dtype == np.float32
        assert f["source"].shape == (9, 1, 25, 25)
        t, s = f["target"][0, 0], f["source"][0, 0]
        np.testing.assert_allclose(s, t.reshape(25, 10, 25, 10).mean(axis=(1, 3)), rtol=1e-5, atol=1e-4)
        assert f["extra/s2_months"][:, 7:].all()
        assert len(f.attrs["guide_mean"]) == 14 and (np.asarray(f.attrs["guide_std"]) > 0).all()
        assert f.attrs["identity"] == str(synth_root.resolve()) and f.attrs["scale"] == 10
        ids = [c.decode() for c in f["chip_id"][:]]
        assert f["is_val"][:].tolist() == [BioMassters().is_val(c) for c in ids]
    assert not Path(str(prepared["train"]) + ".partial").exists()


def test_float16_guide_is_the_float32_one_rounded(synth_root: Path, tmp_path: Path) -> None:
    dataset = BioMassters(str(synth_root))
    half = prepare_split(dataset, "test", tmp_path / "f16.h5", 250, workers=1, progress=False)
    full = prepare_split(
        dataset, "test", tmp_path / "f32.h5", 250, workers=1, progress=False, guide_dtype="float32"
    )
    with h5py.File(half, "r") as a, h5py.File(full, "r") as b:
        g16, g32 = a["guide"][:], b["guide"][:]
        assert g32.dtype == np.float32
        assert np.array_equal(np.isnan(g16), np.isnan(g32))  # no-data stays NaN
        np.testing.assert_array_equal(g16, g32.astype(np.float16))
        np.testing.assert_array_equal(a["target"][:], b["target"][:])
    with pytest.raises(DataError, match="guide dtype 'int8'"):
        prepare_split(dataset, "test", tmp_path / "x.h5", 250, workers=1, progress=False, guide_dtype="int8")


def test_fallback_when_no_leafon_month(synth_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(synth_root, root)
    meta = root / "features_metadata.csv"
    leafon = ("April", "May", "June", "July", "August")
    lines = meta.read_text().splitlines()
    kept = [lines[0]] + [
        ln for ln in lines[1:] if not (ln.split(",")[4] in leafon and ln.split(",")[2] == "S2")
    ]
    meta.write_text("\n".join(kept) + "\n")
    out = prepare_split(BioMassters(str(root)), "test", tmp_path / "t.h5", 250, workers=1, progress=False)
    with h5py.File(out, "r") as f:
        fallback = f["extra/fallback_month"][:]
        assert ((fallback >= 0) & (fallback < 7)).all()
        assert np.isfinite(f["guide"][0, :10]).mean() > 0.99


def test_interrupted_prepare_resumes_to_the_same_file(synth_root: Path, tmp_path: Path) -> None:
    reference = prepare_split(
        BioMassters(str(synth_root)), "train", tmp_path / "ref.h5", 250, workers=1, progress=False
    )
    out = tmp_path / "killed.h5"
    partial = Path(str(out) + ".partial")
    args = [*ROOT_ARGS, str(synth_root), "--split", "train", "--out", str(out), "--crop", "250"]
    args += ["--workers", "1"]
    cmd = [sys.executable, "-m", "gsr_bench", *args]
    # the process kills itself once its third tile is flushed: the same point on any machine
    proc = subprocess.run(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, KILL_ENV: "prepare:3"}
    )
    assert proc.returncode == -signal.SIGKILL
    with h5py.File(partial, "r") as f:
        assert int(f["done"][:].sum()) == 3
    assert not out.exists(), "a killed preparation must never leave a complete-looking file"
    assert partial.exists()
    assert main([*args, "-q"]) == 0
    assert out.exists() and not partial.exists()
    with h5py.File(reference, "r") as a, h5py.File(out, "r") as b:
        for name in ("guide", "target", "source", "valid", "extra/fallback_month"):
            np.testing.assert_array_equal(a[name][:], b[name][:])
        np.testing.assert_allclose(a.attrs["guide_mean"], b.attrs["guide_mean"])


def _copy(root: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "bad"
    shutil.copytree(root, dst)
    return dst


def test_missing_tiff_fails_before_writing(synth_root: Path, tmp_path: Path) -> None:
    root = _copy(synth_root, tmp_path)
    victim = sorted((root / "test_features").iterdir())[3]
    victim.unlink()
    out = tmp_path / "x.h5"
    with pytest.raises(DataError, match=f"{victim.name}: file missing"):
        prepare_split(BioMassters(str(root)), "test", out, 250, workers=1, progress=False)
    assert not out.exists() and not Path(str(out) + ".partial").exists()


def test_wrong_band_count_and_size_are_named(synth_root: Path, tmp_path: Path) -> None:
    import tifffile

    root = _copy(synth_root, tmp_path)
    s1 = sorted((root / "test_features").glob("*_S1_*.tif"))[0]
    tifffile.imwrite(s1, np.zeros((256, 256, 3), np.float32), photometric="minisblack", planarconfig="contig")
    with pytest.raises(DataError, match=f"{s1.name}: .*expected 4 bands, found 3"):
        prepare_split(BioMassters(str(root)), "test", tmp_path / "y.h5", 250, workers=1, progress=False)
    tifffile.imwrite(s1, np.zeros((128, 256, 4), np.float32), photometric="minisblack", planarconfig="contig")
    with pytest.raises(DataError, match=f"{s1.name}: .*size 256x128 differs from the label's 256x256"):
        prepare_split(BioMassters(str(root)), "test", tmp_path / "y.h5", 250, workers=1, progress=False)


def test_empty_split(synth_root: Path, tmp_path: Path) -> None:
    root = _copy(synth_root, tmp_path)
    meta = root / "features_metadata.csv"
    meta.write_text("\n".join(ln for ln in meta.read_text().splitlines() if ",test," not in ln) + "\n")
    with pytest.raises(DataError, match="split 'test' has no tiles"):
        prepare_split(BioMassters(str(root)), "test", tmp_path / "z.h5", 250, workers=1, progress=False)


def test_parallel_prepare_equals_serial(synth_root: Path, prepared: dict[str, Path], tmp_path: Path) -> None:
    out = prepare_split(
        BioMassters(str(synth_root)), "test", tmp_path / "p.h5", 250, workers=2, progress=False
    )
    """Every dataset and attribute of the store, not the guide alone: fails if workers write
    tiles to the wrong rows (ids, targets and masks out of step with the guide), lose the
    fallback months, or sum the statistics in another order."""
    with h5py.File(prepared["test"], "r") as a, h5py.File(out, "r") as b:
        names: list[str] = []
        a.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        others: list[str] = []
        b.visititems(lambda name, obj: others.append(name) if isinstance(obj, h5py.Dataset) else None)
        assert sorted(names) == sorted(others) and {"guide", "target", "valid", "chip_id"} <= set(names)
        for name in names:
            np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)
        assert sorted(a.attrs) == sorted(b.attrs)
        for key in set(a.attrs) - {"prepared_at"}:  # the one attribute that is the clock's
            np.testing.assert_array_equal(a.attrs[key], b.attrs[key], err_msg=key)


def test_cli_prepare_error_is_one_line_and_leaves_nothing(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _copy(synth_root, tmp_path)
    victim = sorted((root / "train_agbm").iterdir())[0]
    victim.write_bytes(b"II*\x00garbage")
    out = tmp_path / "cli.h5"
    args = [*ROOT_ARGS, str(root), "--split", "train", "--out", str(out), "-q"]
    assert main([*args, "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gsr-bench: error: ") and victim.name in err and "not a readable TIFF" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and not Path(str(out) + ".partial").exists()


def test_a_store_is_prepared_again_when_its_folder_changes(
    tmp_path: Path, real_months: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "chips"
    shutil.copytree(real_months, root)
    dataset = BioMassters(str(root))
    first = prepare(dataset, tmp_path / "cache", 250, progress=False, workers=1, splits=("train",))["train"]
    with h5py.File(first, "r") as f:
        assert sorted(c.decode() for c in f["chip_id"][:]) == ["000aa810", "288afc34"]
    again = prepare(
        BioMassters(str(root)), tmp_path / "cache", 250, progress=False, workers=1, splits=("train",)
    )
    assert again["train"] == first and "preparing again" not in caplog.text  # unchanged: reused

    metadata = root / "features_metadata.csv"  # one chip leaves the folder's list
    metadata.write_text("".join(ln for ln in metadata.open() if not ln.startswith("000aa810")))
    changed = BioMassters(str(root))
    assert changed.content_revision() != dataset.content_revision()
    path = prepare(changed, tmp_path / "cache", 250, progress=False, workers=1, splits=("train",))["train"]
    assert "prepared from other files" in caplog.text and "preparing again" in caplog.text
    with h5py.File(path, "r") as f:
        assert [c.decode() for c in f["chip_id"][:]] == ["288afc34"]


_OPEN_STORE = """
import sys
from gsr_bench.data.store import prepare
from gsr_bench_datasets.biomassters.dataset import BioMassters
for _ in range(30):
    prepare(BioMassters(sys.argv[1]), sys.argv[2], 250, progress=False, workers=1)
"""


def test_processes_opening_one_store_at_once_keep_it(synth_root: Path, tmp_path: Path) -> None:
    """Ray workers and DDP ranks open the same prepared store at once. Its signature file was
    rewritten by each, and one that read it half-written took the store for another data's and
    deleted it under the others (a loaded `make test` failed every Ray job of a run that way)."""
    cache = tmp_path / "cache"
    paths = prepare(BioMassters(str(synth_root)), cache, 250, progress=False, workers=1)
    before = {s: p.stat().st_ino for s, p in paths.items()}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_STORE, str(synth_root), str(cache)], stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    errors = [p.communicate()[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    assert {s: p.stat().st_ino for s, p in paths.items()} == before  # never deleted, never rebuilt

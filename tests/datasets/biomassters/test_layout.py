"""The reader on the real BioMassters sample and on layouts it must accept or refuse."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from gsr_bench.data.tiff import posix_cksum, read_tiff
from gsr_bench.errors import DataError
from gsr_bench_datasets.biomassters.layout import BioMasstersLayout, month_index


def test_real_sample_known_values(real_sample: Path) -> None:
    layout = BioMasstersLayout(real_sample)
    (chip,) = layout.chips("train")
    assert chip.chip_id == "001b0634" and set(chip.s1) == {0} and set(chip.s2) == {0}
    raw = layout.read_chip(chip)
    assert raw.target.shape == (256, 256)
    assert raw.target.mean() == pytest.approx(121.6, abs=0.05)
    assert (raw.target == 0).mean() * 100 == pytest.approx(19.1, abs=0.05)
    s1_means = np.nanmean(raw.s1[0].reshape(4, -1), axis=1)
    np.testing.assert_allclose(s1_means, [-10.2, -16.2, -10.7, -16.7], atol=0.05)
    assert raw.s1_present.tolist() == [True] + [False] * 11
    assert raw.s2_present.tolist() == [True] + [False] * 11
    assert np.isnan(raw.s2[1:]).all()  # absent months are NaN, not zeros
    assert 0 <= np.nanmax(raw.clp[0]) <= 100


def test_real_label_checksum_matches_official_metadata(real_sample: Path) -> None:
    import pandas as pd

    meta = pd.read_csv(real_sample / "train_agbm_metadata.csv")
    data = (real_sample / "train_agbm" / "001b0634_agbm.tif").read_bytes()
    assert posix_cksum(data) == int(meta.loc[0, "cksum"])
    assert len(data) == int(meta.loc[0, "size"])


def _copy(real_sample: Path, tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(real_sample, root)
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return root


def test_alternative_metadata_name_and_compressed_other_dtype_tiffs(
    real_sample: Path, tmp_path: Path
) -> None:
    root = _copy(real_sample, tmp_path)
    (root / "features_metadata.csv").rename(root / "biomassters_features_metadata.csv")
    s1_path = root / "train_features" / "001b0634_S1_00.tif"
    s1 = tifffile.imread(s1_path)
    tifffile.imwrite(
        s1_path,
        s1.astype(np.float64),
        compression="zlib",
        photometric="minisblack",
        planarconfig="contig",
    )
    layout = BioMasstersLayout(root)
    raw = layout.read_chip(layout.chips()[0])
    assert raw.s1.dtype == np.float32
    np.testing.assert_allclose(np.nanmean(raw.s1[0, 0]), -10.24, atol=0.01)


def test_s1_nodata_becomes_nan(tmp_path: Path) -> None:
    path = tmp_path / "s1.tif"
    image = np.full((8, 8, 4), -12.0, np.float32)
    image[0, 0] = -9999
    tifffile.imwrite(path, image, photometric="minisblack", planarconfig="contig")
    assert read_tiff(path, 4).shape == (4, 8, 8)
    with pytest.raises(DataError, match=r"s1.tif: expected 11 band\(s\), found 4"):
        read_tiff(path, 11)


def test_month_names_and_indices() -> None:
    assert month_index("September", "x") == 0
    assert month_index("August", "x") == 11
    assert month_index("03", "x") == 3
    with pytest.raises(DataError, match="month 'Smarch'"):
        month_index("Smarch", "x")


def test_missing_folder_metadata_and_columns(real_sample: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="BioMassters folder not found"):
        BioMasstersLayout(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"no features_metadata\.csv or biomassters_features_metadata\.csv"):
        BioMasstersLayout(empty)
    root = _copy(real_sample, tmp_path)
    meta = root / "features_metadata.csv"
    lines = meta.read_text().splitlines()
    meta.write_text("\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != 2) for line in lines))
    with pytest.raises(DataError, match=r"features_metadata.csv: missing column\(s\) satellite"):
        BioMasstersLayout(root)


def test_missing_and_corrupt_tiff_name_the_file(real_sample: Path, tmp_path: Path) -> None:
    root = _copy(real_sample, tmp_path)
    layout = BioMasstersLayout(root)
    chip = layout.chips()[0]
    s2 = root / "train_features" / "001b0634_S2_00.tif"
    s2.write_bytes(b"not a tiff at all")
    with pytest.raises(DataError, match=r"001b0634_S2_00.tif: not a readable TIFF"):
        layout.read_chip(chip)
    s2.unlink()
    with pytest.raises(DataError, match=r"001b0634_S2_00.tif: file missing"):
        layout.read_chip(chip)


def test_same_chip_id_in_both_splits_and_zero_sizes(tmp_path: Path) -> None:
    """As torchgeo's fixture has them: one id in train and test (two chips, not one merged), and
    a metadata ``size`` of 0 (a placeholder, not a size to check the files against)."""
    import csv

    from gsr_bench_datasets.biomassters.check import check_chip
    from gsr_bench_datasets.biomassters.synth import synthesize

    root = synthesize(tmp_path / "root", 2, seed=5, test_chips=1, workers=1, progress=False)
    meta = root / "features_metadata.csv"
    rows = list(csv.DictReader(meta.open()))
    train_id = sorted({r["chip_id"] for r in rows if r["split"] == "train"})[0]
    test_id = next(r["chip_id"] for r in rows if r["split"] == "test")
    for folder in ("test_features", "test_agbm"):
        for path in (root / folder).glob(f"{test_id}_*"):
            path.rename(path.with_name(path.name.replace(test_id, train_id)))
    for r in rows:
        for key in ("filename", "chip_id", "corresponding_agbm"):
            if r["split"] == "test":
                r[key] = r[key].replace(test_id, train_id)
        r["size"] = "0"
    with meta.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    layout = BioMasstersLayout(root)
    (test_chip,) = layout.chips("test")
    twin = next(c for c in layout.chips("train") if c.chip_id == train_id)
    assert test_chip.chip_id == train_id and test_chip is not twin
    for chip in (test_chip, twin):  # each keeps exactly its own split's files, none merged
        listed = sum(
            r["split"] == chip.split and r["chip_id"] == train_id and r["satellite"] == "S1" for r in rows
        )
        assert len(chip.s1) == listed
    assert all(f.split == "test" for f in test_chip.s1.values())
    for chip in layout.chips():
        assert [p for p in check_chip(root, chip) if p.severity == "error"] == []


def test_torchgeo_like_fixture_runs_at_a_small_crop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torchgeo's BioMassters fixture: 32-pixel LZW-compressed TIFFs. They load (imagecodecs is a
    dependency) and a protocol cropping 30 prepares them at 30 instead of refusing them."""
    import tifffile

    from gsr_bench.cli import main
    from gsr_bench.tracking import Tracker
    from gsr_bench_datasets.biomassters.synth import synthesize

    root = synthesize(tmp_path / "root", 3, seed=6, test_chips=1, workers=1, progress=False)
    for path in root.glob("*_*/*.tif"):
        with tifffile.TiffFile(path) as tif:
            data = tif.series[0].asarray()
        small = data[:32, :32]
        contig = "contig" if small.ndim == 3 else None
        tifffile.imwrite(
            path, small, compression="lzw", photometric="minisblack", planarconfig=contig, metadata=None
        )
        with tifffile.TiffFile(path) as tif:
            assert tif.pages[0].compression == tifffile.COMPRESSION.LZW
    for meta in root.glob("*metadata.csv"):  # sizes of 0, as in torchgeo's fixture
        meta.write_text(re.sub(r",\d+,(\d+,s3://)", r",0,\1", meta.read_text()))
    protocol = tmp_path / "small.toml"
    protocol.write_text(
        'name = "small"\nversion = "1"\n[task]\ncrop = 30\n'
        "[train]\nsteps = 4\nbatch_size = 2\npatch_size = 20\nval_every = 2\ncheckpoint_every = 2\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GSR_BENCH_CACHE", str(tmp_path / "cache"))
    args = ["run", "-m", "bicubic", "-m", "msg", "-d", "biomassters", "--root", str(root), "-q"]
    assert main([*args, "--protocol", str(protocol), "--no-leaderboard"]) == 0
    runs = list(Tracker(tmp_path / "results").runs("FINISHED"))
    assert {r.data.tags["method"] for r in runs} == {"bicubic", "msg"}
    assert {r.data.params["protocol.task.crop"] for r in runs} == {"30"}

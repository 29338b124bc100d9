"""``gsr-bench data composite``: a scene's monthly GeoTIFFs become the guide the tiles had."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gsr_bench.api import DataError, read_tiff
from gsr_bench.cli import main
from gsr_bench_datasets.biomassters.composite import get_composite
from gsr_bench_datasets.biomassters.layout import S1_NODATA, SENSOR_BANDS, BioMasstersLayout

rasterio = pytest.importorskip("rasterio")

from tests.scenes.mosaic import write_geotiff  # noqa: E402


def _monthly_mosaics(root: Path, out: Path, n: int = 2) -> tuple[list[Path], list[str]]:
    """Each month's chip files of ``n x n`` chips mosaicked into one UTM GeoTIFF per month and
    sensor; a month a chip lacks is no data there."""
    layout = BioMasstersLayout(root)
    chips = layout.chips("train")[: n * n]
    files = []
    for sensor in ("S1", "S2"):
        for month in range(12):
            mosaic = np.full((SENSOR_BANDS[sensor], 256 * n, 256 * n), np.nan, np.float32)
            if sensor == "S1":
                mosaic[:] = S1_NODATA
            seen = False
            for k, chip in enumerate(chips):
                file = (chip.s1 if sensor == "S1" else chip.s2).get(month)
                if file is None:
                    continue
                r, c = divmod(k, n)
                mosaic[:, r * 256 : (r + 1) * 256, c * 256 : (c + 1) * 256] = read_tiff(
                    layout.feature_path(file), SENSOR_BANDS[sensor]
                )
                seen = True
            if seen:
                files.append(write_geotiff(out / f"scene_{sensor}_{month:02d}.tif", mosaic, 10.0))
    return files, [c.chip_id for c in chips]


def test_the_scene_guide_is_the_chips_composites_mosaicked(synth_root: Path, tmp_path: Path) -> None:
    files, ids = _monthly_mosaics(synth_root, tmp_path)
    out = tmp_path / "guide.tif"
    argv = ["data", "composite", *map(str, files), "--out", str(out), "-q"]
    assert main(argv) == 0
    fn, channels = get_composite("leafon-median")
    layout = BioMasstersLayout(synth_root)
    with rasterio.open(out) as src:
        assert src.descriptions == channels and src.crs.to_epsg() == 32635
        guide = src.read()
    by_id = {c.chip_id: c for c in layout.chips("train")}
    for k, chip_id in enumerate(ids):
        expected = fn(layout.read_chip(by_id[chip_id]))
        assert expected.fallback_month == -1  # the per-chip fallback is the one documented difference
        r, c = divmod(k, 2)
        np.testing.assert_array_equal(
            guide[:, r * 256 : (r + 1) * 256, c * 256 : (c + 1) * 256], expected.guide
        )


def test_bad_monthly_files_are_one_line(synth_root: Path, tmp_path: Path) -> None:
    from gsr_bench_datasets.biomassters.scene_composite import composite_scene

    files, _ = _monthly_mosaics(synth_root, tmp_path)
    odd = write_geotiff(tmp_path / "other_S1_03.tif", np.zeros((4, 100, 100), np.float32), 10.0)
    three = write_geotiff(tmp_path / "three_S2_04.tif", np.zeros((3, 512, 512), np.float32), 10.0)
    for paths, message in [
        ([tmp_path / "scene_S1_1.tif"], "name does not end in _S1_MM.tif"),
        ([files[0], files[0]], "a second S1 file for month 00"),
        ([files[0], odd], "its grid differs from scene_S1_00.tif's"),
        ([three], "3 bands, a S2 file has 11"),
    ]:
        with pytest.raises(DataError, match=message) as info:
            composite_scene(paths, tmp_path / "g.tif", progress=False)
        assert "\n" not in str(info.value)
    assert not (tmp_path / "g.tif").exists()

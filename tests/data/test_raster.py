"""Georeferenced scenes for predict (gsr_bench/data/raster.py), on real GeoTIFFs in a UTM CRS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gsr_bench.errors import DataError

rasterio = pytest.importorskip("rasterio")
from rasterio.crs import CRS  # noqa: E402
from rasterio.transform import from_origin  # noqa: E402

from gsr_bench.data.raster import open_scene  # noqa: E402
from tests.scenes.mosaic import ORIGIN, UTM_EPSG, write_geotiff  # noqa: E402

UTM = CRS.from_epsg(UTM_EPSG)  # Finland
X0, Y0 = ORIGIN


def _scene(tmp_path: Path, size: int = 60, bands: int = 3) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    guide = rng.normal(size=(bands, size, size)).astype(np.float32)
    target = rng.uniform(0, 300, (size, size)).astype(np.float32)
    coarse = target.reshape(size // 10, 10, size // 10, 10).mean(axis=(1, 3))
    g = write_geotiff(tmp_path / "guide.tif", guide, 10.0)
    s = write_geotiff(tmp_path / "source.tif", coarse, 100.0, nodata=-9999.0)
    return g, s, guide, coarse


def test_an_aligned_scene_reads_by_window(tmp_path: Path) -> None:
    g, s, guide, coarse = _scene(tmp_path)
    scene = open_scene([g], s, ("a", "b", "c"), 10)
    assert (scene.height, scene.width) == (60, 60) and scene.crs == UTM
    np.testing.assert_array_equal(scene.read_guide(20, 30, 30), guide[:, 20:50, 30:60])
    np.testing.assert_allclose(scene.read_source(20, 30, 30), coarse[2:5, 3:6])
    assert "by count and order" in scene.notes[0]


def test_a_larger_source_is_read_under_the_guide_and_nodata_is_nan(tmp_path: Path) -> None:
    """A source that extends beyond the guide, one block off its origin, is the same grid."""
    g, _, _, coarse = _scene(tmp_path)
    big = np.full((8, 8), -9999.0, np.float32)
    big[1:7, 1:7] = coarse
    big[1, 1] = -9999.0
    s = write_geotiff(tmp_path / "big.tif", big, 100.0, nodata=-9999.0, origin=(X0 - 100, Y0 + 100))
    scene = open_scene([g], s, ("a", "b", "c"), 10)
    expected = coarse.copy()
    expected[0, 0] = np.nan
    np.testing.assert_allclose(scene.source_array, expected)


def test_the_overview_is_every_step_th_pixel_read_by_whole_blocks(tmp_path: Path) -> None:
    """What predict's statistics and quicklook read: a 600 x 520 guide in 256 px blocks (windows
    span blocks and partial edges) decimated to about 100 px: every 6th pixel, nodata as NaN."""
    guide = np.random.default_rng(2).normal(size=(2, 600, 520)).astype(np.float32)
    guide[1, 300:320, 12:30] = -9999.0
    g = write_geotiff(tmp_path / "guide.tif", guide, 10.0, nodata=-9999.0)
    s = write_geotiff(tmp_path / "source.tif", np.ones((60, 52), np.float32), 100.0)
    overview = open_scene([g], s, ("a", "b"), 10).read_overview(100)
    expected = np.where(guide == -9999.0, np.nan, guide)[:, ::6, ::6]
    assert overview.shape == (2, 100, 87)
    np.testing.assert_array_equal(overview, expected)


def test_mismatches_are_one_line_naming_both_sides(tmp_path: Path) -> None:
    g, s, guide, coarse = _scene(tmp_path)
    shifted = write_geotiff(tmp_path / "shifted.tif", coarse, 100.0, origin=(X0 + 35, Y0))
    other_crs = write_geotiff(tmp_path / "wgs.tif", coarse, 100.0, epsg=32634)
    empty = write_geotiff(tmp_path / "empty.tif", np.full_like(coarse, -9999.0), 100.0, nodata=-9999.0)
    named = write_geotiff(tmp_path / "named.tif", guide, 10.0, names=("a", "x", "c"))
    for args, message in [
        (([g], s, ("a", "b"), 10), "the guide has 3 band(s) in guide.tif; the model reads 2: a, b"),
        (([g], shifted, ("a", "b", "c"), 10), "is not the guide's at scale 10"),
        (([g], other_crs, ("a", "b", "c"), 10), "CRS EPSG:32634 differs from the guide's EPSG:32635"),
        (([g], empty, ("a", "b", "c"), 10), "no valid value over the guide's extent"),
        (([named], s, ("a", "b", "c"), 10), "band 2 is 'x', not 'b'"),
        (([g], s, ("a", "b", "c"), 7), "not whole source blocks of 7 x 7"),
    ]:
        with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
            open_scene(*args)
        assert "\n" not in str(info.value)


def test_resample_source_warps_it_onto_the_grid(tmp_path: Path) -> None:
    """A 50 m source warped by average onto the 100 m grid gives each block the mean of its 4."""
    g, _, _, coarse = _scene(tmp_path)
    fine = np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)
    s = write_geotiff(tmp_path / "s50.tif", fine, 50.0)
    with pytest.raises(DataError, match="--resample-source"):
        open_scene([g], s, ("a", "b", "c"), 10)
    scene = open_scene([g], s, ("a", "b", "c"), 10, resample_source=True)
    np.testing.assert_allclose(scene.source_array, coarse, rtol=1e-5)
    assert any("warped" in n for n in scene.notes)


def test_the_output_is_written_by_strips_and_appears_only_when_complete(tmp_path: Path) -> None:
    from gsr_bench.data.scene_writer import NODATA, SceneWriter

    out = tmp_path / "agb.tif"
    transform = from_origin(X0, Y0, 10, 10)
    values = np.random.default_rng(1).uniform(0, 300, (600, 520)).astype(np.float32)
    values[5, 7] = np.nan
    writer = SceneWriter(
        out, 600, 520, UTM, transform, {"gsr_bench_method": "bicubic", "gsr_bench_version": "3"}
    )
    writer.write(0, values[:250])
    assert not out.exists()  # an interrupted predict leaves nothing that looks complete
    writer.write(250, values[250:])
    assert writer.close() == out and not list(tmp_path.glob("*.part"))
    with rasterio.open(out) as src:
        assert (src.crs, src.transform, src.shape, src.nodata) == (UTM, transform, (600, 520), NODATA)
        assert src.tags()["gsr_bench_method"] == "bicubic" and src.profile["tiled"]
        assert src.overviews(1)  # Cloud-Optimized: overviews inside
        read = src.read(1, masked=True)
    assert read.mask[5, 7] and read.mask.sum() == 1
    np.testing.assert_array_equal(read.filled(np.nan)[~np.isnan(values)], values[~np.isnan(values)])
    with pytest.raises(DataError, match="exists; pass --overwrite"):
        SceneWriter(out, 600, 520, UTM, transform, {})
    half = SceneWriter(out, 600, 520, UTM, transform, {}, overwrite=True)
    half.write(0, values[:100])
    with pytest.raises(DataError, match="100 of 600 rows were written; nothing kept"):
        half.close()
    assert not list(tmp_path.glob("*.part")) and out.exists()  # the earlier complete file stays

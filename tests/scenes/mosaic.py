"""A georeferenced scene made of simulator chips, for ``gsr-bench predict``'s tests.

``n x n`` synthetic BioMassters chips, each cropped to ``chip`` pixels, mosaicked into one guide
GeoTIFF (bands named for the dataset's channels) in UTM zone 35N at 10 m, and its source, the
10 x 10 block mean of the labels at 100 m, as a coarse map would come. Like torchgeo's
``tests/data/*/data.py``: the data is made by code, never committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gsr_bench.data.scene import Grid

UTM_EPSG = 32635  # Finland
ORIGIN = (500_000.0, 6_900_000.0)


@dataclass
class MosaicScene:
    guide: Path
    source: Path
    guide_array: np.ndarray  # [C, H, W] as written
    target: np.ndarray  # [H, W] the chips' labels
    channels: tuple[str, ...]


def write_geotiff(
    path: Path,
    data: np.ndarray,
    pixel: float,
    nodata: float | None = None,
    names: tuple[str, ...] | None = None,
    epsg: int = UTM_EPSG,
    origin: tuple[float, float] = ORIGIN,
) -> Path:
    import rasterio
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    data = data if data.ndim == 3 else data[None]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=data.shape[1],
        width=data.shape[2],
        count=data.shape[0],
        dtype=data.dtype,
        crs=CRS.from_epsg(epsg),
        transform=from_origin(*origin, pixel, pixel),
        nodata=nodata,
        tiled=True,
        blockxsize=256,
        blockysize=256,
    ) as dst:
        dst.write(data)
        if names:
            dst.descriptions = names
    return path


def chips_dataset(root: Path, n: int, seed: int = 5) -> object:
    """``n * n`` simulator chips written in the BioMassters layout under ``root``, as a dataset."""
    from gsr_bench_datasets.biomassters.dataset import BioMassters
    from gsr_bench_datasets.biomassters.synth import synthesize

    if not (root / "features_metadata.csv").exists():
        synthesize(root, n * n, seed, test_chips=0, workers=1, progress=False)
    return BioMassters(str(root))


def mosaic_scene(folder: Path, chips_root: Path, n: int = 4, chip: int = 250, seed: int = 5) -> MosaicScene:
    """Write ``guide.tif`` and ``source.tif`` of ``n x n`` chips (written to ``chips_root``)
    into ``folder``."""
    dataset = chips_dataset(chips_root, n, seed)
    tiles = list(dataset.tiles("train"))[: n * n]  # type: ignore[attr-defined]
    samples = [dataset.read(t) for t in tiles]  # type: ignore[attr-defined]
    channels = tuple(dataset.guide_channels)  # type: ignore[attr-defined]
    size = n * chip
    guide = np.zeros((len(channels), size, size), np.float32)
    target = np.zeros((size, size), np.float32)
    for k, sample in enumerate(samples):
        r, c = divmod(k, n)
        window = np.s_[r * chip : (r + 1) * chip, c * chip : (c + 1) * chip]
        guide[(slice(None), *window)] = sample.guide[:, :chip, :chip]
        t = np.asarray(sample.target).reshape(sample.target.shape[-2:])[:chip, :chip]
        target[window] = np.where(np.isfinite(t), t, 0)
    folder.mkdir(parents=True, exist_ok=True)
    coarse = target.reshape(size // 10, 10, size // 10, 10).mean(axis=(1, 3)).astype(np.float32)
    return MosaicScene(
        write_geotiff(folder / "guide.tif", guide, 10.0, nodata=float("nan"), names=channels),
        write_geotiff(folder / "source.tif", coarse, 100.0, nodata=-9999.0),
        guide,
        target,
        channels,
    )


def seam_ratio(values: np.ndarray, grid: Grid) -> float:
    """The seam statistic: the mean |step| between neighbouring columns across the tiles'
    column borders of ``grid``, over the mean step
    elsewhere. About 1 without seams; abutting tiles of a network give several times that."""
    width = values.shape[1]
    borders = {c for x in grid.columns() for c in (x, x + grid.tile)} - {0, width}
    steps = np.abs(np.diff(values, axis=1))
    at = np.zeros(steps.shape[1], bool)
    at[[b - 1 for b in borders]] = True
    return float(np.nanmean(steps[:, at]) / np.nanmean(steps[:, ~at]))

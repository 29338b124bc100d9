"""A scene's guide for ``gsr-bench predict``, from its monthly Sentinel-1/2 GeoTIFFs, by the code
that made the training tiles' guides.

The monthly files have the official BioMassters bands (S1: VV and VH, ascending and descending,
in dB, -9999 for no data; S2: B2 to B12 and the cloud probability) and names ending in
``_S1_MM.tif`` or ``_S2_MM.tif`` (``MM`` the BioMassters month index, 00 = September); they
share one grid. Rows are read strip by strip, each strip made into a chip
(:func:`~gsr_bench_datasets.biomassters.layout.place_image`, as the reader does) and composited
by the dataset's function (the leaf-on median by default), so every pixel is normalized as the
tiles were. The one difference: where a pixel has no clear leaf-on observation in any month, the
fallback month is chosen per strip instead of per 256 x 256 chip.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gsr_bench.api import DataError
from gsr_bench_datasets.biomassters.composite import get_composite
from gsr_bench_datasets.biomassters.layout import SENSOR_BANDS, empty_chip, place_image

NAME = re.compile(r"_(S1|S2)_(\d{2})\.tiff?$", re.IGNORECASE)


def monthly_files(paths: Sequence[str | Path]) -> dict[tuple[str, int], Path]:
    """``(sensor, month) -> path`` from names ending ``_S1_MM.tif`` / ``_S2_MM.tif``."""
    found: dict[tuple[str, int], Path] = {}
    for raw in paths:
        path = Path(raw)
        match = NAME.search(path.name)
        if match is None or not 0 <= int(match[2]) < 12:
            raise DataError(
                f"{path}: name does not end in _S1_MM.tif or _S2_MM.tif (MM = 00..11, 00 September)"
            )
        key = (match[1].upper(), int(match[2]))
        if key in found:
            raise DataError(
                f"{path}: a second {key[0]} file for month {key[1]:02d} (first: {found[key].name})"
            )
        if not path.is_file():
            raise DataError(f"{path}: file missing")
        found[key] = path
    if not found:
        raise DataError("no monthly files given")
    return found


def composite_scene(
    paths: Sequence[str | Path],
    out: str | Path,
    composite: str = "leafon-median",
    rows: int = 256,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write the guide GeoTIFF of the monthly files ``paths`` to ``out``.

    Args:
        paths: monthly S1/S2 GeoTIFFs of one grid.
        out: the guide to write (float32, NaN where nothing was observed, bands named for the
            dataset's channels, which ``gsr-bench predict`` matches by name).
        composite: the dataset's ``composite`` option the model was trained with.
        rows: rows per strip (memory: 12 months x 14 bands x rows x width float32).
        overwrite: replace ``out`` if it exists.

    Raises:
        DataError: a name, a grid or a band count that does not fit, in one line.
    """
    import rasterio
    from rasterio.windows import Window
    from tqdm.auto import tqdm

    fn, channels = get_composite(composite)
    files = monthly_files(paths)
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError(f"{out}: exists; pass --overwrite to replace it")
    sources: dict[tuple[str, int], Any] = {}
    try:
        first: Any = None
        for (sensor, month), path in sorted(files.items()):
            src = sources[(sensor, month)] = rasterio.open(path)
            if src.count != SENSOR_BANDS[sensor]:
                raise DataError(f"{path}: {src.count} bands, a {sensor} file has {SENSOR_BANDS[sensor]}")
            if first is None:
                first = src
            elif (src.crs, src.shape) != (first.crs, first.shape) or not src.transform.almost_equals(
                first.transform
            ):
                raise DataError(
                    f"{path}: its grid differs from {Path(first.name).name}'s; the months must share one"
                )
        height, width = first.shape
        profile = {
            "driver": "GTiff",
            "height": height,
            "width": width,
            "count": len(channels),
            "dtype": "float32",
            "crs": first.crs,
            "transform": first.transform,
            "nodata": float("nan"),
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
            "predictor": 3,
            "BIGTIFF": "IF_SAFER",
        }
        part = out.with_name(out.name + ".part")
        with rasterio.open(part, "w", **profile) as dst:
            dst.descriptions = channels
            for top in tqdm(range(0, height, rows), desc="composite", unit="strip", disable=not progress):
                n = min(rows, height - top)
                window = Window(0, top, width, n)
                chip = empty_chip("scene", np.zeros((n, width), np.float32))
                for (sensor, month), src in sources.items():
                    place_image(chip, sensor, month, src.read(window=window).astype(np.float32))
                dst.write(fn(chip).guide.astype(np.float32), window=window)
        os.replace(part, out)
    finally:
        for src in sources.values():
            src.close()
    return out

"""The output of ``gsr-bench predict``: one float32 band on the guide's grid, written strip by
strip into ``NAME.part`` (tiled, compressed), then made Cloud-Optimized and renamed, so an
interrupted prediction never leaves a file that looks complete."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gsr_bench.errors import DataError

NODATA = -9999.0
BLOCK = 256


class SceneWriter:
    """Writes rows of a ``height`` x ``width`` map on the grid ``crs``/``transform``.

    Args:
        path: the GeoTIFF to write; refused if it exists, unless ``overwrite``.
        height, width, crs, transform: the grid (the guide's).
        tags: GeoTIFF metadata tags (method, version, job key, code fingerprint).
        overwrite: replace an existing ``path``.

    Raises:
        DataError: ``path`` exists, or its folder cannot be written.
    """

    def __init__(
        self,
        path: str | Path,
        height: int,
        width: int,
        crs: Any,
        transform: Any,
        tags: Mapping[str, str],
        overwrite: bool = False,
    ) -> None:
        import rasterio

        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise DataError(f"{self.path}: exists; pass --overwrite to replace it")
        self.part = self.path.with_name(self.path.name + ".part")
        self.height, self.width = height, width
        profile = {
            "driver": "GTiff",
            "height": height,
            "width": width,
            "count": 1,
            "dtype": "float32",
            "crs": crs,
            "transform": transform,
            "nodata": NODATA,
            "tiled": True,
            "blockxsize": BLOCK,
            "blockysize": BLOCK,
            "compress": "deflate",
            "predictor": 3,  # floating-point predictor: smooth maps compress about twice as well
            "BIGTIFF": "IF_SAFER",
        }
        try:
            self.dst = rasterio.open(self.part, "w", **profile)
        except Exception as exc:
            raise DataError(f"{self.path}: cannot write here ({exc})") from None
        self.dst.update_tags(**{k: str(v) for k, v in tags.items()})
        self.rows_written = 0

    def write(self, start: int, rows: np.ndarray) -> None:
        """Rows ``start .. start + len(rows)`` of the map; NaN is written as nodata."""
        from rasterio.windows import Window

        if rows.shape[1] != self.width:
            raise ValueError(f"rows of width {rows.shape[1]}, the map is {self.width} wide")
        data = np.where(np.isfinite(rows), rows, NODATA).astype(np.float32)
        self.dst.write(data, 1, window=Window(0, start, self.width, len(rows)))
        self.rows_written += len(rows)

    def close(self) -> Path:
        """Finish: overviews and a Cloud-Optimized layout where GDAL has the COG driver, then
        the rename that makes the file appear."""
        from rasterio.shutil import copy as copy_raster

        if self.rows_written != self.height:
            self.abort()
            raise DataError(
                f"{self.path}: {self.rows_written} of {self.height} rows were written; nothing kept"
            )
        self.dst.close()
        final = self.part
        if _has_cog():  # the copy keeps the tags and adds the overviews
            cog = self.path.with_name(self.path.name + ".cog.part")
            copy_raster(self.part, cog, driver="COG", compress="DEFLATE", predictor="YES", blocksize=BLOCK)
            self.part.unlink()
            final = cog
        os.replace(final, self.path)
        return self.path

    def abort(self) -> None:
        """Close and delete what was written."""
        if not self.dst.closed:
            self.dst.close()
        self.part.unlink(missing_ok=True)


def _has_cog() -> bool:
    from rasterio.env import GDALVersion

    return bool(GDALVersion.runtime().at_least("3.1"))

"""Georeferenced scenes for ``gsr-bench predict``: the guide and source GeoTIFFs, checked against
each other and against a model before any tile is computed, then read window by window.

Every mismatch is one line naming both sides: channels, scale, CRS, grid, dtype, extent. The
guide may come in several files of one grid (their bands in order); its nodata becomes NaN
("no observation", as in training). The source must sit on the guide's grid at the dataset's
scale, or be warped onto it (average resampling) when the caller asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gsr_bench.errors import DataError

MAX_CACHE = 2 * 2**30  # bytes: beyond this (scenes over ~200 km wide) blocks are decoded again
_TOLERANCE = 1e-6  # of a pixel: grids that differ by less are the same grid


@dataclass
class Scene:
    """The rasters of one prediction, opened and checked.

    Attributes:
        guides: the guide files, their bands in the order of ``channels``.
        source: the coarse source file.
        channels: the model's guide channel names, one per guide band.
        scale: source pixel size over guide pixel size.
        height, width: the guide's size in pixels, whole source blocks.
        crs, transform: the guide's, which the output takes.
        source_array: the source on the guide-aligned coarse grid, NaN where it has no value
            (``[height / scale, width / scale]``: a hundredth of the scene at scale 10).
        notes: what was decided on the way (bands matched by count, the source warped).
    """

    guides: list[Path]
    source: Path
    channels: tuple[str, ...]
    scale: int
    height: int
    width: int
    crs: Any
    transform: Any
    source_array: np.ndarray
    notes: list[str] = field(default_factory=list)

    _open: list[Any] = field(default_factory=list, repr=False)

    def read_guide(self, y: int, x: int, size: int) -> np.ndarray:
        """``[C, size, size]`` float32 of the guide at ``(y, x)``, NaN where it has no data.

        The files stay open between calls (one open per file, not per tile) until :meth:`close`.
        """
        import rasterio
        from rasterio.windows import Window

        if not self._open:
            self._open = [rasterio.open(path) for path in self.guides]
        return np.concatenate([_read_nan(src, Window(x, y, size, size)) for src in self._open])

    def read_overview(self, size: int) -> np.ndarray:
        """``[C, h, w]`` float32 of the whole guide decimated to about ``size`` pixels on its
        longer side (every ``step``-th pixel), NaN where it has no data: for statistics and
        previews. Read in windows of whole blocks, each block decoded once, memory one window."""
        import rasterio
        from rasterio.windows import Window

        step = max(1, -(-max(self.height, self.width) // size))
        ys, xs = np.arange(0, self.height, step), np.arange(0, self.width, step)
        parts = []
        for path in self.guides:
            with rasterio.open(path) as src:
                block_h, block_w = src.block_shapes[0]
                win_h = -(-256 // block_h) * block_h
                win_w = min(self.width, -(-1024 // block_w) * block_w)
                out = np.full((src.count, len(ys), len(xs)), np.nan, np.float32)
                for top in range(0, self.height, win_h):
                    r0, r1 = np.searchsorted(ys, [top, top + win_h])
                    for left in range(0, self.width, win_w):
                        c0, c1 = np.searchsorted(xs, [left, left + win_w])
                        if r0 == r1 or c0 == c1:
                            continue
                        window = Window(
                            left, top, min(win_w, self.width - left), min(win_h, self.height - top)
                        )
                        data = _read_nan(src, window)
                        out[:, r0:r1, c0:c1] = data[:, ys[r0:r1] - top][:, :, xs[c0:c1] - left]
            parts.append(out)
        return np.concatenate(parts)

    def close(self) -> None:
        for src in self._open:
            src.close()
        self._open = []

    def read_source(self, y: int, x: int, size: int) -> np.ndarray:
        """``[size / scale, size / scale]`` of the source under the guide window at ``(y, x)``."""
        s = self.scale
        return self.source_array[y // s : (y + size) // s, x // s : (x + size) // s]


def _read_nan(src: Any, window: Any, indexes: int | None = None, **kwargs: Any) -> np.ndarray:
    """A window of an open raster (all bands, or band ``indexes``) as float32, nodata as NaN."""
    data = src.read(indexes, window=window, masked=True, **kwargs)
    return np.ma.filled(data.astype(np.float32), np.nan)


def cache_bytes(guides: Sequence[str | Path], tile: int) -> int:
    """A GDAL block cache that holds the guide blocks one row of tiles reads, all bands (a
    strip of the scene's width), at most :data:`MAX_CACHE`: every block is then decoded about
    once per row of tiles, and memory stays that strip, where GDAL's default is 5 % of the
    machine's memory whatever the scene."""
    import rasterio

    total = 64 * 2**20  # the output's blocks and the source
    for path in guides:
        try:
            with rasterio.open(path) as src:
                block_h = src.block_shapes[0][0]
                total += src.count * np.dtype(src.dtypes[0]).itemsize * src.width * (tile + 2 * block_h)
        except Exception:  # open_scene says, in one line, what is wrong with the file
            continue
    return min(total, MAX_CACHE)


def _describe_crs(crs: Any) -> str:
    if crs is None:
        return "no CRS"
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_string()[:60]


def _same(a: float, b: float, unit: float) -> bool:
    return abs(a - b) <= _TOLERANCE * abs(unit)


def _guide_bands(paths: Sequence[Path], channels: Sequence[str]) -> tuple[Any, list[str]]:
    """The first guide's profile, checking that every guide file shares its grid; the notes."""
    import rasterio

    notes: list[str] = []
    first: Any = None
    descriptions: list[str | None] = []
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: guide file missing")
        try:
            src = rasterio.open(path)
        except Exception as exc:
            raise DataError(f"{path}: not a readable raster ({exc})") from None
        with src:
            if not np.issubdtype(np.dtype(src.dtypes[0]), np.number):
                raise DataError(f"{path}: guide bands of type {src.dtypes[0]}, expected numbers")
            if first is None:
                first = {"path": path, "crs": src.crs, "transform": src.transform, "shape": src.shape}
            elif (src.crs, src.shape) != (first["crs"], first["shape"]) or not src.transform.almost_equals(
                first["transform"]
            ):
                raise DataError(
                    f"{path}: its grid ({_describe_crs(src.crs)}, {src.width} x {src.height}, origin "
                    f"{src.transform.c:.2f}, {src.transform.f:.2f}) differs from {first['path'].name}'s "
                    f"({_describe_crs(first['crs'])}, {first['shape'][1]} x {first['shape'][0]}, origin "
                    f"{first['transform'].c:.2f}, {first['transform'].f:.2f})"
                )
            descriptions += list(src.descriptions)
    if len(descriptions) != len(channels):
        raise DataError(
            f"the guide has {len(descriptions)} band(s) in {', '.join(p.name for p in paths)}; the model "
            f"reads {len(channels)}: {', '.join(channels)}"
        )
    if all(descriptions):
        if list(descriptions) != list(channels):
            wrong = [
                f"band {i + 1} is {d!r}, not {c!r}"
                for i, (d, c) in enumerate(zip(descriptions, channels, strict=True))
                if d != c
            ]
            raise DataError(
                f"the guide's band descriptions do not match the model's channels: {'; '.join(wrong[:3])}"
            )
        notes.append("guide bands matched to the model's channels by their descriptions")
    else:
        notes.append(f"guide bands taken as {', '.join(channels)} by count and order (no band descriptions)")
    return first, notes


def open_scene(
    guides: Sequence[str | Path],
    source: str | Path,
    channels: Sequence[str],
    scale: int,
    resample_source: bool = False,
) -> Scene:
    """Open and check a scene; nothing is predicted before it returns.

    Args:
        guides: guide GeoTIFFs of one grid, their bands together the model's ``channels``.
        source: the coarse GeoTIFF (one band).
        channels: the model's guide channel names.
        scale: the dataset's ratio of source to guide pixel size.
        resample_source: warp a source that is not on the guide's grid onto it (average
            resampling) instead of refusing it.

    Raises:
        DataError: one line naming both sides of the first mismatch.
    """
    import rasterio

    paths = [Path(p) for p in guides]
    first, notes = _guide_bands(paths, channels)
    height, width = first["shape"]
    if height % scale or width % scale:
        raise DataError(
            f"the guide is {width} x {height} pixels, not whole source blocks of {scale} x {scale}: crop it "
            f"to {width - width % scale} x {height - height % scale}"
        )
    source_path = Path(source)
    if not source_path.is_file():
        raise DataError(f"{source_path}: source file missing")
    with rasterio.open(source_path) as src:
        if src.count != 1:
            raise DataError(f"{source_path}: {src.count} bands, expected one (the coarse map)")
        coarse = first["transform"] @ first["transform"].scale(scale, scale)
        same_crs = src.crs == first["crs"]
        if not same_crs and not resample_source:
            raise DataError(
                f"{source_path}: CRS {_describe_crs(src.crs)} differs from the guide's "
                f"{_describe_crs(first['crs'])}; reproject it, or pass --resample-source"
            )
        aligned = _aligned(src.transform, coarse) if same_crs else None
        if aligned is None and not resample_source:
            g = first["transform"]
            raise DataError(
                f"{source_path}: its grid (pixel {src.transform.a:g} x {-src.transform.e:g}, origin "
                f"{src.transform.c:.2f}, {src.transform.f:.2f}) is not the guide's at scale {scale} (pixel "
                f"{g.a * scale:g} x {-g.e * scale:g}, origin {g.c:.2f}, {g.f:.2f} plus whole blocks); pass "
                "--resample-source to warp it onto that grid (average resampling)"
            )
        shape = (height // scale, width // scale)
        if aligned is not None:
            array = _read_aligned(src, aligned, shape)
        else:
            array = _warp(src, coarse, first["crs"], shape)
            notes.append(f"source {source_path.name} warped onto the guide's grid at scale {scale} (average)")
    if not np.isfinite(array).any():
        raise DataError(f"{source_path}: no valid value over the guide's extent (all nodata or outside it)")
    return Scene(
        paths,
        source_path,
        tuple(channels),
        scale,
        height,
        width,
        first["crs"],
        first["transform"],
        array,
        notes,
    )


def _aligned(transform: Any, coarse: Any) -> tuple[int, int] | None:
    """``(row, col)`` of the coarse grid's origin in the source's pixels, or None when the
    source is not on that grid."""
    if transform.b or transform.d or coarse.b or coarse.d:
        return None
    if not (_same(transform.a, coarse.a, coarse.a) and _same(transform.e, coarse.e, coarse.e)):
        return None
    col = (coarse.c - transform.c) / transform.a
    row = (coarse.f - transform.f) / transform.e
    if abs(col - round(col)) > 1e-3 or abs(row - round(row)) > 1e-3:
        return None
    return round(row), round(col)


def _read_aligned(src: Any, origin: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    from rasterio.windows import Window

    row, col = origin
    return _read_nan(src, Window(col, row, shape[1], shape[0]), 1, boundless=True)


def _warp(src: Any, coarse: Any, crs: Any, shape: tuple[int, int]) -> np.ndarray:
    from rasterio.warp import Resampling, reproject

    out = np.full(shape, np.nan, np.float32)
    reproject(
        source=src.read(1, masked=True).filled(np.nan).astype(np.float32),
        destination=out,
        src_transform=src.transform,
        src_crs=src.crs,
        src_nodata=np.nan,
        dst_transform=coarse,
        dst_crs=crs,
        dst_nodata=np.nan,
        resampling=Resampling.average,
    )
    return out

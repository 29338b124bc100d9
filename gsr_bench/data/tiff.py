"""TIFF input and output with errors that name the file, and POSIX ``cksum``."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import tifffile

from gsr_bench.errors import DataError

_BIT_REVERSED = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def posix_cksum(data: bytes) -> int:
    """The checksum printed by POSIX ``cksum`` (CRC-32, polynomial 0x04C11DB7, length appended).

    POSIX's CRC is the bit-reflected twin of zlib's: reflecting every input byte and the result
    lets zlib's C loop do the work (a 1 MB file in about a millisecond instead of a second).
    """
    n = len(data)
    length = bytearray()
    while n:
        length.append(n & 0xFF)
        n >>= 8
    crc = zlib.crc32((data + bytes(length)).translate(_BIT_REVERSED), 0xFFFFFFFF)
    return int(f"{crc:032b}"[::-1], 2)


def tiff_header(path: Path) -> tuple[tuple[int, int], int, np.dtype]:
    """((height, width), bands, dtype) of a TIFF, read from its header only."""
    if not path.is_file():
        raise DataError(f"{path}: file missing")
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, axes, dtype = series.shape, series.axes, np.dtype(series.dtype)
    except Exception as exc:
        raise DataError(f"{path}: not a readable TIFF ({type(exc).__name__}: {exc})") from None
    return (*_hw_bands(path, shape, axes), dtype)


def _hw_bands(path: Path, shape: tuple[int, ...], axes: str) -> tuple[tuple[int, int], int]:
    if axes == "YX":
        return (shape[0], shape[1]), 1
    if axes in ("YXS", "YXC"):
        return (shape[0], shape[1]), shape[2]
    if axes in ("SYX", "CYX", "QYX", "IYX"):
        return (shape[1], shape[2]), shape[0]
    raise DataError(f"{path}: unexpected TIFF layout {axes} {shape}")


def read_tiff(path: Path, bands: int | None) -> np.ndarray:
    """Read a TIFF as float32 ``[bands, H, W]``, whatever its dtype, interleave or compression
    (``bands=None``: as many as it has)."""
    if not path.is_file():
        raise DataError(f"{path}: file missing")
    compression: object = "a codec"
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes = series.axes
            compression = tif.pages[0].compression
            array = series.asarray()
    except Exception as exc:
        if "imagecodecs" in str(exc):  # a valid file this installation cannot decode
            raise DataError(
                f"{path}: compressed with {getattr(compression, 'name', compression)}, which tifffile "
                "decodes only with the imagecodecs package: pip install imagecodecs"
            ) from None
        raise DataError(f"{path}: not a readable TIFF ({type(exc).__name__}: {exc})") from None
    _, found = _hw_bands(path, array.shape, axes)
    if bands is not None and found != bands:
        raise DataError(f"{path}: expected {bands} band(s), found {found}")
    if axes == "YX":
        array = array[None]
    elif axes in ("YXS", "YXC"):
        array = np.moveaxis(array, -1, 0)
    return np.ascontiguousarray(array, dtype=np.float32)


def write_tiff(path: Path, array: np.ndarray) -> bytes:
    """Write ``[bands, H, W]`` (or ``[H, W]``) as a plain pixel-interleaved baseline TIFF.

    Returns the bytes written, so that callers can size and checksum them without reading back.
    """
    import io

    data = array if array.ndim == 2 else np.moveaxis(array, 0, -1)
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        data,
        photometric="minisblack",
        planarconfig="contig" if data.ndim == 3 else None,
        metadata=None,
    )
    raw = buffer.getvalue()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(raw)
    tmp.replace(path)  # a file is whole or absent, even when the disk fills up mid-write
    return raw

"""A scene larger than memory, cut into overlapping tiles and put back together without seams.

Tiles start on the source grid (multiples of the scale) so each sees whole source blocks; the
last tile of a row or column is flush with the scene's edge. Predictions overlap by ``overlap``
pixels and are blended by a weight that rises as a raised cosine across the overlap and is 1
inside, so a tile's border pixels, where a network sees the least context, count the least,
and no weight is ever 0. :class:`Blender` keeps only the rows that tiles still to come can
touch: memory is a strip of the scene's width, whatever its height.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    """Where the tiles of a ``height`` x ``width`` scene start.

    Args:
        height: scene rows (target pixels).
        width: scene columns.
        tile: tile side, a multiple of ``scale``.
        overlap: pixels shared by neighbouring tiles, a multiple of ``scale`` below ``tile``.
        scale: the source's block size in target pixels.
    """

    height: int
    width: int
    tile: int
    overlap: int
    scale: int = 1

    def __post_init__(self) -> None:
        if self.tile % self.scale or self.overlap % self.scale:
            raise ValueError(f"tile {self.tile} and overlap {self.overlap} must be multiples of {self.scale}")
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"overlap {self.overlap} must be at least 0 and below the tile {self.tile}")
        if min(self.height, self.width) < self.tile:
            raise ValueError(f"a {self.height} x {self.width} scene is smaller than one tile of {self.tile}")
        if self.height % self.scale or self.width % self.scale:
            raise ValueError(
                f"a {self.height} x {self.width} scene is not whole source blocks of {self.scale}"
            )

    @property
    def stride(self) -> int:
        return self.tile - self.overlap

    def starts(self, length: int) -> list[int]:
        """Tile starts along one axis of ``length`` pixels: every ``stride``, the last flush."""
        out = list(range(0, length - self.tile + 1, self.stride))
        if out[-1] != length - self.tile:
            out.append(length - self.tile)  # a multiple of scale: length and tile are
        return out

    def rows(self) -> list[int]:
        return self.starts(self.height)

    def columns(self) -> list[int]:
        return self.starts(self.width)

    def __len__(self) -> int:
        return len(self.rows()) * len(self.columns())


def blend_weight(tile: int, overlap: int) -> np.ndarray:
    """``[tile, tile]`` float32: a raised cosine over ``overlap`` pixels at each side, 1 inside."""
    ramp = np.ones(tile, np.float64)
    if overlap:
        i = np.arange(overlap)
        ramp[:overlap] = 0.5 - 0.5 * np.cos(np.pi * (i + 0.5) / overlap)
        ramp[tile - overlap :] = ramp[:overlap][::-1]
    return np.outer(ramp, ramp).astype(np.float32)


class Blender:
    """Weighted sums of the tiles of one :class:`Grid`, handed out row strip by row strip.

    Add the tiles of one row of tiles (any order within it) with :meth:`add`, then call
    :meth:`release` with the next row's start: the scene rows above it are final and come back.
    After the last row, :meth:`release` with ``None`` returns the rest. It holds at most
    ``tile + stride`` rows of the scene's width.
    """

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.weight = blend_weight(grid.tile, grid.overlap)
        self.top = 0  # scene row of self.sum[0]
        self.sum = np.zeros((grid.tile, grid.width), np.float64)
        self.norm = np.zeros((grid.tile, grid.width), np.float64)

    def add(self, y: int, x: int, prediction: np.ndarray) -> None:
        """Add one tile's ``[tile, tile]`` prediction whose top-left corner is ``(y, x)``."""
        t = self.grid.tile
        if prediction.shape != (t, t):
            raise ValueError(f"a tile prediction is {prediction.shape}, expected {(t, t)}")
        rows = slice(y - self.top, y - self.top + t)
        if rows.start < 0:
            raise ValueError(f"tile at row {y} comes after rows up to {self.top} were released")
        self._grow(rows.stop)
        self.sum[rows, x : x + t] += prediction * self.weight
        self.norm[rows, x : x + t] += self.weight

    def _grow(self, rows: int) -> None:
        if rows > self.sum.shape[0]:
            extra = rows - self.sum.shape[0]
            self.sum = np.concatenate([self.sum, np.zeros((extra, self.grid.width))])
            self.norm = np.concatenate([self.norm, np.zeros((extra, self.grid.width))])

    def release(self, next_row: int | None) -> tuple[int, np.ndarray] | None:
        """``(first scene row, [rows, width] float32)``: the rows above ``next_row`` (the next
        row of tiles' start; ``None`` after the last), which no later tile can touch."""
        end = self.grid.height if next_row is None else next_row
        n = end - self.top
        if n <= 0:
            return None
        if (self.norm[:n] == 0).any():
            raise ValueError(f"scene rows {self.top}-{end} were not all covered by tiles")
        out = (self.sum[:n] / self.norm[:n]).astype(np.float32)
        start = self.top
        self.sum, self.norm = self.sum[n:], self.norm[n:]
        self.top = end
        return start, out

    @property
    def rows_held(self) -> int:
        return int(self.sum.shape[0])


def tiles(grid: Grid) -> Iterator[tuple[int, int]]:
    """Tile origins row by row, the order :class:`Blender` needs."""
    for y in grid.rows():
        for x in grid.columns():
            yield y, x

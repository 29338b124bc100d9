"""Tiling and blending a scene (gsr_bench/data/scene.py)."""

from __future__ import annotations

import numpy as np
import pytest

from gsr_bench.data.scene import Blender, Grid, blend_weight, tiles


def _blend(grid: Grid, predict: object) -> tuple[np.ndarray, int]:
    blender, out, held = Blender(grid), np.full((grid.height, grid.width), np.nan, np.float32), 0
    rows = grid.rows()
    for i, y in enumerate(rows):
        for x in grid.columns():
            blender.add(y, x, predict(y, x))  # type: ignore[operator]
        held = max(held, blender.rows_held)
        done = blender.release(rows[i + 1] if i + 1 < len(rows) else None)
        if done is not None:
            start, strip = done
            out[start : start + len(strip)] = strip
    return out, held


@pytest.mark.parametrize(
    ("size", "tile", "overlap"), [((250, 330), 60, 10), ((100, 100), 100, 0), ((130, 70), 50, 20)]
)
def test_tiles_cut_from_an_image_blend_back_to_it(size: tuple[int, int], tile: int, overlap: int) -> None:
    """A blend that lost a row, double-counted an overlap or dropped the flush last tile would
    not give the image back; the strip kept stays within a tile and a stride of rows."""
    image = np.random.default_rng(0).normal(size=size).astype(np.float32)
    grid = Grid(*size, tile, overlap, scale=10 if tile % 10 == 0 and overlap % 10 == 0 else 1)
    out, held = _blend(grid, lambda y, x: image[y : y + tile, x : x + tile])
    np.testing.assert_allclose(out, image, rtol=0, atol=1e-6)
    assert held <= tile + grid.stride
    origins = list(tiles(grid))
    assert origins[-1] == (size[0] - tile, size[1] - tile) and len(origins) == len(grid)


def test_blending_disagreeing_tiles_is_smooth() -> None:
    """Tiles that each predict a different constant meet without a step: across a seam the
    blend moves in steps no larger than the tiles' difference spread over the overlap."""
    grid = Grid(60, 200, 60, 20)
    out, _ = _blend(grid, lambda y, x: np.full((60, 60), float(x), np.float32))
    steps = np.abs(np.diff(out[30]))
    assert steps.max() < 40 / 20 * 1.6  # neighbours differ by 40; a seam would jump by 40
    weight = blend_weight(60, 20)
    assert weight.min() > 0 and weight[20:40, 20:40].min() == 1


def test_grid_refuses_what_it_cannot_tile() -> None:
    for args, message in [
        ((100, 100, 55, 10, 10), "multiples of 10"),
        ((100, 100, 50, 50, 10), "below the tile"),
        ((40, 100, 50, 10, 10), "smaller than one tile"),
        ((105, 100, 50, 10, 10), "whole source blocks"),
    ]:
        with pytest.raises(ValueError, match=message):
            Grid(*args)

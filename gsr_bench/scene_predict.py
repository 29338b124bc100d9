"""A method applied to a whole georeferenced scene, tile by tile, as its test tiles were seen.

Each tile's guide is z-scored with the job's train statistics, "no observation" (NaN) set to 0
(the mean), and the source mask appended; its source blocks without a value are filled with the
nearest valid block's (:func:`gsr_bench.data.source.fill_invalid_blocks`), exactly as
:class:`gsr_bench.data.tiles.TileSet` prepares a test tile. Tiles overlap and are blended
(:mod:`gsr_bench.data.scene`); finished rows go to ``write`` strip by strip, NaN where the source
has no value. Memory is the batch plus one strip of the scene's width, whatever its height.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from gsr_bench.data.raster import Scene
from gsr_bench.data.scene import Blender, Grid
from gsr_bench.data.source import fill_invalid_blocks, with_source_mask
from gsr_bench.data.tiles import normalize_guide
from gsr_bench.faults import kill_point
from gsr_bench.method import Method
from gsr_bench.ops import project_to_source


@dataclass
class PredictStats:
    """What a scene prediction did.

    Attributes:
        tiles: tiles predicted.
        scene_pixels: output pixels (height x width).
        tile_pixels: pixels the method computed (overlaps count each time).
        seconds: wall time of the whole loop (reading, predicting, blending, writing).
        predict_seconds: of it, the time inside ``method.predict``.
        rows_held: the most scene rows the blender held at once.
    """

    tiles: int = 0
    scene_pixels: int = 0
    tile_pixels: int = 0
    seconds: float = 0.0
    predict_seconds: float = 0.0
    rows_held: int = 0

    @property
    def scene_mpix_s(self) -> float:
        return self.scene_pixels / max(self.seconds, 1e-9) / 1e6

    @property
    def tile_mpix_s(self) -> float:
        """Pixels the method computed per second of the loop: its rate beside ``gsr-bench bench``."""
        return self.tile_pixels / max(self.seconds, 1e-9) / 1e6


def default_overlap(tile: int, scale: int) -> int:
    """A quarter tile, in whole source blocks."""
    return max(scale, round(tile / 4 / scale) * scale) if tile > scale else 0


def prepare_tile(
    guide: np.ndarray,
    source: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    scale: int,
    guide_dtype: str = "float32",
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """A tile as methods receive it: the guide rounded to the precision the prepared tiles kept
    (``guide_dtype``), normalized, with the source mask ``[C + 1, H, W]``; the filled source
    ``[1, h, w]``; which source blocks have a value ``[h, w]``."""
    g = normalize_guide(guide.astype(guide_dtype).astype(np.float32), mean, std)
    valid = np.isfinite(source)[None]
    filled = fill_invalid_blocks(np.nan_to_num(source, nan=0.0)[None].astype(np.float32), valid)
    g_t = with_source_mask(torch.from_numpy(g), torch.from_numpy(valid), scale)
    return g_t, torch.from_numpy(filled), valid[0]


def predict_scene(
    method: Method,
    scene: Scene,
    mean: np.ndarray,
    std: np.ndarray,
    write: Callable[[int, np.ndarray], None],
    tile: int,
    overlap: int,
    batch: int = 4,
    progress: bool = True,
    project: bool = False,
    guide_dtype: str = "float32",
) -> PredictStats:
    """Predict ``scene`` with ``method`` and hand its rows to ``write(first_row, rows)``.

    Args:
        method: created and on its device, its weights loaded.
        scene: the opened, checked rasters.
        mean, std: per guide band, the job's train statistics.
        write: receives float32 rows of the scene's width, NaN where the source has no value.
        tile, overlap: tile side and overlap in pixels (multiples of the scale).
        batch: tiles per ``predict`` call.
        progress: show a bar in tiles with the rate in Mpix/s.
        project: correct every valid source block's mean to the source exactly.
        guide_dtype: the precision the job's prepared tiles kept the guide in.
    """
    grid = Grid(scene.height, scene.width, tile, overlap, scene.scale)
    blender = Blender(grid)
    stats = PredictStats(scene_pixels=scene.height * scene.width)
    bar = tqdm(total=len(grid), unit="tile", desc="predict", disable=not progress, dynamic_ncols=True)
    started = time.perf_counter()
    rows = grid.rows()
    columns = grid.columns()
    released = 0
    try:
        for i, y in enumerate(rows):
            for first in range(0, len(columns), batch):
                xs = columns[first : first + batch]
                prepared = [
                    prepare_tile(
                        scene.read_guide(y, x, tile),
                        scene.read_source(y, x, tile),
                        mean,
                        std,
                        scene.scale,
                        guide_dtype,
                    )
                    for x in xs
                ]
                guide = torch.stack([p[0] for p in prepared])
                source = torch.stack([p[1] for p in prepared])
                t0 = time.perf_counter()
                with torch.no_grad():
                    out = method.predict(guide, source)
                out_np = out.float().cpu().numpy()[:, 0]
                stats.predict_seconds += time.perf_counter() - t0
                for x, pred in zip(xs, out_np, strict=True):
                    blender.add(y, x, pred)
                stats.tiles += len(xs)
                stats.tile_pixels += len(xs) * tile * tile
                stats.rows_held = max(stats.rows_held, blender.rows_held)
                bar.update(len(xs))
            done = blender.release(rows[i + 1] if i + 1 < len(rows) else None)
            if done is not None:
                start, strip = done
                write(start, _finish(strip, scene, start, project))
                released = start + len(strip)
                kill_point("predict", i + 1)  # tests: killed after this many strips
                seconds = time.perf_counter() - started
                bar.set_postfix(
                    Mpix_s=f"{released * scene.width / max(seconds, 1e-9) / 1e6:.2f}", refresh=False
                )
    finally:
        bar.close()
    stats.seconds = time.perf_counter() - started
    return stats


def _finish(strip: np.ndarray, scene: Scene, start: int, project: bool) -> np.ndarray:
    """Rows ``start ..`` of the output: projected onto the source if asked, NaN where it has none."""
    s = scene.scale
    source = scene.source_array[start // s : (start + len(strip)) // s]
    valid = np.isfinite(source)
    if project:
        pred = torch.from_numpy(strip)[None, None]
        src = torch.from_numpy(np.where(valid, source, 0).astype(np.float32))[None, None]
        strip = project_to_source(pred, src, s)[0, 0].numpy()
    mask = np.repeat(np.repeat(valid, s, axis=0), s, axis=1)
    return np.where(mask, strip, np.nan).astype(np.float32)

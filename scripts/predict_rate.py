"""What ``gsr-bench predict`` costs beyond the method: its rate on a scene against the same
method's ``gsr-bench bench`` inference rate, on the same device, in one process.

    python scripts/predict_rate.py -m msg --tile 250 --chips 4

The scene is ``chips x chips`` simulator chips of 250 px (tests/scenes/mosaic.py). ``computed``
counts every pixel the method predicts (overlaps each time): its ratio to ``bench`` is the cost of
reading, normalizing, blending and writing. ``map`` counts output pixels: with a quarter-tile
overlap each is computed about 1.7 times. Also printed: the blended map against one pass over the
whole scene (away from its border) and the seam statistic, as tests/test_predict.py checks them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gsr_bench.bench import measure
from gsr_bench.data.raster import open_scene
from gsr_bench.data.scene import Grid
from gsr_bench.data.scene_writer import SceneWriter
from gsr_bench.data.tiles import guide_statistics
from gsr_bench.method import TaskInfo
from gsr_bench.plugins import get_plugin_manager
from gsr_bench.scene_predict import default_overlap, predict_scene, prepare_tile
from tests.scenes.mosaic import mosaic_scene, seam_ratio


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-m", "--method", default="msg")
    parser.add_argument("--tile", type=int, default=250)
    parser.add_argument("--chips", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    pm = get_plugin_manager()
    with tempfile.TemporaryDirectory() as tmp:
        scene_files = mosaic_scene(Path(tmp) / "scene", Path(tmp) / "chips", n=args.chips)
        channels = scene_files.channels
        scene = open_scene([scene_files.guide], scene_files.source, channels, 10)
        task = TaskInfo((*channels, "avail_source"), 10, args.tile, 60.0, 70.0, 500.0)
        torch.manual_seed(0)
        method = pm.methods.get(args.method).create(task).to(device)
        arrays = scene_files.guide_array
        mean, std = guide_statistics(
            channels, np.nanmean(arrays, axis=(1, 2)), np.nanstd(arrays, axis=(1, 2))
        )
        overlap = default_overlap(args.tile, 10)
        bench = measure(pm, [args.method], device, batch=args.batch, repeats=5)[0]
        writer = SceneWriter(Path(tmp) / "out.tif", scene.height, scene.width, scene.crs, scene.transform, {})
        stats = predict_scene(method, scene, mean, std, writer.write, args.tile, overlap, args.batch, False)
        writer.close()
        bench_again = measure(pm, [args.method], device, batch=args.batch, repeats=5)[0]
        import rasterio

        with rasterio.open(Path(tmp) / "out.tif") as src:
            blended = src.read(1, masked=True).filled(np.nan)
        guide, source, _ = prepare_tile(
            scene.read_guide(0, 0, scene.height), scene.read_source(0, 0, scene.height), mean, std, 10
        )
        with torch.no_grad():
            whole = method.predict(guide[None].to(device), source[None].to(device))[0, 0].cpu().numpy()
        scene.close()
    rate = (bench.mpix_s + bench_again.mpix_s) / 2
    computed, mapped = stats.tile_mpix_s, stats.scene_mpix_s
    print(
        f"{args.method} on {device}, scene {scene.width} x {scene.height}, "
        f"tile {args.tile}, overlap {overlap}"
    )
    print(f"bench inference (before, after): {bench.mpix_s:.3f}, {bench_again.mpix_s:.3f} Mpix/s")
    print(f"predict, computed pixels: {computed:.3f} Mpix/s (ratio {computed / rate:.2f})")
    print(f"predict, map pixels: {mapped:.3f} Mpix/s (ratio {mapped / rate:.2f})")
    print(
        f"of the loop, inside predict(): {stats.predict_seconds / stats.seconds:.0%} of {stats.seconds:.1f} s"
    )
    margin = args.tile // 4
    inner = np.s_[margin:-margin, margin:-margin]
    diff = np.abs(blended[inner] - whole[inner])
    print(
        f"blended vs one pass (inner): mean |diff| {diff.mean():.4f}, max {diff.max():.4f}, "
        f"std of the map {np.std(whole[inner]):.3f}"
    )
    ratio = seam_ratio(blended, Grid(scene.height, scene.width, args.tile, overlap, 10))
    print(f"seam statistic (steps at tile borders / elsewhere): {ratio:.3f}")


if __name__ == "__main__":
    main()

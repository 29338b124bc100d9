"""``gsr-bench predict``: a 10 m map from a coarse map and fine images, with a method the suite ran."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from gsr_bench.cli._shared import DEFAULT_DATASET, DEFAULT_PROTOCOL, Add, dataset_args, tracking_args
from gsr_bench.errors import GsrBenchError

log = logging.getLogger(__name__)


def add_parsers(add: Add) -> None:
    p = add(
        "predict",
        "super-resolve a georeferenced scene (coarse source GeoTIFF + fine guide GeoTIFFs) with a "
        "method's finished job",
        "gsr-bench predict -m msg --protocol smoke --source agb_100m.tif --guide guide_10m.tif "
        "--out agb_10m.tif",
    )
    p.add_argument("-m", "--method", required=True, help="method name (see `gsr-bench list methods`)")
    p.add_argument(
        "-d",
        "--dataset",
        default=DEFAULT_DATASET,
        help=f"the dataset its job trained on (default {DEFAULT_DATASET})",
    )
    p.add_argument(
        "--protocol", default=DEFAULT_PROTOCOL, help=f"the job's protocol (default {DEFAULT_PROTOCOL})"
    )
    p.add_argument("--seed", type=int, help="the job's seed (default: the protocol's first)")
    dataset_args(p)
    p.add_argument(
        "--checkpoint",
        metavar="MODEL.pt",
        help="a model file a job wrote (its run's model.pt artifact) instead of looking the job up",
    )
    p.add_argument(
        "--source",
        required=True,
        metavar="COARSE.tif",
        help="the coarse map, one band, on the guide's grid at the dataset's scale",
    )
    p.add_argument(
        "--guide",
        required=True,
        action="append",
        metavar="FINE.tif",
        help="guide GeoTIFF (repeatable: their bands in order are the dataset's guide channels)",
    )
    p.add_argument(
        "--out", required=True, metavar="OUT.tif", help="the output GeoTIFF (float32, the guide's grid)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument(
        "--resample-source",
        action="store_true",
        help="warp a source that is not on the guide's grid onto it (average resampling) instead of "
        "refusing it",
    )
    p.add_argument(
        "--project-to-source",
        action="store_true",
        help="correct every source block's mean to the source exactly",
    )
    p.add_argument("--tile", type=int, help="tile side in pixels (default: the protocol's crop)")
    p.add_argument(
        "--overlap", type=int, help="overlap of neighbouring tiles in pixels (default: a quarter tile)"
    )
    p.add_argument("--batch-size", type=int, default=4, help="tiles per prediction call (default 4)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: the protocol's policy)")
    p.add_argument("--quicklook", metavar="PNG", help="also draw source, guide RGB and output side by side")
    tracking_args(p)
    p.set_defaults(fn=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    import rasterio

    from gsr_bench.data.raster import cache_bytes
    from gsr_bench.plugins import get_plugin_manager
    from gsr_bench.predict import from_checkpoint, from_job

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise GsrBenchError(f"{out}: exists; pass --overwrite to replace it")
    pm = get_plugin_manager()
    for failure in pm.failures:
        print(f"warning: {failure}", file=sys.stderr)
    if args.checkpoint:
        model = from_checkpoint(pm, Path(args.checkpoint))
        protocol = pm.load_protocol(model.card.protocol)
    else:
        jobs = _jobs(args)
        protocol = jobs[0].protocol
        from gsr_bench.tracking import Tracker

        model = from_job(Tracker(Path(args.results), args.tracking_uri), jobs, args.root, args.dataset_option)
    log.info("model: %s", model.origin)
    tile = args.tile or int(model.card.task["crop"])
    # set before any block is read: GDAL sizes its cache once, at 5 % of the memory by default
    with rasterio.Env(GDAL_CACHEMAX=cache_bytes(args.guide, tile)):
        return _predict_scene(args, model, protocol, tile)


def _predict_scene(args: argparse.Namespace, model: Any, protocol: Any, tile: int) -> int:
    from gsr_bench.data.raster import open_scene
    from gsr_bench.data.scene_writer import SceneWriter
    from gsr_bench.planning import select_device
    from gsr_bench.predict import output_tags, prepare_for_scene, scene_statistics
    from gsr_bench.scene_predict import default_overlap, predict_scene

    out = Path(args.out)
    card = model.card
    scene = open_scene(args.guide, args.source, card.guide_channels, card.scale, args.resample_source)
    for note in scene.notes:
        print(f"note: {note}", file=sys.stderr)
    if not model.has_job:
        model = scene_statistics(model, scene)
        print(
            "note: no job for this training-free method: its defaults, the guide z-scored with the "
            "scene's own statistics",
            file=sys.stderr,
        )
    overlap = default_overlap(tile, card.scale) if args.overlap is None else args.overlap
    if tile > min(scene.height, scene.width):
        tile = min(scene.height, scene.width)
        overlap = min(overlap, tile - card.scale)
    device = select_device(args.device, protocol.device.policy)
    method = prepare_for_scene(model, protocol, device)
    mean, std = model.card.normalization()
    writer = SceneWriter(
        out, scene.height, scene.width, scene.crs, scene.transform, output_tags(model, scene), args.overwrite
    )
    try:
        stats = predict_scene(
            method,
            scene,
            mean,
            std,
            writer.write,
            tile,
            overlap,
            args.batch_size,
            not args.quiet,
            args.project_to_source,
            model.card.guide_dtype,
        )
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        scene.close()
    print(
        f"{out}: {scene.width} x {scene.height} px, {stats.tiles} tiles of {tile} (overlap {overlap}) in "
        f"{stats.seconds:.1f} s: {stats.scene_mpix_s:.2f} Mpix/s of map, {stats.tile_mpix_s:.2f} Mpix/s "
        f"computed on {device}; model: {model.origin}"
    )
    if args.quicklook:
        from gsr_bench.figures import draw_quicklook

        print(f"quicklook: {draw_quicklook(Path(args.quicklook), scene, out, card.rgb_channels, card.units)}")
    return 0


def _jobs(args: argparse.Namespace) -> list[Any]:
    """The job as planned for this device, then with the other devices' numerics: a model trained
    on a GPU (bf16, compiled) has another key than on a CPU, and either may serve here."""
    from dataclasses import replace

    from gsr_bench.planning import plan_jobs
    from gsr_bench.plugins import get_plugin_manager

    pm = get_plugin_manager()
    planned = plan_jobs(
        pm,
        [args.method],
        [args.dataset],
        pm.load_protocol(args.protocol),
        [args.seed] if args.seed is not None else None,
        args.root,
        args.dataset_option,
        skip_unfit=False,
        device=args.device,
    )
    if not planned:
        raise GsrBenchError(f"no job for {args.method} on {args.dataset} under {args.protocol}")
    job = planned[0]
    found = {job.key: job}
    for kind in ("cpu", "cuda"):
        other = replace(job, numerics=job.protocol.device.applied(kind))
        found.setdefault(other.key, other)
    return list(found.values())

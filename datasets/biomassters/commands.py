"""``gsr-bench data synth``, ``download``, ``composite`` and ``check``: the BioMassters plugin's actions."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gsr_bench.api import table


def synth_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="folder to write")
    p.add_argument("--chips", type=int, required=True, help="number of train chips")
    p.add_argument("--test-chips", type=int, help="number of test chips (default: chips / 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, help="processes (default: CPU count)")


def synth(args: argparse.Namespace) -> int:
    from gsr_bench_datasets.biomassters.synth import synthesize

    out = synthesize(
        args.out,
        args.chips,
        args.seed,
        test_chips=args.test_chips,
        workers=args.workers,
        progress=not args.quiet,
    )
    print(f"wrote synthetic BioMassters to {out}")
    return 0


def check_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", required=True)
    p.add_argument("--split", help="only this split")
    p.add_argument(
        "--stats",
        action="store_true",
        help="print AGB, S1 and S2 statistics and the within-block (100 m) share and guide R² per chip",
    )
    p.add_argument(
        "--plot", metavar="FILE.png", help="with --stats: every band per month, forest against open"
    )
    p.add_argument("--max-chips", type=int, default=100, help="chips sampled for --stats")
    p.add_argument("--max-problems", type=int, default=50, help="problems printed")
    p.add_argument("--strict", action="store_true", help="warnings (unofficial dtypes) fail too")


def _fine_scale(layout: Any, max_chips: int) -> None:
    from gsr_bench.api import MIN_VALID
    from gsr_bench.api import summarize_fine_scale as summarize
    from gsr_bench_datasets.biomassters.check import fine_scale_statistics

    found = fine_scale_statistics(layout, max_chips)
    print(
        "\nwithin 100 m blocks, leaf-on composite, chips with >= "
        f"{MIN_VALID:.0%} valid pixels (real BioMassters: share 0.48 (0.41-0.58), guide R² 0.24 (0.18-0.31))"
    )
    for f in found:
        print(f"  {f}")
    s = summarize(found)
    for label, key in (
        ("share of AGB variance", "within_block_share"),
        ("guide R²", "within_block_guide_r2"),
    ):
        n = int(s[f"{key}_tiles"])
        if n:
            spread = f"({s[f'{key}_min']:.2f}-{s[f'{key}_max']:.2f})"
            print(f"{label}: mean {s[f'{key}_mean']:.3f} {spread} over {n} chips")
        else:
            print(f"{label}: undefined on every chip (see the reasons above)")


def check(args: argparse.Namespace) -> int:
    from gsr_bench_datasets.biomassters.check import check_layout, data_statistics
    from gsr_bench_datasets.biomassters.layout import MONTHS, BioMasstersLayout

    layout = BioMasstersLayout(args.root)
    report = check_layout(layout, args.split)
    print(f"root      {report.root}\nmetadata  {report.metadata.name}")
    print("chips     " + ", ".join(f"{k}: {v}" for k, v in sorted(report.chips.items())))
    rows = [
        [f"{i:02d} {MONTHS[i][:3]}", str(report.months["S1"][i]), str(report.months["S2"][i])]
        for i in range(12)
    ]
    print("\nchips with an image per month\n" + table(rows, ["month", "S1", "S2"]))
    if args.stats:
        stats = data_statistics(layout, args.max_chips)
        print(
            "\nstatistics (compare with the real BioMassters: AGB mean ~63, std ~71, p99.9 ~425, "
            "zeros 19-25 %; VV asc ~-11.4 dB (3.2), VH asc ~-18.1 dB (4.4); corr NDVI ~+0.5, B12 ~-0.5)"
        )
        print(table([[k, f"{v:.2f}"] for k, v in stats.items()], ["statistic", "value"]))
        _fine_scale(layout, args.max_chips)
        if args.plot:
            from gsr_bench_datasets.biomassters.plots import band_samples, plot_bands

            plot_bands(band_samples(layout, args.max_chips), Path(args.plot), str(layout.root))
            print(f"\nband distributions drawn to {args.plot}")
    errors = report.errors
    warnings = [p for p in report.problems if p.severity != "error"]
    for p in report.problems[: args.max_problems]:
        print(p)
    if len(report.problems) > args.max_problems:
        print(f"... and {len(report.problems) - args.max_problems} more")
    print(f"\n{len(errors)} error(s), {len(warnings)} warning(s)")
    return 1 if errors or (args.strict and warnings) else 0


def download_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", required=True, help="folder to download into (created; a rerun resumes)")
    p.add_argument("--split", choices=("train", "test", "all"), default="all", help="default all")
    p.add_argument(
        "--months",
        default="all",
        help="leafon (April-August, the default composite's), all (default), or indices and names: 7,8,May",
    )
    p.add_argument("--sensors", default="S1,S2", help="S1, S2, S1,S2 (default) or none (labels only)")
    p.add_argument("--labels", action=argparse.BooleanOptionalAction, default=True, help="the AGB labels")
    p.add_argument("--chips", type=int, help="a seeded sample of this many chips per split")
    p.add_argument("--seed", type=int, default=0, help="the --chips sample's seed (default 0)")
    p.add_argument("--chip-ids", metavar="FILE", help="only the chips listed in FILE, one id a line")
    p.add_argument(
        "--region", choices=("us", "eu", "as"), default="us", help="which official bucket (default us)"
    )
    p.add_argument("--endpoint-url", help="an S3-compatible server instead of AWS (a mirror)")
    p.add_argument("--bucket", help="the bucket's name on that server")
    p.add_argument("--workers", type=int, default=16, help="parallel transfers (default 16)")
    p.add_argument("--retries", type=int, default=5, help="tries after a timeout, reset or 5xx (default 5)")
    p.add_argument("--dry-run", action="store_true", help="files, bytes and time only")
    p.add_argument(
        "--bandwidth", type=float, default=10.0, help="MB/s the dry run's times assume (default 10)"
    )


def download(args: argparse.Namespace) -> int:
    from gsr_bench.api import DataError
    from gsr_bench_datasets.biomassters.download import Source
    from gsr_bench_datasets.biomassters.download import download as run_download
    from gsr_bench_datasets.biomassters.selection import SPLITS, Selection, parse_months, parse_sensors

    chip_ids = None
    if args.chip_ids:
        try:
            chip_ids = tuple(
                line.strip() for line in Path(args.chip_ids).read_text().splitlines() if line.strip()
            )
        except OSError as exc:
            raise DataError(f"{args.chip_ids}: cannot read the chip ids ({exc.strerror})") from None
    if args.chips is not None and args.chips < 1:
        raise DataError(f"--chips {args.chips}: give a number of chips of at least 1")
    if args.workers < 1:
        raise DataError(f"--workers {args.workers}: give at least 1")
    selection = Selection(
        splits=SPLITS if args.split == "all" else (args.split,),
        months=parse_months(args.months),
        sensors=parse_sensors(args.sensors),
        labels=args.labels,
        chips=args.chips,
        seed=args.seed,
        chip_ids=chip_ids,
    )
    source = Source(args.region, args.bucket, args.endpoint_url)
    return run_download(
        Path(args.root).expanduser(),
        selection,
        source,
        workers=args.workers,
        retries=args.retries,
        dry_run=args.dry_run,
        bandwidth=args.bandwidth,
        progress=not args.quiet,
    )


def composite_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="monthly GeoTIFFs of one grid named ..._S1_MM.tif / ..._S2_MM.tif (MM 00-11, 00 = September), "
        "with the official bands",
    )
    p.add_argument("--out", required=True, metavar="GUIDE.tif", help="the guide GeoTIFF to write")
    p.add_argument(
        "--composite",
        default="leafon-median",
        help="the dataset's composite option the model was trained with (default leafon-median)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def composite(args: argparse.Namespace) -> int:
    from gsr_bench_datasets.biomassters.scene_composite import composite_scene

    out = composite_scene(
        args.files, args.out, args.composite, overwrite=args.overwrite, progress=not args.quiet
    )
    print(f"wrote the {args.composite} guide of {len(args.files)} monthly files to {out}")
    return 0

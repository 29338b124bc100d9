"""``gsr-bench bench`` and ``estimate``: how fast each method is here, and what a run costs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gsr_bench.cli._shared import Add, job_args, planned_jobs
from gsr_bench.clitable import table
from gsr_bench.errors import GsrBenchError


def add_parsers(add: Add) -> None:
    p = add(
        "bench",
        "time every method's inference on this device, beside the GSR4B table",
        "gsr-bench bench --compare --threshold 0.1",
    )
    p.add_argument("-m", "--method", action="append", help="method name (repeatable; default all)")
    p.add_argument("--device", help="cpu, cuda ... (default: CUDA when present)")
    p.add_argument("--batch", type=int, default=4, help="tiles of 250 x 250 per call")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--train-batch", type=int, default=8, help="tiles per timed training step")
    p.add_argument("--train-patch", type=int, default=60, help="patch size of the timed training steps")
    p.add_argument("--results", default="results", help="timings are saved under RESULTS/bench/")
    p.add_argument("--compare", action="store_true", help="fail on a slowdown against the last save")
    p.add_argument("--threshold", type=float, default=0.10, help="allowed median slowdown (0.10 = 10 %%)")
    p.set_defaults(fn=cmd_bench)

    p = add(
        "estimate",
        "the jobs a run would make, the data it would prepare, and their time from saved bench rates",
        "gsr-bench estimate --all -d biomassters --protocol paper --rates gpu-rates.json",
    )
    job_args(p)
    p.add_argument("--device", help="whose saved rates: a device name or part of it (cpu, cuda, H200)")
    p.add_argument("--results", default="results", help="rates are read from RESULTS/bench/")
    p.add_argument("--rates", help="a saved bench JSON file to use instead")
    p.add_argument("--max-hours", type=float, default=24.0, help="warn above this total")
    p.add_argument("--strict", action="store_true", help="exit 1 above --max-hours")
    p.set_defaults(fn=cmd_estimate)


def cmd_bench(args: argparse.Namespace) -> int:
    from gsr_bench import bench
    from gsr_bench.metrics import format_rate
    from gsr_bench.planning import select_device
    from gsr_bench.plugins import get_plugin_manager

    pm = get_plugin_manager()
    names = args.method or pm.methods.names()
    device = select_device(args.device, "auto")
    timings = bench.measure(
        pm,
        names,
        device,
        args.batch,
        args.repeats,
        train_batch=args.train_batch,
        train_patch=args.train_patch,
    )
    folder = Path(args.results) / "bench"
    before = bench.previous(folder)
    path = bench.save(timings, folder)
    rows = [
        [
            t.method,
            t.family,
            f"{t.params:,}",
            "-" if t.flops_per_pixel is None else f"{t.flops_per_pixel / 1e3:,.1f}",
            format_rate(t.mpix_s),
            "-" if t.train_mpix_s is None else format_rate(t.train_mpix_s),
            "-" if t.paper_mpix_s is None else f"{t.paper_mpix_s:,g}",
            t.device,
        ]
        for t in timings
    ]
    headers = [
        "method",
        "family",
        "params",
        "kFLOP/px",
        "Mpix/s",
        "train Mpix/s",
        "GSR4B Mpix/s (GPU)",
        "device",
    ]
    print(table(rows, headers))
    if any(t.periods > 1 for t in timings):
        print(f"temporal methods read {bench.SERIES_PERIODS} guide images a tile (a year of months)")
    print(f"saved {path}")
    if args.compare:
        if before is None:
            print("nothing saved before to compare with")
            return 0
        slower = bench.regressions(timings, before, args.threshold)
        for line in slower:
            print(f"regression: {line}", file=sys.stderr)
        return 1 if slower else 0
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from gsr_bench.estimate import estimate, load_rates
    from gsr_bench.plugins import get_plugin_manager

    jobs = planned_jobs(args)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        rates = load_rates(
            Path(args.results) / "bench", args.device, Path(args.rates) if args.rates else None
        )
    except GsrBenchError:
        if args.rates:
            raise
        args.rates = "h200-reference"  # plan anyway, and say from what
        print(
            f"warning: no saved bench rates for {args.device} in {args.results}/bench: planning with the "
            "shipped H200 reference rates (time this machine with `gsr-bench bench`)",
            file=sys.stderr,
        )
        rates = load_rates(Path(args.results) / "bench", None, Path(args.rates))
    found, data, missing = estimate(jobs, rates, get_plugin_manager())
    rows = [
        [e.name, f"{e.train_s / 3600:.2f}", f"{e.eval_s / 3600:.2f}", f"{e.total_s / 3600:.2f}", e.basis]
        for e in found
    ]
    total_h = sum(e.total_s for e in found) / 3600
    rows.append(["total", "", "", f"{total_h:.2f}", f"{len(found)} jobs"])
    device = next(iter(rates.values()))["device"]
    print(f"rates: {device} ({args.rates or args.results + '/bench'})")
    print(table(rows, ["job", "train h", "eval h", "total h", "from"]))
    for d in data:
        print(f"data to prepare (unless cached): {d.dataset}: {d.chips:,} chips, {d.gigabytes:.1f} GB")
    for name, why in missing.items():
        print(f"warning: method {name!r} is not in the total: {why}", file=sys.stderr)
    if total_h > args.max_hours:
        print(f"warning: {total_h:.1f} hours exceeds --max-hours {args.max_hours:g}", file=sys.stderr)
        return 1 if args.strict else 0
    return 0

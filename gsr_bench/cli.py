"""The ``gsr-bench`` command line.

Errors are one clear line on stderr (exit status 2); ``--verbose`` shows the traceback. Heavy
imports (torch, MLflow) happen inside the commands that need them, so ``list`` and ``--help`` are
quick.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gsr_bench import __version__
from gsr_bench.clitable import table as _table
from gsr_bench.errors import GsrBenchError

if TYPE_CHECKING:
    from gsr_bench.tracking import Tracker

DEFAULT_DATASET = "biomassters-synthetic"
DEFAULT_PROTOCOL = "quick"


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


# --- list, plugins -------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from gsr_bench.plugins import get_plugin_manager
    from gsr_bench.protocol import list_protocols

    what = args.what
    if what in ("methods", "all"):
        reg = get_plugin_manager().methods
        rows = [
            [s.name, s.family, s.version, s.distribution, s.description]
            for s in reg
            if s.name in reg.names(args.filter, args.family)
        ]
        print(_table(rows, ["method", "family", "version", "plugin", "description"]))
    if what in ("datasets", "all"):
        reg_d = get_plugin_manager().datasets
        rows = [
            [s.name, s.version, s.distribution, s.description]
            for s in reg_d
            if s.name in reg_d.names(args.filter)
        ]
        print(_table(rows, ["dataset", "version", "plugin", "description"]))
    if what in ("protocols", "all"):
        rows = [
            [
                p.name,
                p.version,
                str(p.task.crop),
                str(p.train.steps),
                " ".join(map(str, p.seeds)),
                p.description,
            ]
            for p in list_protocols()
        ]
        print(_table(rows, ["protocol", "version", "crop", "steps", "seeds", "description"]))
    failures = get_plugin_manager().failures if what != "protocols" else []
    if failures:  # what failed is missing from the lists above: never in silence
        names = ", ".join(sorted({f.plugin for f in failures}))
        print(
            f"warning: {len(failures)} plugin failure(s) ({names}): `gsr-bench plugins` says what failed",
            file=sys.stderr,
        )
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from gsr_bench.plugins import get_plugin_manager
    from gsr_bench.registry import check_factory

    pm = get_plugin_manager()
    rows = [
        [
            p.name,
            p.distribution,
            p.version,
            "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(p.registered.items())) or "-",
        ]
        for p in pm.plugins.values()
    ]
    print(_table(rows, ["plugin", "distribution", "version", "registered"]))
    # a plugin can load and still register a factory that cannot be imported: check them all
    broken = []
    for kind, registry in (("method", pm.methods), ("dataset", pm.datasets)):
        for spec in registry:
            try:
                check_factory(kind, spec)
            except GsrBenchError as exc:
                broken.append(str(exc))
    if pm.failures or broken:
        print(f"\n{len(pm.failures) + len(broken)} plugin failure(s):", file=sys.stderr)
        for f in pm.failures:
            print(f"  {f}", file=sys.stderr)
            if args.verbose and f.traceback:
                print(f.traceback, file=sys.stderr)
        for line in broken:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


# --- data ----------------------------------------------------------------------------------------


def cmd_data_prepare(args: argparse.Namespace) -> int:
    from gsr_bench.data import store
    from gsr_bench.data.prepare import prepare_split
    from gsr_bench.jobs import cache_dir
    from gsr_bench.planning import dataset_options
    from gsr_bench.plugins import get_plugin_manager
    from gsr_bench.protocol import load_protocol

    pm = get_plugin_manager()
    protocol = load_protocol(args.protocol)
    spec = pm.datasets.get(args.dataset)
    options = dataset_options(spec, protocol, args.root, args.dataset_option)
    dataset = spec.create(**options)
    crop = args.crop or protocol.task.crop
    dtype = args.guide_dtype or protocol.data.guide_dtype
    try:
        if args.out:
            if not args.split:
                raise GsrBenchError("--out writes one split: add --split train or --split test")
            dataset.setup(cache_dir(Path(args.results)), progress=not args.quiet)
            paths = {
                args.split: prepare_split(
                    dataset, args.split, args.out, crop, args.workers, not args.quiet, dtype
                )
            }
        else:
            paths = store.prepare(
                dataset, cache_dir(Path(args.results)), crop, dtype, not args.quiet, args.workers
            )
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume (the .partial file is kept)", file=sys.stderr)
        return 130
    for split, path in paths.items():
        print(f"{split}: {path}")
    return 0


def _plugin_command(spec: Any) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from gsr_bench.registry import resolve_factory

        owner = f"command {spec.name!r} of plugin {spec.plugin!r}: "
        return int(resolve_factory(spec.run, owner)(args))

    return run


# --- run, leaderboard ----------------------------------------------------------------------------


def _tracker(args: argparse.Namespace) -> Tracker:
    from gsr_bench.tracking import Tracker

    return Tracker(Path(args.results), args.tracking_uri)


def _planned_jobs(
    args: argparse.Namespace, overrides: dict[str, Any] | None = None, device: str | None = None
) -> list[Any]:
    """The jobs that ``-m``/``--all``, ``-d``, ``--protocol``, ``--seeds`` and the dataset flags
    name (run, estimate and score plan alike)."""
    from gsr_bench.planning import plan_jobs
    from gsr_bench.plugins import get_plugin_manager
    from gsr_bench.protocol import load_protocol

    pm = get_plugin_manager()
    if not args.all and not args.method:
        raise GsrBenchError("name methods with -m NAME (see `gsr-bench list methods`) or use --all")
    methods = pm.methods.names() if args.all else args.method
    protocol = load_protocol(args.protocol)
    if overrides:
        protocol = protocol.with_overrides(overrides, "command line")
    return plan_jobs(
        pm,
        methods,
        args.dataset or [DEFAULT_DATASET],
        protocol,
        args.seeds,
        args.root,
        args.dataset_option,
        getattr(args, "test_dataset", None),
        getattr(args, "test_split", "test"),
        skip_unfit=bool(args.all),
        device=device,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from gsr_bench.leaderboard import write_leaderboard
    from gsr_bench.plugins import get_plugin_manager
    from gsr_bench.records import RECORDS_DIR
    from gsr_bench.results_dir import exclusive
    from gsr_bench.runner import Runner

    pm = get_plugin_manager()
    for failure in pm.failures:
        print(f"warning: {failure}", file=sys.stderr)
    overrides = {"eval.project_to_source": True} if args.project_to_source else None
    jobs = _planned_jobs(args, overrides, args.device)
    publish = not args.no_leaderboard and bool(jobs) and (args.publish or jobs[0].protocol.publish)
    if args.ddp:
        from gsr_bench import distributed
        from gsr_bench.jobs import cache_dir
        from gsr_bench.runner import follow

        if args.executor != "local":
            raise GsrBenchError("--ddp trains each job over torchrun's processes; it needs --executor local")
        device = distributed.init(args.device)
        args.device = str(device)
        if not distributed.is_main():
            results_dir = Path(args.results)
            try:
                follow(pm, jobs, cache_dir(results_dir), results_dir / "checkpoints", device)
            finally:
                distributed.finish()
            return 0
        import atexit

        atexit.register(distributed.finish)  # rank 0 goes on to the table and the leaderboard
    with exclusive(Path(args.results)):
        tracker = _tracker(args)
        runner = Runner(
            pm,
            tracker,
            Path(args.results),
            args.device,
            args.force,
            progress=not args.quiet,
            executor=args.executor,
            ray_address=args.ray_address,
            records=Path(args.leaderboard) / RECORDS_DIR if publish else None,
        )
        results = runner.run(jobs)
    rows = [
        [
            r.job.method.name,
            r.job.datasets_label,
            r.job.protocol.name,
            str(r.job.seed),
            r.status,
            f"{r.metrics.get('rmse', float('nan')):.2f}",
            f"{r.seconds:.1f}",
            r.error[:80],
        ]
        for r in results
    ]
    print(_table(rows, ["method", "dataset", "protocol", "seed", "status", "RMSE", "seconds", "error"]))
    if publish:
        write_leaderboard(args.leaderboard, pm, tracker)
        print(f"leaderboard written to {args.leaderboard}/README.md and index.html")
    elif jobs and not args.no_leaderboard:
        print(
            f"not published: protocol {jobs[0].protocol.name!r} does not publish (results stay in "
            f"{tracker.uri}; add --publish to write records into {args.leaderboard}/)"
        )
    failed = [r for r in results if r.status == "FAILED"]
    for r in failed:
        if args.verbose and r.traceback:
            print(f"\n{r.job.name} failed:\n{r.traceback}", file=sys.stderr)
    if failed and not args.verbose:
        print(
            f"{len(failed)} job(s) failed: rerun with --verbose for the tracebacks (also saved as each "
            "run's traceback.txt artifact)",
            file=sys.stderr,
        )
    return 1 if failed else 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from gsr_bench.leaderboard import write_leaderboard

    if args.check:
        return check_records(Path(args.out))
    from gsr_bench.plugins import get_plugin_manager

    pm = get_plugin_manager()
    if args.prune:
        from gsr_bench.records import RECORDS_DIR, prune

        removed = prune(Path(args.out) / RECORDS_DIR, pm)
        for path, why in removed:
            print(f"removed {path}: {why}")
        print(f"{len(removed)} superseded record(s) removed")
    table = write_leaderboard(args.out, pm, _tracker(args))
    print(f"{len(table)} row(s) written to {args.out}/ (README.md, results.csv, index.html, figures/)")
    return 0


def check_records(out: Path) -> int:
    """``leaderboard --check``: the records of a submission, before anything is written."""
    from gsr_bench import records
    from gsr_bench.plugins import get_plugin_manager

    folder = out / records.RECORDS_DIR
    count = sum(1 for _ in records.load(folder))
    problems = records.check(folder, get_plugin_manager())
    for p in problems:
        print(p)
    errors = [p for p in problems if p.severity == "error"]
    print(f"{count} record(s) in {folder}: {len(errors)} error(s), {len(problems) - len(errors)} warning(s)")
    return 1 if errors else 0


def cmd_score(args: argparse.Namespace) -> int:
    from gsr_bench.records import RECORDS_DIR
    from gsr_bench.score import score_jobs

    jobs = _planned_jobs(args)
    records = Path(args.leaderboard) / RECORDS_DIR
    tracker = _tracker(args)
    rows = score_jobs(tracker, jobs, Path(args.results), not args.dry_run, not args.quiet, records)
    print(_table(rows, ["job", "metric", "logged", "from predictions", "difference"]))
    return 0


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
    print(_table(rows, headers))
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

    jobs = _planned_jobs(args)
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
    print(_table(rows, ["job", "train h", "eval h", "total h", "from"]))
    for d in data:
        print(f"data to prepare (unless cached): {d.dataset}: {d.chips:,} chips, {d.gigabytes:.1f} GB")
    for name, why in missing.items():
        print(f"warning: method {name!r} is not in the total: {why}", file=sys.stderr)
    if total_h > args.max_hours:
        print(f"warning: {total_h:.1f} hours exceeds --max-hours {args.max_hours:g}", file=sys.stderr)
        return 1 if args.strict else 0
    return 0


# --- parser --------------------------------------------------------------------------------------


def _adder(sub: Any, common: argparse.ArgumentParser) -> Callable[[str, str, str], argparse.ArgumentParser]:
    """A sub-command factory: every command gets the common flags, a description and an example."""

    def add(name: str, help: str, example: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            name,
            parents=[common],
            help=help,
            description=help,
            epilog=f"example:\n  {example}",
            formatter_class=_formatter,
        )
        return parser

    return add


def _common_flags(default: Any) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="show tracebacks and debug logs"
    )
    common.add_argument("-q", "--quiet", action="store_true", default=default, help="no progress bars")
    return common


def job_args(p: argparse.ArgumentParser, test: bool = False) -> None:
    """What names a set of jobs (``_planned_jobs``): methods, datasets, protocol, seeds, dataset
    options, and with ``test`` the dataset evaluated on."""
    p.add_argument("--all", action="store_true", help="every installed method")
    p.add_argument("-m", "--method", action="append", help="method name (repeatable)")
    p.add_argument(
        "-d", "--dataset", action="append", help=f"dataset (repeatable; default {DEFAULT_DATASET})"
    )
    p.add_argument("--protocol", default=DEFAULT_PROTOCOL, help="protocol name or TOML file (default quick)")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (default: the protocol's)")
    dataset_args(p)
    if test:
        p.add_argument(
            "--test-dataset",
            metavar="NAME",
            help="evaluate on this dataset (same guide channels), not the training dataset's test split",
        )
        p.add_argument(
            "--test-split",
            default="test",
            choices=["test", "train"],
            help="which split of --test-dataset to evaluate on (default test; train: every tile of it)",
        )


def dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", help="the dataset's folder, for datasets read from one (biomassters)")
    p.add_argument(
        "-O",
        "--dataset-option",
        action="append",
        metavar="KEY=VALUE",
        help="a dataset option (repeatable), over the protocol's [datasets.NAME]: -O composite=seasonal",
    )


def _failed(message: str) -> Callable[[argparse.Namespace], int]:
    def fn(args: argparse.Namespace) -> int:
        raise GsrBenchError(message)

    return fn


def arguments(spec: Any) -> Callable[[argparse.ArgumentParser], None]:
    from gsr_bench.registry import resolve_factory

    return resolve_factory(spec.arguments, f"command {spec.name!r} of plugin {spec.plugin!r}: ")


def build_parser(commands: Sequence[Any] | None = None) -> argparse.ArgumentParser:
    """The parser; ``commands`` are the ``data`` actions plugins registered (CommandSpec)."""
    # `-v` and `-q` work before and after the command: a sub-command's copy has no default, so it
    # never resets what was given before the command (`gsr-bench -v run ...`)
    common = _common_flags(argparse.SUPPRESS)
    parser = argparse.ArgumentParser(
        prog="gsr-bench",
        parents=[_common_flags(False)],
        formatter_class=_formatter,
        description="Benchmark guided super-resolution of biomass maps.",
        epilog="examples:\n  gsr-bench list methods\n  gsr-bench run --all\n"
        "  gsr-bench run -m bicubic -d biomassters --root ~/biomassters --protocol paper",
    )
    parser.add_argument("--version", action="version", version=f"gsr-bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add = _adder(sub, common)

    p = add(
        "list",
        "list registered methods, datasets or protocols",
        "gsr-bench list methods --family gsr",
    )
    p.add_argument("what", nargs="?", default="all", choices=["methods", "datasets", "protocols", "all"])
    p.add_argument("--family", choices=["gsr", "sr", "regression"], help="only methods of this family")
    p.add_argument("--filter", help="shell-style name pattern, e.g. 'msg*'")
    p.set_defaults(fn=cmd_list)

    p = add(
        "plugins",
        "list installed plugins, their versions, what they registered and failures",
        "gsr-bench plugins",
    )
    p.set_defaults(fn=cmd_plugins)

    data = add(
        "data",
        "prepare a dataset's store, and the actions dataset plugins add",
        "gsr-bench data prepare -d biomassters --root ~/biomassters --protocol paper",
    )
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    dadd = _adder(dsub, common)

    p = dadd(
        "prepare",
        "read a dataset once into the store runs use (guide, target, source, statistics)",
        "gsr-bench data prepare -d biomassters --root ~/biomassters --protocol paper",
    )
    p.add_argument("-d", "--dataset", default=DEFAULT_DATASET, help=f"dataset (default {DEFAULT_DATASET})")
    dataset_args(p)
    p.add_argument(
        "--protocol", default=DEFAULT_PROTOCOL, help="whose crop and dataset options (default quick)"
    )
    p.add_argument("--split", choices=["train", "test"], help="only this split (with --out)")
    p.add_argument("--out", help="HDF5 file to write instead of the results' cache")
    p.add_argument("--crop", type=int, help="top-left crop (default: the protocol's)")
    p.add_argument("--guide-dtype", choices=["float16", "float32"], help="how the guide is stored")
    p.add_argument("--workers", type=int, help="processes (default: CPU count)")
    p.add_argument("--results", default="results", help="the cache is RESULTS/cache (or GSR_BENCH_CACHE)")
    p.set_defaults(fn=cmd_data_prepare)
    for spec in commands or []:
        p = dadd(spec.name, spec.help, spec.example)
        try:
            arguments(spec)(p)
        except GsrBenchError as exc:
            p.set_defaults(fn=_failed(str(exc)))
            continue
        p.set_defaults(fn=_plugin_command(spec))

    def tracking_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--results", default="results", help="results folder (default: ./results)")
        p.add_argument(
            "--tracking-uri",
            help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///RESULTS/mlflow.db)",
        )

    p = add(
        "run",
        "run jobs (method x dataset x seed under a protocol) and update the leaderboard",
        "gsr-bench run -m bicubic -m nearest --protocol smoke",
    )
    job_args(p, test=True)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: the protocol's policy)")
    p.add_argument(
        "--executor",
        default="local",
        choices=["local", "ray"],
        help="local: one job at a time here; ray: one Ray task per job (pip install gsr-bench[ray])",
    )
    p.add_argument("--ray-address", help="Ray cluster address (ray://host:10001, auto); default: a local Ray")
    p.add_argument("--force", action="store_true", help="rerun finished jobs")
    p.add_argument(
        "--ddp",
        action="store_true",
        help="train each job data-parallel over the processes torchrun starts "
        "(torchrun --nproc-per-node N -m gsr_bench run ... --ddp)",
    )
    p.add_argument(
        "--project-to-source",
        action="store_true",
        help="also report metrics after correcting predictions to match the source's block means",
    )
    p.add_argument("--leaderboard", default="leaderboard", help="leaderboard folder")
    p.add_argument(
        "--publish",
        action="store_true",
        help="write result records and the leaderboard under a protocol that does not publish "
        "(smoke, a protocol file of your own)",
    )
    p.add_argument("--no-leaderboard", action="store_true", help="write no records and no leaderboard")
    tracking_args(p)
    p.set_defaults(fn=cmd_run)

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

    p = add(
        "leaderboard",
        "regenerate the leaderboard from the result records under OUT/results/",
        "gsr-bench leaderboard --prune",
    )
    p.add_argument("--out", default="leaderboard")
    p.add_argument(
        "--check",
        action="store_true",
        help="validate the result records under OUT/results/ (schema, paths, duplicates, stale versions, "
        "code fingerprints) and exit",
    )
    p.add_argument("--prune", action="store_true", help="first remove the records a newer version superseded")
    tracking_args(p)
    p.set_defaults(fn=cmd_leaderboard)

    p = add(
        "score",
        "recompute finished jobs' metrics from their saved test predictions (a metric added or fixed)",
        "gsr-bench score -m msg -m bicubic --protocol quick",
    )
    job_args(p, test=True)
    p.add_argument("--dry-run", action="store_true", help="print the metrics, log nothing")
    p.add_argument("--leaderboard", default="leaderboard", help="whose result records to update")
    tracking_args(p)
    p.set_defaults(fn=cmd_score)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(_registered_commands(argv)).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.fn(args))
    except GsrBenchError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"gsr-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gsr-bench: interrupted", file=sys.stderr)
        return 130
    finally:
        release_compile_workers()


def _registered_commands(argv: Sequence[str] | None) -> list[Any]:
    """Plugins' ``data`` actions; plugins load only for ``data`` (other commands stay quick)."""
    words = sys.argv[1:] if argv is None else list(argv)
    if "data" not in words:
        return []
    from gsr_bench.plugins import get_plugin_manager

    return list(get_plugin_manager().commands)


def release_compile_workers() -> None:
    """Stop torch.compile's worker pools: left running, they kept a finished run from exiting."""
    module = sys.modules.get("torch._inductor.async_compile")
    shutdown = getattr(module, "shutdown_compile_workers", None)
    if shutdown is not None:
        shutdown()


if __name__ == "__main__":
    sys.exit(main())

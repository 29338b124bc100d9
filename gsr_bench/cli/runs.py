"""``gsr-bench run``, ``leaderboard`` and ``score``: jobs, their records and the leaderboard."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gsr_bench.cli._shared import Add, job_args, leaderboard_arg, open_tracker, planned_jobs, tracking_args
from gsr_bench.clitable import table
from gsr_bench.errors import GsrBenchError


def add_parsers(add: Add) -> None:
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
    leaderboard_arg(p, "the leaderboard folder its records and files go to (default ./leaderboard)")
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
        "leaderboard",
        "regenerate the leaderboard from the result records under DIR/results/",
        "gsr-bench leaderboard --prune",
    )
    p.add_argument(
        "--leaderboard",
        "--out",
        dest="leaderboard",
        default="leaderboard",
        metavar="DIR",
        help="the leaderboard folder: its records are read from DIR/results/ (default ./leaderboard)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="validate the result records under DIR/results/ (schema, paths, duplicates, stale "
        "versions, code fingerprints) and exit",
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
    leaderboard_arg(p, "whose result records to update (default ./leaderboard)")
    tracking_args(p)
    p.set_defaults(fn=cmd_score)


def cmd_run(args: argparse.Namespace) -> int:
    from gsr_bench.executors.local import Runner
    from gsr_bench.leaderboard import write_leaderboard
    from gsr_bench.plugins import get_plugin_manager
    from gsr_bench.records import RECORDS_DIR
    from gsr_bench.results_dir import exclusive

    pm = get_plugin_manager()
    for failure in pm.failures:
        print(f"warning: {failure}", file=sys.stderr)
    overrides = {"eval.project_to_source": True} if args.project_to_source else None
    jobs = planned_jobs(args, overrides, args.device)
    publish = not args.no_leaderboard and bool(jobs) and (args.publish or jobs[0].protocol.publish)
    if args.ddp:
        from gsr_bench import distributed
        from gsr_bench.executors.ddp import follow
        from gsr_bench.jobs import cache_dir

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
        tracker = open_tracker(args)
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
    print(table(rows, ["method", "dataset", "protocol", "seed", "status", "RMSE", "seconds", "error"]))
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
        return check_records(Path(args.leaderboard))
    from gsr_bench.plugins import get_plugin_manager

    pm = get_plugin_manager()
    if args.prune:
        from gsr_bench.record_checks import prune
        from gsr_bench.records import RECORDS_DIR

        removed = prune(Path(args.leaderboard) / RECORDS_DIR, pm)
        for path, why in removed:
            print(f"removed {path}: {why}")
        print(f"{len(removed)} superseded record(s) removed")
    written = write_leaderboard(args.leaderboard, pm, open_tracker(args))
    print(
        f"{len(written)} row(s) written to {args.leaderboard}/ (README.md, results.csv, index.html, figures/)"
    )
    return 0


def check_records(out: Path) -> int:
    """``leaderboard --check``: the records of a submission, before anything is written."""
    from gsr_bench import records
    from gsr_bench.plugins import get_plugin_manager
    from gsr_bench.record_checks import check

    folder = out / records.RECORDS_DIR
    count = sum(1 for _ in records.load(folder))
    problems = check(folder, get_plugin_manager())
    for p in problems:
        print(p)
    errors = [p for p in problems if p.severity == "error"]
    print(f"{count} record(s) in {folder}: {len(errors)} error(s), {len(problems) - len(errors)} warning(s)")
    return 1 if errors else 0


def cmd_score(args: argparse.Namespace) -> int:
    from gsr_bench.records import RECORDS_DIR
    from gsr_bench.score import score_jobs

    jobs = planned_jobs(args)
    records = Path(args.leaderboard) / RECORDS_DIR
    tracker = open_tracker(args)
    rows = score_jobs(tracker, jobs, Path(args.results), not args.dry_run, not args.quiet, records)
    print(table(rows, ["job", "metric", "logged", "from predictions", "difference"]))
    return 0

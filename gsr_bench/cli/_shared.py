"""What the command groups share: common flags, job selection, the results folder's tracker."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gsr_bench.errors import GsrBenchError

if TYPE_CHECKING:
    from gsr_bench.tracking import Tracker

DEFAULT_DATASET = "biomassters-synthetic"
DEFAULT_PROTOCOL = "quick"

Add = Callable[[str, str, str], argparse.ArgumentParser]


def formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def adder(sub: Any, common: argparse.ArgumentParser) -> Add:
    """A sub-command factory: every command gets the common flags, a description and an example."""

    def add(name: str, help: str, example: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            name,
            parents=[common],
            help=help,
            description=help,
            epilog=f"example:\n  {example}",
            formatter_class=formatter,
        )
        return parser

    return add


def common_flags(default: Any) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="show tracebacks and debug logs"
    )
    common.add_argument("-q", "--quiet", action="store_true", default=default, help="no progress bars")
    return common


def job_args(p: argparse.ArgumentParser, test: bool = False) -> None:
    """What names a set of jobs (:func:`planned_jobs`): methods, datasets, protocol, seeds, dataset
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


def tracking_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="results", help="results folder (default: ./results)")
    p.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///RESULTS/mlflow.db)",
    )


def leaderboard_arg(p: argparse.ArgumentParser, help: str) -> None:
    """``--leaderboard DIR``, one name in every command (``--out`` is kept for ``leaderboard``)."""
    p.add_argument("--leaderboard", default="leaderboard", metavar="DIR", help=help)


def failed(message: str) -> Callable[[argparse.Namespace], int]:
    def fn(args: argparse.Namespace) -> int:
        raise GsrBenchError(message)

    return fn


def open_tracker(args: argparse.Namespace) -> Tracker:
    from gsr_bench.tracking import Tracker

    return Tracker(Path(args.results), args.tracking_uri)


def planned_jobs(
    args: argparse.Namespace, overrides: dict[str, Any] | None = None, device: str | None = None
) -> list[Any]:
    """The jobs that ``-m``/``--all``, ``-d``, ``--protocol``, ``--seeds`` and the dataset flags
    name (run, estimate and score plan alike)."""
    from gsr_bench.planning import plan_jobs
    from gsr_bench.plugins import get_plugin_manager

    pm = get_plugin_manager()
    if not args.all and not args.method:
        raise GsrBenchError("name methods with -m NAME (see `gsr-bench list methods`) or use --all")
    methods = pm.methods.names() if args.all else args.method
    protocol = pm.load_protocol(args.protocol)
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

"""The ``gsr-bench`` command line: one module per command group, each adding its parsers.

Errors are one clear line on stderr (exit status 2); ``--verbose`` shows the traceback. Heavy
imports (torch, MLflow) happen inside the commands that need them, so ``list`` and ``--help`` are
quick and import no torch.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from gsr_bench import __version__
from gsr_bench.cli import data, listing, predict, runs, timing
from gsr_bench.cli._shared import adder, common_flags, formatter
from gsr_bench.errors import GsrBenchError


def build_parser(commands: Sequence[Any] | None = None) -> argparse.ArgumentParser:
    """The parser; ``commands`` are the ``data`` actions plugins registered (``CommandSpec``),
    by default those of the installed plugins."""
    if commands is None:
        from gsr_bench.plugins import get_plugin_manager

        commands = list(get_plugin_manager().commands)
    # `-v` and `-q` work before and after the command: a sub-command's copy has no default, so it
    # never resets what was given before the command (`gsr-bench -v run ...`)
    common = common_flags(argparse.SUPPRESS)
    parser = argparse.ArgumentParser(
        prog="gsr-bench",
        parents=[common_flags(False)],
        formatter_class=formatter,
        description="Benchmark guided super-resolution of biomass maps.",
        epilog="examples:\n  gsr-bench list methods\n  gsr-bench run --all\n"
        "  gsr-bench run -m bicubic -d biomassters --root ~/biomassters --protocol paper",
    )
    parser.add_argument("--version", action="version", version=f"gsr-bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = adder(sub, common)
    listing.add_parsers(add)
    data.add_parsers(add, common, commands)
    runs.add_parsers(add)
    timing.add_parsers(add)
    predict.add_parsers(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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


def release_compile_workers() -> None:
    """Stop torch.compile's worker pools: left running, they kept a finished run from exiting."""
    module = sys.modules.get("torch._inductor.async_compile")
    shutdown = getattr(module, "shutdown_compile_workers", None)
    if shutdown is not None:
        shutdown()

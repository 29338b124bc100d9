"""``gsr-bench data``: prepare a dataset's store, and the actions dataset plugins register."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gsr_bench.cli._shared import DEFAULT_DATASET, DEFAULT_PROTOCOL, Add, adder, dataset_args, failed
from gsr_bench.errors import GsrBenchError


def add_parsers(add: Add, common: argparse.ArgumentParser, commands: Sequence[Any]) -> None:
    """The ``data`` group: ``prepare`` and each plugin's ``CommandSpec``."""
    data = add(
        "data",
        "prepare a dataset's store, and the actions dataset plugins add",
        "gsr-bench data prepare -d biomassters --root ~/biomassters --protocol paper",
    )
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    dadd = adder(dsub, common)
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
    for spec in commands:
        p = dadd(spec.name, spec.help, spec.example)
        try:
            arguments(spec)(p)
        except GsrBenchError as exc:
            p.set_defaults(fn=failed(str(exc)))
            continue
        p.set_defaults(fn=_plugin_command(spec))


def arguments(spec: Any) -> Callable[[argparse.ArgumentParser], None]:
    from gsr_bench.registry import resolve_factory

    return resolve_factory(spec.arguments, f"command {spec.name!r} of plugin {spec.plugin!r}: ")


def cmd_data_prepare(args: argparse.Namespace) -> int:
    from gsr_bench.data import store
    from gsr_bench.data.prepare import prepare_split
    from gsr_bench.jobs import cache_dir
    from gsr_bench.planning import dataset_options
    from gsr_bench.plugins import get_plugin_manager

    pm = get_plugin_manager()
    protocol = pm.load_protocol(args.protocol)
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

"""Registers the built-in datasets through the ``gsr_bench`` entry-point group, as any plugin would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gsr_bench.api import CommandSpec, DatasetSpec, hookimpl

_COMMANDS = "gsr_bench_datasets.biomassters.commands"


@hookimpl
def gsr_bench_register_datasets(register: Callable[[Any], None]) -> None:
    register(
        DatasetSpec(
            name="biomassters",
            version="3",
            description="BioMassters (Finland, 10 m, LiDAR AGB labels) from a local download",
            factory="gsr_bench_datasets.biomassters.dataset:BioMassters",
        )
    )
    register(
        DatasetSpec(
            name="biomassters-synthetic",
            version="4",
            description="Seeded simulation of Finnish forest in the BioMassters layout (no download)",
            factory="gsr_bench_datasets.biomassters.synthetic:BioMasstersSynthetic",
        )
    )


@hookimpl
def gsr_bench_register_commands(register: Callable[[Any], None]) -> None:
    register(
        CommandSpec(
            name="synth",
            help="write synthetic BioMassters in the official layout",
            example="gsr-bench data synth --out synth/ --chips 40 --seed 0",
            arguments=f"{_COMMANDS}:synth_arguments",
            run=f"{_COMMANDS}:synth",
        )
    )
    register(
        CommandSpec(
            name="download",
            help="download the official BioMassters files from their public S3 buckets, verified",
            example="gsr-bench data download --root ~/biomassters --months leafon --chips 300",
            arguments=f"{_COMMANDS}:download_arguments",
            run=f"{_COMMANDS}:download",
        )
    )
    register(
        CommandSpec(
            name="check",
            help="validate a BioMassters folder against its metadata",
            example="gsr-bench data check --root ~/biomassters --stats",
            arguments=f"{_COMMANDS}:check_arguments",
            run=f"{_COMMANDS}:check",
        )
    )

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


# name, help, example; each action's arguments and run are ``commands.NAME_arguments`` and ``commands.NAME``
_ACTIONS = (
    (
        "synth",
        "write synthetic BioMassters in the official layout",
        "gsr-bench data synth --out synth/ --chips 40 --seed 0",
    ),
    (
        "download",
        "download the official BioMassters files from their public S3 buckets, verified",
        "gsr-bench data download --root ~/biomassters --months leafon --chips 300",
    ),
    (
        "composite",
        "composite a scene's monthly S1/S2 GeoTIFFs into a guide for gsr-bench predict, as the tiles were",
        "gsr-bench data composite scene_S1_*.tif scene_S2_*.tif --out guide.tif",
    ),
    (
        "check",
        "validate a BioMassters folder against its metadata",
        "gsr-bench data check --root ~/biomassters --stats",
    ),
)


@hookimpl
def gsr_bench_register_commands(register: Callable[[Any], None]) -> None:
    for name, help_text, example in _ACTIONS:
        register(
            CommandSpec(name, help_text, example, f"{_COMMANDS}:{name}_arguments", f"{_COMMANDS}:{name}")
        )

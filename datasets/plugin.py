"""Registers the built-in datasets through the ``gsr_bench`` entry-point group, as any plugin would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gsr_bench import DatasetSpec, hookimpl


@hookimpl
def gsr_bench_register_datasets(register: Callable[[Any], None]) -> None:
    register(
        DatasetSpec(
            name="biomassters",
            version="2",
            description="BioMassters (Finland, 10 m, LiDAR AGB labels) from a local download",
            factory="gsr_bench_datasets.biomassters:BioMassters",
        )
    )
    register(
        DatasetSpec(
            name="biomassters-synthetic",
            version="2",
            description="Seeded simulation of Finnish forest in the BioMassters layout (no download)",
            factory="gsr_bench_datasets.biomassters_synthetic:BioMasstersSynthetic",
        )
    )

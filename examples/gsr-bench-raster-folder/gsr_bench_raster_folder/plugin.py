"""Registers the dataset; keep this module free of heavy imports (it runs on `list`)."""

from collections.abc import Callable
from typing import Any

from gsr_bench.api import DatasetSpec, hookimpl


@hookimpl
def gsr_bench_register_datasets(register: Callable[[Any], None]) -> None:
    register(
        DatasetSpec(
            name="raster-folder",
            version="1",
            description="Paired guide and target rasters from a folder (--root), cut into tiles",
            factory="gsr_bench_raster_folder.dataset:RasterFolder",
        )
    )

"""Registers the dataset; keep this module free of heavy imports (it runs on `list`)."""

from collections.abc import Callable
from importlib.resources import files
from typing import Any

from gsr_bench.api import DatasetSpec, ProtocolSpec, hookimpl


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


@hookimpl
def gsr_bench_register_protocols(register: Callable[[Any], None]) -> None:
    # the built-in crops (250, 60) are not on an 8-pixel grid
    register(ProtocolSpec("smoke-x8", files(__package__) / "smoke-x8.toml"))

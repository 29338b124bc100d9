"""The plugin API: everything a method, dataset or metric plugin may use, from one module.

A plugin imports from here only (``from gsr_bench.api import TorchMethod, upsample``); the
modules behind these names may move between releases, these names stay. Names load on first
use, so that a plugin listing imports no torch.

Specs and hooks:
    ``MethodSpec``, ``DatasetSpec``, ``CommandSpec``, ``MetricSpec``, ``ProtocolSpec``,
    ``hookimpl``.
Contracts:
    ``Method``, ``TorchMethod``, ``TaskInfo`` (methods); ``GSRDataset``, ``Sample`` (datasets).
Losses for a method's own ``training_loss``:
    ``masked_mean``, ``masked_loss`` (the same under data-parallel training as in one process).
Tensor operations:
    ``upsample``, ``block_mean``, ``nan_block_mean``, ``project_to_source``, ``check_pair``.
Guide channel names:
    ``S1_BANDS``, ``S2_BANDS``, ``MASK_PREFIX``, ``SOURCE_MASK``, ``split_channel``,
    ``sensor_of``, ``periods``, ``rgb_indices``.
Reading and writing data:
    ``read_tiff``, ``write_tiff``, ``tiff_header``, ``posix_cksum``; ``fine_scale``,
    ``FineScale``, ``summarize_fine_scale``, ``MIN_VALID``; ``ordered_map``, ``default_workers``,
    ``Partial`` (parallel reading with a progress bar).
Errors and output:
    ``GsrBenchError``, ``DataError``, ``check_room``; ``table`` (a plain-text table).
Tests of interruption:
    ``kill_point`` (``GSR_BENCH_KILL_AT=STAGE:N`` kills the process at a stage's N-th unit).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the names are, for type checkers and import analysis
    from gsr_bench.channels import (
        MASK_PREFIX,
        S1_BANDS,
        S2_BANDS,
        SOURCE_MASK,
        periods,
        rgb_indices,
        sensor_of,
        split_channel,
    )
    from gsr_bench.clitable import table
    from gsr_bench.data.finescale import MIN_VALID, FineScale, fine_scale
    from gsr_bench.data.finescale import summarize as summarize_fine_scale
    from gsr_bench.data.tiff import posix_cksum, read_tiff, tiff_header, write_tiff
    from gsr_bench.dataset import GSRDataset, Sample
    from gsr_bench.errors import DataError, GsrBenchError, check_room
    from gsr_bench.faults import kill_point
    from gsr_bench.hookspecs import hookimpl
    from gsr_bench.losses import masked_loss, masked_mean
    from gsr_bench.method import Method, TaskInfo, TorchMethod
    from gsr_bench.ops import block_mean, check_pair, nan_block_mean, project_to_source, upsample
    from gsr_bench.parallel import Partial, default_workers, ordered_map
    from gsr_bench.registry import CommandSpec, DatasetSpec, MethodSpec, MetricSpec, ProtocolSpec

# name -> (module, attribute)
_WHERE: dict[str, tuple[str, str]] = {
    **{
        n: ("gsr_bench.registry", n)
        for n in ("MethodSpec", "DatasetSpec", "CommandSpec", "MetricSpec", "ProtocolSpec")
    },
    "hookimpl": ("gsr_bench.hookspecs", "hookimpl"),
    **{n: ("gsr_bench.method", n) for n in ("Method", "TorchMethod", "TaskInfo")},
    **{n: ("gsr_bench.dataset", n) for n in ("GSRDataset", "Sample")},
    **{n: ("gsr_bench.losses", n) for n in ("masked_mean", "masked_loss")},
    **{
        n: ("gsr_bench.ops", n)
        for n in ("upsample", "block_mean", "nan_block_mean", "project_to_source", "check_pair")
    },
    **{
        n: ("gsr_bench.channels", n)
        for n in (
            "S1_BANDS",
            "S2_BANDS",
            "MASK_PREFIX",
            "SOURCE_MASK",
            "split_channel",
            "sensor_of",
            "periods",
            "rgb_indices",
        )
    },
    **{n: ("gsr_bench.data.tiff", n) for n in ("read_tiff", "write_tiff", "tiff_header", "posix_cksum")},
    **{n: ("gsr_bench.data.finescale", n) for n in ("fine_scale", "FineScale", "MIN_VALID")},
    "summarize_fine_scale": ("gsr_bench.data.finescale", "summarize"),
    **{n: ("gsr_bench.parallel", n) for n in ("ordered_map", "default_workers", "Partial")},
    **{n: ("gsr_bench.errors", n) for n in ("GsrBenchError", "DataError", "check_room")},
    "table": ("gsr_bench.clitable", "table"),
    "kill_point": ("gsr_bench.faults", "kill_point"),
}

__all__ = [
    "MASK_PREFIX",
    "MIN_VALID",
    "S1_BANDS",
    "S2_BANDS",
    "SOURCE_MASK",
    "CommandSpec",
    "DataError",
    "DatasetSpec",
    "FineScale",
    "GSRDataset",
    "GsrBenchError",
    "Method",
    "MethodSpec",
    "MetricSpec",
    "Partial",
    "ProtocolSpec",
    "Sample",
    "TaskInfo",
    "TorchMethod",
    "block_mean",
    "check_pair",
    "check_room",
    "default_workers",
    "fine_scale",
    "hookimpl",
    "kill_point",
    "masked_loss",
    "masked_mean",
    "nan_block_mean",
    "ordered_map",
    "periods",
    "posix_cksum",
    "project_to_source",
    "read_tiff",
    "rgb_indices",
    "sensor_of",
    "split_channel",
    "summarize_fine_scale",
    "table",
    "tiff_header",
    "upsample",
    "write_tiff",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'gsr_bench.api' has no attribute {name!r}")
    module, attribute = _WHERE[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # once loaded, a plain module attribute
    return value


def __dir__() -> list[str]:
    return __all__

"""gsr-bench: a plugin-style benchmark suite for guided super-resolution of biomass maps."""

from gsr_bench.hookspecs import hookimpl
from gsr_bench.registry import DatasetSpec, MethodSpec, MetricSpec

__version__ = "0.1.0"

__all__ = ["DatasetSpec", "MethodSpec", "MetricSpec", "__version__", "hookimpl"]

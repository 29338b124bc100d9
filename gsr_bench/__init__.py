"""gsr-bench: a plugin-style benchmark suite for guided super-resolution of biomass maps."""

import os

# Nothing contacts the internet at run time: MLflow's usage telemetry is off in every process
# that imports the suite (the CLI, Ray workers, DDP ranks, and what they start), unless a user
# asks for it explicitly.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from gsr_bench.hookspecs import hookimpl
from gsr_bench.registry import CommandSpec, DatasetSpec, MethodSpec, MetricSpec

__version__ = "0.1.0"

__all__ = ["CommandSpec", "DatasetSpec", "MethodSpec", "MetricSpec", "__version__", "hookimpl"]

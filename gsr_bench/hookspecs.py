"""The hooks a gsr-bench plugin may implement.

A plugin is any module listed under the ``gsr_bench`` entry-point group. Each hook receives a
``register`` callback, so that one plugin can contribute several items and the core can attribute
every item (and every failure) to the plugin that registered it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("gsr_bench")
hookimpl = pluggy.HookimplMarker("gsr_bench")


@hookspec
def gsr_bench_register_methods(register: Callable[..., Any]) -> None:
    """Register method specs: ``register(MethodSpec(...))``."""


@hookspec
def gsr_bench_register_datasets(register: Callable[..., Any]) -> None:
    """Register dataset specs: ``register(DatasetSpec(...))``."""


@hookspec
def gsr_bench_register_metrics(register: Callable[..., Any]) -> None:
    """Register extra metrics: ``register(MetricSpec(...))``."""


@hookspec
def gsr_bench_register_commands(register: Callable[..., Any]) -> None:
    """Register ``gsr-bench data`` actions: ``register(CommandSpec(...))``."""


@hookspec
def gsr_bench_register_protocols(register: Callable[..., Any]) -> None:
    """Register protocol files: ``register(ProtocolSpec(NAME, PATH))``."""

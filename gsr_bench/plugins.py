"""Discovery of plugins through the ``gsr_bench`` entry-point group.

Every entry point is loaded on its own and every hook implementation is called on its own: a
plugin that fails to import, raises in a hook or registers a name that is taken is recorded as a
failure (plugin, distribution, error) and everything else still loads.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from gsr_bench import hookspecs
from gsr_bench.registry import (
    CommandSpec,
    DatasetSpec,
    DuplicateNameError,
    MethodSpec,
    MetricSpec,
    ProtocolSpec,
    Registry,
)

if TYPE_CHECKING:
    from pathlib import Path

    from gsr_bench.protocol import Protocol

ENTRY_POINT_GROUP = "gsr_bench"
PLUGINS_ENV = "GSR_BENCH_PLUGINS"
BUILTIN_DISTRIBUTION = "gsr-bench"

_HOOKS: dict[str, tuple[str, type[Any]]] = {
    "methods": ("gsr_bench_register_methods", MethodSpec),
    "datasets": ("gsr_bench_register_datasets", DatasetSpec),
    "metrics": ("gsr_bench_register_metrics", MetricSpec),
    "commands": ("gsr_bench_register_commands", CommandSpec),
    "protocols": ("gsr_bench_register_protocols", ProtocolSpec),
}


@dataclass
class PluginInfo:
    name: str
    distribution: str
    version: str
    module: str
    registered: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class PluginFailure:
    plugin: str
    distribution: str
    stage: str
    error: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} ({self.distribution}) failed at {self.stage}: {self.error}"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class PluginManager:
    """Loads plugins and fills the method, dataset, metric, command and protocol registries."""

    def __init__(self, load_entrypoints: bool = True) -> None:
        self.pm = pluggy.PluginManager("gsr_bench")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.failures: list[PluginFailure] = []
        self.methods: Registry[MethodSpec] = Registry("method")
        self.datasets: Registry[DatasetSpec] = Registry("dataset")
        self.metrics: Registry[MetricSpec] = Registry("metric")
        self.commands: Registry[CommandSpec] = Registry("command")
        self.protocols: Registry[ProtocolSpec] = Registry("protocol")
        if load_entrypoints:
            for ep in self._selected_entry_points():
                self._load_entry_point(ep)

    @staticmethod
    def _selected_entry_points() -> list[EntryPoint]:
        # built-ins first: their names are taken before any outside plugin's, whatever it is called
        eps = sorted(
            entry_points(group=ENTRY_POINT_GROUP),
            key=lambda e: (not (e.dist is not None and e.dist.name == BUILTIN_DISTRIBUTION), e.name),
        )
        only = os.environ.get(PLUGINS_ENV, "").strip()
        if only:
            wanted = {n.strip() for n in only.split(",") if n.strip()}
            eps = [e for e in eps if e.name in wanted]
        return eps

    def _load_entry_point(self, ep: EntryPoint) -> None:
        dist = ep.dist.name if ep.dist else "unknown"
        version = ep.dist.version if ep.dist else ""
        if ep.name in self.plugins:
            self.failures.append(
                PluginFailure(ep.name, dist, "load", "a plugin of this name is already loaded")
            )
            return
        try:
            module = ep.load()
        except Exception as exc:
            self.failures.append(
                PluginFailure(ep.name, dist, "import", _describe(exc), traceback.format_exc())
            )
            return
        self.register(module, ep.name, dist, version)

    def register(
        self, plugin: ModuleType | object, name: str, distribution: str = "", version: str = ""
    ) -> None:
        """Register a plugin object (an imported module or any object with hookimpls)."""
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            self.failures.append(PluginFailure(name, distribution, "register", _describe(exc)))
            return
        info = PluginInfo(name, distribution, version, getattr(plugin, "__name__", repr(plugin)))
        self.plugins[name] = info
        for kind, (hook_name, spec_type) in _HOOKS.items():
            hook = getattr(self.pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                if impl.plugin_name == name:
                    self._call(impl.function, kind, spec_type, info)

    def _call(self, function: Callable[..., Any], kind: str, spec_type: type[Any], info: PluginInfo) -> None:
        registry: Registry[Any] = getattr(self, kind)

        def register(spec: Any) -> None:
            if not isinstance(spec, spec_type):
                raise TypeError(f"register() takes a {spec_type.__name__}, got {type(spec).__name__}")
            try:
                if kind == "protocols":
                    _check_protocol_name(spec.name)
                registry.add(spec, info.name, info.distribution)
            except Exception as exc:  # one bad item must not hide the plugin's others
                self.failures.append(
                    PluginFailure(info.name, info.distribution, f"register {spec.name!r}", str(exc))
                )
                return
            info.registered.setdefault(kind, []).append(spec.name)

        try:
            function(register=register)
        except Exception as exc:
            self.failures.append(
                PluginFailure(
                    info.name,
                    info.distribution,
                    f"hook {function.__name__}",
                    _describe(exc),
                    traceback.format_exc(),
                )
            )

    def load_protocol(self, name_or_path: str | Path) -> Protocol:
        """A protocol by name (built-in or registered by a plugin) or a TOML file by path."""
        from gsr_bench.protocol import load_protocol

        return load_protocol(name_or_path, {s.name: s.path for s in self.protocols})

    def list_protocols(self) -> list[Protocol]:
        """The built-in protocols and the plugins', by name; a plugin's protocol that does not
        load is left out and recorded as that plugin's failure."""
        from gsr_bench.errors import GsrBenchError
        from gsr_bench.protocol import list_protocols

        out = list_protocols()
        for spec in self.protocols:
            try:
                out.append(self.load_protocol(spec.name))
            except GsrBenchError as exc:
                failure = PluginFailure(spec.plugin, spec.distribution, f"protocol {spec.name!r}", str(exc))
                if str(failure) not in map(str, self.failures):
                    self.failures.append(failure)
        return sorted(out, key=lambda p: p.name)


def _check_protocol_name(name: str) -> None:
    from gsr_bench.protocol import builtin_names

    if name in builtin_names():
        raise DuplicateNameError(f"protocol {name!r} is a built-in protocol")


_manager: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, created on first use."""
    global _manager
    if _manager is None:
        _manager = PluginManager()
    return _manager


def reset_plugin_manager(manager: PluginManager | None = None) -> PluginManager:
    """Replace the process-wide manager (tests; a fresh scan after installing a plugin)."""
    global _manager
    _manager = manager if manager is not None else PluginManager()
    return _manager

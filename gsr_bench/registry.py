"""Specs of what plugins register, and lazy registries of them.

A spec is cheap metadata plus a factory given as ``"module:attr"``: listing names never imports
torch or a model file; the factory is imported only when an item is created.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Literal, Protocol, TypeVar

from gsr_bench.errors import GsrBenchError, UnknownNameError

Family = Literal["gsr", "sr", "regression"]
FAMILIES: tuple[str, ...] = ("gsr", "sr", "regression")


def resolve_factory(factory: str | Callable[..., Any], owner: str = "") -> Callable[..., Any]:
    """Import a ``"package.module:attr"`` factory, or return a callable as is.

    Raises:
        GsrBenchError: one line naming ``owner`` and the factory when it cannot be imported.
    """
    if callable(factory):
        return factory
    module_name, _, attr = factory.partition(":")
    if not attr:
        raise GsrBenchError(f"{owner}factory {factory!r} must look like 'package.module:attribute'")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise GsrBenchError(
            f"{owner}factory {factory!r} cannot be imported ({type(exc).__name__}: {exc})"
        ) from None
    return obj


def check_factory(kind: str, spec: Any) -> Callable[..., Any]:
    """Import a registered spec's factory; a failure is one line naming the spec and its plugin."""
    return resolve_factory(spec.factory, f"{kind} {spec.name!r} of plugin {spec.plugin or '?'!r}: ")


@dataclass(frozen=True)
class MethodSpec:
    """A method as a plugin registers it.

    Attributes:
        name: registry name, lowercase with dashes (``"bicubic"``).
        family: ``"gsr"`` (guide + source), ``"sr"`` (source only) or ``"regression"`` (guide only).
        version: bump it whenever results would change: it is part of every job key.
        description: one line shown by ``gsr-bench list methods``.
        factory: ``"module:attr"`` or a callable ``factory(task, **options) -> Method``.
        paper: reference of the method's paper.
        options: default keyword options passed to the factory (recorded with each run).
        overrides: protocol overrides the method declares, dotted keys (``{"train.lr": 1e-4}``).
        seeded: False for a method whose output no seed can change (interpolation, a fixed
            filter): it runs once, under the protocol's first seed, instead of once per seed.
        temporal: True for a method that reads a time series of guide images (channels named
            ``BAND@PERIOD`` for several periods): it runs on the dataset's time-series guide
            (:attr:`~gsr_bench.dataset.GSRDataset.time_series`) when the configured one has a
            single period.
    """

    name: str
    family: str
    version: str
    description: str
    factory: str | Callable[..., Any]
    paper: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    seeded: bool = True
    temporal: bool = False
    plugin: str = ""
    distribution: str = ""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise GsrBenchError(
                f"method {self.name!r}: family {self.family!r} is not one of {', '.join(FAMILIES)}"
            )

    def create(self, task: Any, **options: Any) -> Any:
        merged = {**self.options, **options}
        method = resolve_factory(self.factory)(task, **merged)
        method.spec = self
        method.options = merged
        return method


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset adapter as a plugin registers it.

    Attributes:
        name: registry name (``"biomassters"``).
        version: bump it when the prepared data would change: it is part of every job key.
        description: one line shown by ``gsr-bench list datasets``.
        factory: ``"module:attr"`` or a callable ``factory(**options)`` returning a
            :class:`~gsr_bench.dataset.GSRDataset`; the options come from the protocol's
            ``[datasets.NAME]`` table and the command line.
        options: default keyword options of the factory.
    """

    name: str
    version: str
    description: str
    factory: str | Callable[..., Any]
    options: Mapping[str, Any] = field(default_factory=dict)
    plugin: str = ""
    distribution: str = ""
    family: str = "dataset"

    def create(self, **options: Any) -> Any:
        adapter = resolve_factory(self.factory)(**{**self.options, **options})
        adapter.spec = self
        return adapter


METRIC_AGGREGATIONS = ("mean", "median", "min", "max")  # gsr_bench.metrics.AGGREGATIONS


@dataclass(frozen=True)
class MetricSpec:
    """An extra metric, computed per tile and aggregated over the tiles with a valid pixel.

    Attributes:
        name: the metric's key in MLflow, the records and the leaderboard's columns.
        fn: ``fn(pred, target, valid) -> float`` on one tile (``[1, H, W]`` float64 tensors in
            the dataset's units and a bool mask), or ``"module:attr"`` naming it.
        higher_is_better: the leaderboard's arrow (None: neither, like a bias).
        aggregate: how tiles combine: ``mean``, ``median``, ``min`` or ``max``.
        version: recorded with every value (``metric_version_NAME``); bump it when ``fn``'s
            results change, then ``gsr-bench score`` recomputes the stored results.
    """

    name: str
    fn: str | Callable[..., Any]
    higher_is_better: bool | None
    description: str = ""
    version: str = "1"
    aggregate: str = "mean"
    unit: str = ""
    label: str = ""
    plugin: str = ""
    distribution: str = ""
    family: str = "metric"

    def __post_init__(self) -> None:
        if self.aggregate not in METRIC_AGGREGATIONS:
            raise GsrBenchError(
                f"metric {self.name!r}: aggregate {self.aggregate!r} is not one of "
                f"{', '.join(METRIC_AGGREGATIONS)}"
            )


@dataclass(frozen=True)
class CommandSpec:
    """A ``gsr-bench data NAME`` action a dataset plugin adds (``synth``, ``check``).

    Attributes:
        name: the action's name, unique across plugins.
        help: one line shown by ``gsr-bench data --help``.
        example: one command line shown under the action's help.
        arguments: ``"module:attr"`` or a callable ``arguments(parser)`` adding its arguments.
        run: ``"module:attr"`` or a callable ``run(args) -> int`` (the exit status); raise
            :class:`~gsr_bench.errors.GsrBenchError` for a one-line error.
    """

    name: str
    help: str
    example: str
    arguments: str | Callable[..., Any]
    run: str | Callable[..., Any]
    plugin: str = ""
    distribution: str = ""
    family: str = "command"


@dataclass(frozen=True)
class ProtocolSpec:
    """A protocol file a plugin ships, run by its name like a built-in one (``--protocol NAME``).

    Attributes:
        name: the protocol's name: the ``name`` in its file, unique across plugins and the
            built-in protocols.
        path: the TOML file, a ``Path`` or an ``importlib.resources`` file of the plugin's
            package (``files(__package__) / "smoke-x8.toml"``), so that it works from a wheel.
    """

    name: str
    path: Any
    plugin: str = ""
    distribution: str = ""
    family: str = "protocol"


class _Spec(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def plugin(self) -> str: ...
    @property
    def distribution(self) -> str: ...


S = TypeVar("S", bound=_Spec)


class DuplicateNameError(GsrBenchError):
    pass


class Registry(Generic[S]):
    """Names to specs, with filtering and "did you mean" on a miss."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, S] = {}

    def add(self, spec: S, plugin: str = "", distribution: str = "") -> S:
        if not isinstance(spec.name, str) or not spec.name:
            raise GsrBenchError(f"a {self.kind} needs a non-empty name, got {spec.name!r}")
        if spec.name in self._items:
            other = self._items[spec.name]
            raise DuplicateNameError(
                f"{self.kind} {spec.name!r} is already registered by plugin "
                f"{other.plugin!r} ({other.distribution or 'unknown distribution'})"
            )
        spec = replace(spec, plugin=plugin, distribution=distribution)  # type: ignore[type-var]
        self._items[spec.name] = spec
        return spec

    def get(self, name: str) -> S:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._items) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[S]:
        return iter(sorted(self._items.values(), key=lambda s: s.name))

    def __len__(self) -> int:
        return len(self._items)

    def names(self, pattern: str | None = None, family: str | None = None) -> list[str]:
        """Sorted names, filtered by a shell-style ``pattern`` and a ``family``."""
        out = []
        for spec in self:
            if pattern and not fnmatch.fnmatch(spec.name, pattern):
                continue
            if family and getattr(spec, "family", None) != family:
                continue
            out.append(spec.name)
        return out

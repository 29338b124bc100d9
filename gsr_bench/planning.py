"""Planning: jobs from names, with every option, size and plugin checked before any work.

Bad input fails here, in one line: an unknown name (with the closest), an option of the wrong
type or name, a crop that is not on the source grid, a dataset option that holds a path.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gsr_bench.errors import GsrBenchError
from gsr_bench.jobs import Job, TestOn
from gsr_bench.plugins import PluginManager
from gsr_bench.protocol import Protocol
from gsr_bench.registry import DatasetSpec, MethodSpec, check_factory

log = logging.getLogger(__name__)


def select_device(requested: str | None, policy: str) -> Any:
    import torch

    choice = requested or policy
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise GsrBenchError(f"device {choice!r} requested but CUDA is not available here; use --device cpu")
    return torch.device(choice)


def parse_option(pair: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as TOML where it parses (``3``, ``true``, ``[1, 2]``)."""
    import tomllib

    key, sep, text = pair.partition("=")
    if not sep or not key.strip():
        raise GsrBenchError(f"dataset option {pair!r} must look like KEY=VALUE")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    return key.strip(), value


def dataset_options(
    spec: DatasetSpec,
    protocol: Protocol,
    root: str | None = None,
    pairs: Sequence[str] | None = None,
    strict: bool = True,
) -> dict[str, Any]:
    """The factory keywords of ``spec``: the protocol's ``[datasets.NAME]``, then the command
    line's ``-O KEY=VALUE``, and ``--root`` for a dataset whose factory takes a ``root``.
    ``strict=False`` drops command-line options the factory does not take (a train and a test
    dataset share the command line)."""
    import inspect

    options = dict(protocol.datasets.get(spec.name, {}))
    given = dict(parse_option(p) for p in pairs or [])
    params = _factory_params(spec)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if not strict:
        given = {k: v for k, v in given.items() if k in params or takes_any}
    options.update(given)
    if root and "root" in params:
        options["root"] = root
    elif root and strict and not takes_any:
        raise GsrBenchError(
            f"dataset {spec.name!r} reads no folder: --root is for datasets read from one "
            "(biomassters); drop it"
        )
    unknown = [k for k in options if params and k not in params and not takes_any]
    if unknown:
        allowed = ", ".join(n for n in params if n != "self") or "none"
        raise GsrBenchError(
            f"dataset {spec.name!r} has no option {', '.join(map(repr, unknown))} (its options: {allowed})"
        )
    for key, value in options.items():
        _check_option_type(f"dataset {spec.name!r}", key, value, params.get(key))
    return options


def _check_option_type(owner: str, key: str, value: Any, param: Any) -> None:
    """A value of another type than the parameter's default (``-O tile=abc`` for an int), in
    one line naming the option and the type it takes."""
    import inspect

    default = getattr(param, "default", inspect.Parameter.empty)
    if default is inspect.Parameter.empty or default is None:
        return
    kind = type(default)
    fits = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        fits = True
    if not fits and kind in (bool, int, float, str):
        raise GsrBenchError(
            f"{owner} option {key!r} takes {kind.__name__} (default {default!r}), got {value!r}"
        )


def _check_sizes(dataset: Any, protocol: Protocol, method: str) -> None:
    """Crops and patches on the source grid, or one line naming the values (never a reshape
    error deep inside a method)."""
    scale, crop, patch = dataset.scale, protocol.task.crop, protocol.train.patch_size
    for key, value in (("task.crop", crop), ("train.patch_size", patch)):
        if value % scale:
            lower, upper = value - value % scale, value - value % scale + scale
            raise GsrBenchError(
                f"protocol {protocol.name!r}: {key} {value} is not a multiple of the scale {scale} of "
                f"dataset {dataset.name!r} (for method {method!r}); use {lower or upper} or {upper} "
                "in a protocol file (--protocol FILE.toml)"
            )


def time_series_options(dataset: Any, options: Mapping[str, Any]) -> dict[str, Any] | None:
    """The options a temporal method runs ``dataset`` with: the given ones when its guide already
    has several periods, else with the dataset's :attr:`~gsr_bench.dataset.GSRDataset.time_series`
    options; ``None`` when it has no time series."""
    from gsr_bench.channels import periods

    if len(periods(dataset.guide_channels)) > 1:
        return dict(options)
    if not dataset.time_series:
        return None
    return {**options, **dataset.time_series}


def plan_jobs(
    manager: PluginManager,
    methods: Sequence[str],
    datasets: Sequence[str],
    protocol: Protocol,
    seeds: Sequence[int] | None = None,
    root: str | None = None,
    option_pairs: Sequence[str] | None = None,
    test_dataset: str | None = None,
    test_split: str = "test",
    skip_unfit: bool = False,
    device: str | None = None,
) -> list[Job]:
    """Every (method, dataset, seed) under ``protocol``; unknown names, broken factories and
    sizes that do not fit a dataset's scale fail before anything runs. With ``test_dataset``,
    each job trains on its dataset and is evaluated on ``test_split`` of ``test_dataset``.

    A temporal method runs on the dataset's time-series guide; on a dataset without one it is an
    error, or skipped with a warning when ``skip_unfit`` (``--all``). ``device`` (default: each
    protocol's policy) decides which numerics flags take effect, which the keys hash."""
    from gsr_bench.fingerprint import code_fingerprint

    method_specs = [manager.methods.get(m) for m in methods]
    dataset_specs = [manager.datasets.get(d) for d in datasets]
    for spec in method_specs:  # a typo in a plugin fails here, in one line
        check_factory("method", spec)
    t_spec = manager.datasets.get(test_dataset) if test_dataset is not None else None
    t_base = dataset_options(t_spec, protocol, root, option_pairs) if t_spec else {}
    made: dict[str, Any] = {}

    def create(spec: DatasetSpec, options: dict[str, Any]) -> Any:
        key = json.dumps([spec.name, options], sort_keys=True, default=str)
        if key not in made:
            made[key] = spec.create(**options)
        return made[key]

    def variant(spec: DatasetSpec, options: dict[str, Any], temporal: bool) -> tuple[Any, ...] | None:
        """(options, dataset, its description) as a method of this kind runs it."""
        dataset = create(spec, options)
        if temporal:
            ts = time_series_options(dataset, options)
            if ts is None:
                return None
            options, dataset = ts, create(spec, ts)
        described = dataset.describe()
        _check_no_paths(spec, described)
        table = protocol.datasets.get(spec.name, {})
        described["variant"] = _variant(spec, dataset, described["options"], table)
        return options, dataset, described

    jobs = []
    for d in dataset_specs:
        base = dataset_options(d, protocol, root, option_pairs, strict=t_spec is None)
        for m in method_specs:
            found = variant(d, base, m.temporal)
            t_found = variant(t_spec, t_base, m.temporal) if t_spec else None
            if found is None or (t_spec and t_found is None):
                name = d.name if found is None else t_spec.name  # type: ignore[union-attr]
                message = (
                    f"method {m.name!r} reads a time series of guide images; dataset {name!r} has one "
                    "guide image and declares no time series (GSRDataset.time_series)"
                )
                if not skip_unfit:
                    raise GsrBenchError(message)
                log.warning("skipped: %s", message)
                continue
            options, dataset, described = found
            test = TestOn(t_spec, test_split, t_found[0], t_found[2]) if t_spec and t_found else None
            proto = protocol.for_method(m.name, m.overrides)
            _check_sizes(dataset, proto, m.name)
            chosen = list(seeds if seeds is not None else proto.seeds)
            numerics = proto.device.applied(select_device(device, proto.device.policy).type)
            code = code_fingerprint(m.factory)
            method_options = dict(proto.methods.get(m.name, {}))
            _check_method_options(m, method_options, proto.name)
            for seed in chosen if m.seeded else chosen[:1]:
                jobs.append(
                    Job(m, d, proto, int(seed), method_options, options, described, test, numerics, code)
                )
    return jobs


def _check_method_options(spec: MethodSpec, options: Mapping[str, Any], protocol: str) -> None:
    """The protocol's ``[methods.NAME]`` table against the factory's keywords, before any job
    runs: a misspelt option is one line with the closest names, not a TypeError mid-run."""
    import difflib
    import inspect

    try:
        params = dict(inspect.signature(check_factory("method", spec)).parameters)
    except (TypeError, ValueError):
        return
    params.pop("task", None)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    for key, value in options.items():
        if key not in params:
            close = difflib.get_close_matches(key, list(params), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(params) or "none"
            raise GsrBenchError(
                f"protocol {protocol!r} [methods.{spec.name}]: method {spec.name!r} has no option "
                f"{key!r}{hint} (its options: {known})"
            )
        _check_option_type(f"method {spec.name!r}", key, value, params[key])


def _factory_params(spec: DatasetSpec) -> Mapping[str, Any]:
    """The keyword parameters of a dataset's factory (none known for an opaque callable)."""
    import inspect

    try:
        return inspect.signature(check_factory("dataset", spec)).parameters
    except (TypeError, ValueError):
        return {}


def _variant(
    spec: DatasetSpec, dataset: Any, options: Mapping[str, Any], table: Mapping[str, Any]
) -> dict[str, Any]:
    """The options that differ from the dataset's defaults under the protocol (``-O
    test_cols=5``): a leaderboard section is labelled by them. The time-series options are left
    to the guide's label (``monthly composite``)."""
    import inspect

    params = _factory_params(spec)
    defaults = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    defaults.update(spec.options)
    defaults.update(table)
    series = set(dataset.time_series or {})
    return {k: v for k, v in sorted(options.items()) if k not in series and defaults.get(k, v) != v}


def _check_no_paths(spec: DatasetSpec, described: Mapping[str, Any]) -> None:
    """A key names what the data is, never where it sits: the same job on two machines must
    have one key. A dataset whose options hold a path is a plugin bug, said in one line."""
    for key, value in dict(described.get("options", {})).items():
        text = str(value)
        if isinstance(value, str | Path) and (os.path.isabs(text) or text.startswith("~")):
            raise GsrBenchError(
                f"dataset {spec.name!r} of plugin {spec.plugin or '?'!r} reports option {key!r} = "
                f"{text!r}, a path: GSRDataset.options() must name what the data is (its "
                "content_revision() says which files), never where it sits"
            )

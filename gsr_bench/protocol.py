"""Versioned evaluation protocols, frozen in TOML files shipped with the package.

A protocol fixes everything that makes two numbers comparable: the crop and source degradation,
the training budget, the evaluation and the seeds. What belongs to a dataset (its scale, units,
bins, guide composite) is the dataset's: a protocol may only set a dataset's options, in its
``[datasets.NAME]`` table. Unknown keys are errors (a typo must never silently fall back to a
default).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gsr_bench.errors import ProtocolError, UnknownNameError

GUIDE_DTYPES = ("float16", "float32")  # how a prepared store keeps the guide
TIERS = ("auto", "device", "pinned", "stream")  # where the batch samplers keep the train tiles


@dataclass(frozen=True)
class Degradation:
    """How the coarse source is made from the target beyond the exact block mean."""

    blur_sigma: float = 0.0  # Gaussian blur (in 10 m pixels) before block averaging
    noise: float = 0.0  # multiplicative Gaussian noise (relative std) per source cell
    bias: float = 0.0  # multiplicative bias (0.1 = +10 %)


@dataclass(frozen=True)
class Task:
    crop: int = 250  # a multiple of the dataset's scale, checked when jobs are planned
    degradation: Degradation = field(default_factory=Degradation)


@dataclass(frozen=True)
class Data:
    max_train_tiles: int = 0  # 0: all
    max_val_tiles: int = 0
    max_test_tiles: int = 0
    guide_dtype: str = "float16"  # how the prepared store keeps the guide (float16 or float32)


@dataclass(frozen=True)
class Loader:
    """How training batches reach the device (``gsr_bench.data.samplers``).

    Every tier serves the same batches for a seed, so these keys are recorded with a run but not
    hashed into its job key: switching tiers never reruns a finished job.
    """

    tier: str = "auto"  # auto | device | pinned | stream
    memory_fraction: float = 0.5  # share of the device's free memory the train split may take
    workers: int = 2  # stream tier: reader processes
    prefetch: int = 4  # batches prepared ahead (pinned and stream tiers)


@dataclass(frozen=True)
class Train:
    steps: int = 300
    batch_size: int = 16
    patch_size: int = 60  # a multiple of the dataset's scale: patches stay on the source grid
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_steps: int = 0
    loss: str = "l1"
    val_every: int = 100
    checkpoint_every: int = 100
    augment: bool = True
    # Whether methods may replace parts of this recipe with their paper's (MethodSpec.overrides).
    # Off for small budgets, where one shared recipe is the fair comparison.
    method_overrides: bool = True
    per_image_iterations: int = 1000  # methods fitted to each test tile alone (P2P)
    log_every: int = 50  # steps between reads of the loss on the host (the only per-step sync)


@dataclass(frozen=True)
class Eval:
    batch_size: int = 8
    figure_tiles: int = 2
    warmup_batches: int = 1
    project_to_source: bool = False
    # every test prediction as a float16 artifact (``gsr-bench score`` recomputes metrics from it):
    # 3 MB a job for quick, about 350 MB for paper's 2,773 test tiles
    save_predictions: bool = True


@dataclass(frozen=True)
class Device:
    policy: str = "auto"  # auto: CUDA when present, else CPU
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False
    # deterministic algorithms (torch.use_deterministic_algorithms, cuDNN without autotuning):
    # the same seed gives the same numbers on a GPU too, at some cost in speed; a CPU's are anyway
    deterministic: bool = True

    def applied(self, device_type: str) -> dict[str, bool]:
        """The flags that change the numbers on a device of ``device_type``, which a job's key
        hashes as its numerics: channels_last anywhere; bf16 autocast, torch.compile and
        deterministic algorithms on CUDA only (a CPU's kernels are deterministic either way)."""
        cuda = device_type == "cuda"
        flags = {
            "bf16": bool(cuda and self.bf16),
            "channels_last": bool(self.channels_last),
            "compile": bool(cuda and self.compile),
        }
        if cuda:  # absent on a CPU, where it changes nothing: CPU keys stay as they were
            flags["deterministic"] = bool(self.deterministic)
        return flags


@dataclass(frozen=True)
class Protocol:
    name: str
    version: str
    description: str = ""
    # whether runs under it write result records into leaderboard/ (quick and paper do); a
    # protocol file given by path never does unless the run says --publish
    publish: bool = False
    seeds: list[int] = field(default_factory=lambda: [0])
    task: Task = field(default_factory=Task)
    data: Data = field(default_factory=Data)
    train: Train = field(default_factory=Train)
    eval: Eval = field(default_factory=Eval)
    device: Device = field(default_factory=Device)
    loader: Loader = field(default_factory=Loader)
    # per-method options, ``[methods.resnext] width = 0.125``: each job hashes only its own
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    # per-method training budget, ``[method_train.resnext] patch_size = 60``: the protocol's own
    # choice (applied whatever ``train.method_overrides`` says); each job hashes only its own
    method_train: dict[str, dict[str, Any]] = field(default_factory=dict)
    # per-dataset options, ``[datasets.biomassters] composite = "seasonal"``: passed to the
    # dataset's factory; a job records (and hashes) what its dataset reports of them
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def for_method(self, name: str, overrides: Mapping[str, Any]) -> Protocol:
        """This protocol as a method trains under it: its declared overrides where the protocol
        allows them (``train.method_overrides``), then the protocol's ``[method_train.NAME]``."""
        proto = self
        if overrides and self.train.method_overrides:
            proto = proto.with_overrides(overrides, f"method {name!r} overrides")
        if name in self.method_train:
            own = {f"train.{k}": v for k, v in self.method_train[name].items()}
            proto = proto.with_overrides(own, f"protocol {self.name!r} [method_train.{name}]")
        return proto

    def with_overrides(self, overrides: Mapping[str, Any], origin: str = "overrides") -> Protocol:
        """A new protocol with dotted-key overrides applied (``{"train.lr": 1e-4}``)."""
        data = self.to_dict()
        for dotted, value in overrides.items():
            node = data
            *parents, leaf = dotted.split(".")
            # a method's options are its own: ``methods.NAME.OPTION`` may name any of them
            free = parents[:1] == ["methods"] and len(parents) == 2
            for part in parents:
                if free and not isinstance(node.get(part), dict):
                    node[part] = {}
                if not isinstance(node.get(part), dict):
                    raise ProtocolError(f"{origin}: unknown protocol key {dotted!r}")
                node = node[part]
            if leaf not in node and not free:
                raise ProtocolError(f"{origin}: unknown protocol key {dotted!r}")
            node[leaf] = value
        return build_protocol(data, origin)

    def validate(self, origin: str) -> None:
        if self.train.patch_size > self.task.crop:
            raise ProtocolError(
                f"{origin}: train.patch_size {self.train.patch_size} is larger than "
                f"task.crop {self.task.crop}"
            )
        if not self.seeds:
            raise ProtocolError(f"{origin}: seeds is empty")
        if self.data.guide_dtype not in GUIDE_DTYPES:
            raise ProtocolError(f"{origin}: data.guide_dtype must be one of {', '.join(GUIDE_DTYPES)}")
        if self.loader.tier not in TIERS:
            raise ProtocolError(f"{origin}: loader.tier must be one of {', '.join(TIERS)}")
        if not 0 < self.loader.memory_fraction <= 1:
            raise ProtocolError(f"{origin}: loader.memory_fraction must be in (0, 1]")


# keys that moved to the dataset: a protocol file that still sets them gets told where they went
_MOVED = {
    "task.scale": "the scale comes from the dataset",
    "data.composite": 'set it per dataset: [datasets.biomassters] composite = "..."',
    "data.synthetic": "set it per dataset: [datasets.biomassters-synthetic] train_chips = ...",
    "eval.bins": "the bins come from the dataset",
}


_TYPE_NAMES = {
    "int_type": "int",
    "float_type": "float",
    "bool_type": "bool",
    "string_type": "str",
    "list_type": "a list",
    "dict_type": "a table",
    "dataclass_type": "a table",
}


@functools.cache
def _adapter() -> Any:
    """The typed validator of a protocol (pydantic over the dataclasses above): strict (no
    ``"5"`` for 5, no ``true`` for 1; an integer is a float), unknown keys forbidden."""
    from pydantic import ConfigDict, TypeAdapter

    # set here, not in the class bodies: importing this module (``gsr-bench list``) stays free of pydantic
    for cls in (Degradation, Task, Data, Loader, Train, Eval, Device, Protocol):
        setattr(cls, "__pydantic_config__", ConfigDict(extra="forbid"))  # noqa: B010
    return TypeAdapter(Protocol)


def _fields_at(path: tuple[str, ...]) -> list[str]:
    """The key names allowed in the table at ``path`` (empty where any key is allowed)."""
    cls: Any = Protocol
    for part in path:
        cls = typing.get_type_hints(cls).get(part)
        if not dataclasses.is_dataclass(cls):
            return []
    return [f.name for f in dataclasses.fields(cls)]


def _describe(error: Mapping[str, Any], origin: str) -> str:
    loc = tuple(str(p) for p in error["loc"])
    dotted = ".".join(loc)
    kind, value = error["type"], error.get("input")
    if kind == "unexpected_keyword_argument":
        prefix = ".".join(loc[:-1]) + "." if len(loc) > 1 else ""
        names = _fields_at(loc[:-1])
        close = difflib.get_close_matches(loc[-1], names, n=1)
        hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
        return f"{origin}: unknown key {dotted!r}{hint}; allowed here: {', '.join(names)}"
    expected = _TYPE_NAMES.get(kind)
    if expected is None:
        return f"{origin}: {dotted!r}: {error['msg']}"
    if expected.startswith("a "):
        return f"{origin}: {dotted!r} must be {expected}"
    return f"{origin}: {dotted!r} must be {expected}, got {type(value).__name__} {value!r}"


def build_protocol(data: Mapping[str, Any], origin: str) -> Protocol:
    """A protocol from its table (a parsed TOML file), validated against the typed schema;
    the first problem is raised as one line naming the key."""
    from pydantic import ValidationError

    for required in ("name", "version"):
        if required not in data:
            raise ProtocolError(f"{origin}: missing required key {required!r}")
    for dotted, where in _MOVED.items():
        table, _, key = dotted.partition(".")
        if isinstance(data.get(table), Mapping) and key in data[table]:
            raise ProtocolError(f"{origin}: {dotted!r} is no longer a protocol key: {where}")
    try:  # JSON, because pydantic's strict mode reads a table as a dataclass only from JSON
        text = json.dumps(data)
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"{origin}: a value is not a string, number, list or table ({exc})") from None
    try:
        protocol: Protocol = _adapter().validate_json(text, strict=True)
    except ValidationError as exc:
        raise ProtocolError(_describe(exc.errors()[0], origin)) from None
    protocol.validate(origin)
    return protocol


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a protocol file (draft 2020-12), as committed in
    ``gsr_bench/schemas/protocol.json`` for editors that complete and check TOML."""
    schema: dict[str, Any] = _adapter().json_schema()
    schema["$id"] = "urn:gsr-bench:protocol"
    schema["title"] = "gsr-bench evaluation protocol"
    return schema


def _builtin_files() -> dict[str, Any]:
    folder = resources.files("gsr_bench") / "protocols"
    return {p.name[: -len(".toml")]: p for p in folder.iterdir() if p.name.endswith(".toml")}


def builtin_names() -> list[str]:
    """The names of the protocols shipped with gsr-bench."""
    return sorted(_builtin_files())


def list_protocols(plugins: Mapping[str, Any] | None = None) -> list[Protocol]:
    """The built-in protocols and ``plugins``' (``{name: file}``), by name."""
    names = sorted({*_builtin_files(), *(plugins or {})})
    return [load_protocol(name, plugins) for name in names]


def load_protocol(name_or_path: str | Path, plugins: Mapping[str, Any] | None = None) -> Protocol:
    """A built-in protocol by name (``"quick"``), one a plugin registered (``plugins``:
    ``{name: file}``, see ``PluginManager.load_protocol``) or a TOML file by path.

    Raises:
        UnknownNameError: no protocol has that name (with the closest names).
        ProtocolError: the file cannot be read, is not TOML or breaks the schema.
    """
    text_name = str(name_or_path)
    builtin = _builtin_files()
    plugins = plugins or {}
    if text_name in builtin:
        source, origin = builtin[text_name].read_text(), f"protocol {text_name!r}"
    elif text_name in plugins:
        origin = f"protocol {text_name!r} ({plugins[text_name]})"
        try:
            source = plugins[text_name].read_text()
        except OSError as exc:
            raise ProtocolError(f"{origin}: cannot read protocol file ({exc.strerror})") from None
    elif text_name.endswith(".toml") or Path(text_name).exists():
        path = Path(text_name)
        try:
            source, origin = path.read_text(), str(path)
        except OSError as exc:
            raise ProtocolError(f"{path}: cannot read protocol file ({exc.strerror})") from None
    else:
        raise UnknownNameError("protocol", text_name, {**builtin, **plugins})
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolError(f"{origin}: not valid TOML ({exc})") from None
    protocol = build_protocol(data, origin)
    if text_name in plugins and protocol.name != text_name:
        raise ProtocolError(f"{origin}: registered as {text_name!r} but its file names {protocol.name!r}")
    if text_name not in builtin:  # only the built-in protocols publish unless the run says so
        protocol = dataclasses.replace(protocol, publish=False)
    return protocol


SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "protocol.json"


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # python -m gsr_bench.protocol: write the committed JSON Schema
    SCHEMA_FILE.write_text(schema_text())

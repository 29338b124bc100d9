import json
import re
from pathlib import Path

import pytest

from gsr_bench.errors import GsrBenchError, ProtocolError, UnknownNameError
from gsr_bench.hookspecs import hookimpl
from gsr_bench.protocol import list_protocols, load_protocol
from gsr_bench.registry import ProtocolSpec


def test_builtin_protocols_load_and_are_versioned() -> None:
    names = {p.name: p for p in list_protocols()}
    assert set(names) == {"smoke", "quick", "paper"}
    for p in names.values():
        assert p.version
        assert p.task.crop % 10 == 0  # on the BioMassters source grid
    assert names["smoke"].task.crop < names["quick"].task.crop
    assert names["quick"].seeds == [0, 1]


def test_unknown_key_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\nversion = "1"\n[train]\nstep = 5\n')
    with pytest.raises(ProtocolError, match=r"unknown key 'train.step'.*did you mean 'train.steps'"):
        load_protocol(path)


def test_wrong_type_and_missing_version(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\nversion = "1"\n[train]\nsteps = "many"\n')
    with pytest.raises(ProtocolError, match=r"'train\.steps' must be int"):
        load_protocol(path)
    path.write_text('name = "bad"\n')
    with pytest.raises(ProtocolError, match="missing required key 'version'"):
        load_protocol(path)


def test_crop_and_patch_must_be_multiples_of_the_dataset_scale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked when jobs are planned (the scale is the dataset's), in one line naming the values."""
    from gsr_bench.cli import main

    path = tmp_path / "crop.toml"
    path.write_text('name = "c"\nversion = "1"\n[task]\ncrop = 255\n')
    assert main(["run", "-m", "bicubic", "--protocol", str(path), "-q", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "task.crop 255 is not a multiple of the scale 10 of dataset 'biomassters-synthetic'" in err
    assert "use 250 or 260" in err
    path.write_text('name = "c"\nversion = "1"\n[task]\ncrop = 250\n[train]\npatch_size = 64\n')
    assert main(["estimate", "-m", "msg", "--protocol", str(path), "--results", str(tmp_path)]) == 2
    assert "train.patch_size 64 is not a multiple" in capsys.readouterr().err
    path.write_text('name = "c"\nversion = "1"\n[task]\ncrop = 50\n[train]\npatch_size = 60\n')
    with pytest.raises(ProtocolError, match=r"patch_size 60 is larger than task.crop 50"):
        load_protocol(path)


def test_unknown_protocol_name_suggests() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'quick'"):
        load_protocol("quik")


def test_overrides_change_fingerprint_and_reject_unknown_keys() -> None:
    quick = load_protocol("quick")
    tuned = quick.with_overrides({"train.lr": 1e-4})
    assert tuned.train.lr == 1e-4 and quick.train.lr == 1e-3
    assert tuned.fingerprint() != quick.fingerprint()
    with pytest.raises(ProtocolError, match=r"unknown protocol key 'train\.lrr'"):
        quick.with_overrides({"train.lrr": 1e-4})


def test_method_options_reach_only_their_own_job() -> None:
    from gsr_bench.planning import plan_jobs
    from gsr_bench.plugins import PluginManager

    manager = PluginManager()
    quick = load_protocol("quick")
    assert quick.methods["resnext"] == {"width": 0.03125, "cardinality": 4, "beta": 0.5}
    wider = quick.with_overrides({"methods": {"resnext": {"width": 0.25}}})
    names, data = ["msg", "resnext"], ["biomassters-synthetic"]
    before = {j.method.name: j for j in plan_jobs(manager, names, data, quick)}
    after = {j.method.name: j for j in plan_jobs(manager, names, data, wider)}
    assert before["msg"].key == after["msg"].key and before["msg"].method_options == {}
    assert before["resnext"].key != after["resnext"].key
    assert after["resnext"].config()["method"]["options"] == {"width": 0.25}


def test_unknown_composite_and_bad_method_table(tmp_path: Path) -> None:
    from gsr_bench.planning import plan_jobs
    from gsr_bench.plugins import PluginManager

    path = tmp_path / "p.toml"
    path.write_text('name = "p"\nversion = "1"\n[data]\ncomposite = "seasonal"\n')
    with pytest.raises(ProtocolError, match=r"'data.composite' is no longer a protocol key: .*\[datasets"):
        load_protocol(path)
    path.write_text('name = "p"\nversion = "1"\n[datasets.biomassters-synthetic]\ncomposite = "seasonl"\n')
    with pytest.raises(GsrBenchError, match="did you mean 'seasonal'"):
        plan_jobs(PluginManager(), ["bicubic"], ["biomassters-synthetic"], load_protocol(path))
    path.write_text('name = "p"\nversion = "1"\n[datasets.biomassters-synthetic]\ncomposit = "seasonal"\n')
    with pytest.raises(GsrBenchError, match=r"has no option 'composit' .*composite"):
        plan_jobs(PluginManager(), ["bicubic"], ["biomassters-synthetic"], load_protocol(path))
    path.write_text('name = "p"\nversion = "1"\nmethods = 3\n')
    with pytest.raises(ProtocolError, match="'methods' must be a table"):
        load_protocol(path)


def test_deterministic_methods_run_once() -> None:
    from gsr_bench.planning import plan_jobs
    from gsr_bench.plugins import PluginManager

    jobs = plan_jobs(
        PluginManager(), ["bicubic", "jbu", "msg", "p2p"], ["biomassters-synthetic"], load_protocol("quick")
    )
    seeds = {m: [j.seed for j in jobs if j.method.name == m] for m in ("bicubic", "jbu", "msg", "p2p")}
    assert seeds == {"bicubic": [0], "jbu": [0], "msg": [0, 1], "p2p": [0, 1]}


def test_values_are_checked_strictly_by_the_typed_schema(tmp_path: Path) -> None:
    """Catches a schema that coerces (``"20"`` read as 20, ``1`` as ``true``) or that lets an
    integer stay an int where the field is a float (the job key would differ from ``1.0``'s)."""
    path = tmp_path / "p.toml"
    head = 'name = "p"\nversion = "1"\n'
    for body, message in [
        ("[train]\naugment = 1\n", "'train.augment' must be bool, got int 1"),
        ('[train]\nsteps = "20"\n', "'train.steps' must be int, got str '20'"),
        ("[train]\nsteps = 2.0\n", "'train.steps' must be int, got float 2.0"),
        ("seeds = [0, true]\n", "'seeds.1' must be int, got bool True"),
        ("task = 3\n", "'task' must be a table"),
        ("[task.degradation]\nnoyse = 0.1\n", "unknown key 'task.degradation.noyse' (did you mean"),
        ("[methods]\nmsg = 3\n", "'methods.msg' must be a table"),
    ]:
        path.write_text(head + body)
        with pytest.raises(ProtocolError, match=re.escape(f"{path}: {message}")):
            load_protocol(path)
    path.write_text(head + "[train]\nlr = 1\n[task.degradation]\nnoise = 0\n")
    protocol = load_protocol(path)
    assert protocol.train.lr == 1.0 and isinstance(protocol.train.lr, float)
    assert isinstance(protocol.task.degradation.noise, float)


def test_committed_json_schema_is_current_and_accepts_the_builtin_protocols() -> None:
    """`gsr_bench/schemas/protocol.json` is generated (`python -m gsr_bench.protocol`); a field
    edited without regenerating it, or a shipped protocol the schema refuses, fails here."""
    import tomllib
    from importlib import resources

    import jsonschema

    from gsr_bench.protocol import SCHEMA_FILE, schema_text

    assert SCHEMA_FILE.read_text() == schema_text()
    schema = json.loads(SCHEMA_FILE.read_text())
    folder = resources.files("gsr_bench") / "protocols"
    files = [f for f in folder.iterdir() if f.name.endswith(".toml")]
    assert len(files) == 3
    for file in files:
        jsonschema.validate(tomllib.loads(file.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "version": "1", "train": {"stepz": 1}}, schema)


class _Protocols:
    def __init__(self, specs: list[object]) -> None:
        self.specs = specs

    @hookimpl
    def gsr_bench_register_protocols(self, register):  # type: ignore[no-untyped-def]
        for spec in self.specs:
            register(spec)


def test_a_plugin_registers_protocols_run_by_name(tmp_path: Path) -> None:
    """A plugin's protocol loads by name, is listed beside the built-ins and does not publish;
    one that takes a built-in's name, or whose file names another protocol, is refused
    (a registry that let a plugin shadow `quick` would change what `quick` means)."""
    from gsr_bench.plugins import PluginManager

    mine = tmp_path / "mine.toml"
    mine.write_text('name = "mine"\nversion = "2"\npublish = true\n[task]\ncrop = 64\n')
    other = tmp_path / "other.toml"
    other.write_text('name = "not-other"\nversion = "1"\n')
    pm = PluginManager(load_entrypoints=False)
    pm.register(
        _Protocols([ProtocolSpec("mine", mine), ProtocolSpec("quick", mine), ProtocolSpec("other", other)]),
        "x8",
        "x8-dist",
    )
    protocol = pm.load_protocol("mine")
    assert (protocol.name, protocol.version, protocol.task.crop, protocol.publish) == ("mine", "2", 64, False)
    assert [p.name for p in pm.list_protocols()] == ["mine", "paper", "quick", "smoke"]
    assert [str(f) for f in pm.failures] == [
        "plugin 'x8' (x8-dist) failed at register 'quick': protocol 'quick' is a built-in protocol",
        f"plugin 'x8' (x8-dist) failed at protocol 'other': protocol 'other' ({other}): registered as "
        "'other' but its file names 'not-other'",
    ]
    assert pm.load_protocol("quick").version == load_protocol("quick").version
    with pytest.raises(ProtocolError, match="registered as 'other' but its file names 'not-other'"):
        pm.load_protocol("other")
    with pytest.raises(UnknownNameError, match="Did you mean 'mine'"):
        pm.load_protocol("mire")

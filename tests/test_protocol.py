from pathlib import Path

import pytest

from gsr_bench.errors import GsrBenchError, ProtocolError, UnknownNameError
from gsr_bench.protocol import list_protocols, load_protocol


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

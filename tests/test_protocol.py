from pathlib import Path

import pytest

from gsr_bench.errors import ProtocolError, UnknownNameError
from gsr_bench.protocol import list_protocols, load_protocol


def test_builtin_protocols_load_and_are_versioned() -> None:
    names = {p.name: p for p in list_protocols()}
    assert set(names) == {"smoke", "quick", "paper"}
    for p in names.values():
        assert p.version
        assert p.task.crop % p.task.scale == 0
    assert names["smoke"].task.crop < names["quick"].task.crop
    assert names["quick"].seeds == [0, 1, 2]


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


def test_crop_must_be_a_multiple_of_scale(tmp_path: Path) -> None:
    path = tmp_path / "crop.toml"
    path.write_text('name = "c"\nversion = "1"\n[task]\ncrop = 255\n')
    with pytest.raises(ProtocolError, match="not a multiple"):
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

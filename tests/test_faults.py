"""Faults: a corrupt prepared file, an unwritable results folder, two runs on one folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gsr_bench.cli import main


def test_truncated_prepared_file_names_the_rebuild_command(
    workdir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache = tmp_path_factory.mktemp("own-cache")  # this test damages its cache
    monkeypatch.setenv("GSR_BENCH_CACHE", str(cache))
    base = ["run", "-m", "nearest", "--protocol", "smoke", "--publish", "-q", "--no-leaderboard"]
    assert main(base) == 0
    (train,) = cache.glob("prepared/*/train.h5")
    train.write_bytes(train.read_bytes()[: train.stat().st_size // 3])
    capsys.readouterr()
    assert main([*base, "--force"]) == 2
    err = capsys.readouterr().err
    assert f"{train}: not a readable prepared HDF5 file" in err
    assert f"delete {train.parent} to rebuild it on the next run" in err
    assert err.count("\n") == 1


def test_unwritable_results_folder_fails_before_any_work(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = Path("/sys/fs")  # read-only even for root, unlike a chmod-ed folder
    try:
        (folder / "probe").write_text("")
    except OSError:
        pass
    else:
        pytest.skip("/sys/fs is writable on this machine")
    assert (
        main(["run", "-m", "nearest", "--protocol", "smoke", "--publish", "-q", "--results", str(folder)])
        == 2
    )
    err = capsys.readouterr().err
    assert f"results folder {folder} is not writable" in err and "Traceback" not in err


def test_second_run_on_the_same_results_refuses(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from gsr_bench.results_dir import exclusive\n"
            "with exclusive(Path('results')):\n    print('held', flush=True); sys.stdin.readline()",
        ],
        cwd=workdir,
        stdin=subprocess.PIPE,  # holds the lock until the test lets go, however long that takes
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert main(["run", "-m", "nearest", "--protocol", "smoke", "--publish", "-q"]) == 2
        err = capsys.readouterr().err
        assert f"in use by another gsr-bench run (pid {holder.pid})" in err
        assert holder.poll() is None  # refused while the lock is held: it did not wait for it
        assert not (workdir / "results" / "mlflow.db").exists()
    finally:
        holder.kill()
        holder.wait()
    assert main(["run", "-m", "nearest", "--protocol", "smoke", "--publish", "-q", "--no-leaderboard"]) == 0

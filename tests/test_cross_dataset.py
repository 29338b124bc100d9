"""Train on one dataset, test on another: the simulator's models on real BioMassters chips."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gsr_bench.cli import main
from gsr_bench.tracking import Tracker

REAL = ["-d", "biomassters-synthetic", "--test-dataset", "biomassters", "--test-split", "train"]


@pytest.mark.slow
def test_trained_on_the_simulator_tested_on_real_chips(
    workdir: Path, real_months: Path, real_sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["run", "-m", "bicubic", "-m", "msg", "--protocol", "smoke", "--publish", "-q"]
    assert main(base) == 0  # on the simulator's own test split
    checkpoints = {p.name for p in (workdir / "results" / "checkpoints").iterdir()}
    assert main([*base, *REAL, "--root", str(real_months)]) == 0
    assert main([*base, *REAL, "--root", str(real_sample)]) == 0
    # msg trained once: the real-chip jobs resumed its finished checkpoint instead of training again
    assert {p.name for p in (workdir / "results" / "checkpoints").iterdir()} == checkpoints
    runs = list(Tracker(workdir / "results").runs())
    assert len(runs) == 6 and len({r.data.tags["job_key"] for r in runs}) == 6
    real = [r for r in runs if r.data.tags["test_dataset"] == "biomassters"]
    assert {r.data.tags["dataset"] for r in real} == {"biomassters-synthetic"}
    assert sorted(r.data.metrics["test_tiles"] for r in real) == [1, 1, 2, 2]  # the real chips
    msg_real = [r for r in real if r.data.tags["method"] == "msg"]
    assert all(r.data.metrics["resumed_from_step"] == r.data.metrics["train_steps"] for r in msg_real)
    assert all(r.data.params["test.split"] == "train" for r in real)

    table = pd.read_csv(workdir / "leaderboard" / "results.csv")
    pairs = set(zip(table["train_dataset"], table["test_dataset"], table["test_split"], strict=True))
    assert pairs == {
        ("biomassters-synthetic", "biomassters-synthetic", "test"),
        ("biomassters-synthetic", "biomassters", "train"),
    }
    assert len(table) == 6  # the two folders of real chips are two sections, not one merged
    readme = (workdir / "leaderboard" / "README.md").read_text()
    assert "## biomassters-synthetic · protocol `smoke`" in readme
    # the subset is named by its content's digest, never by the folder it sits in
    months = "biomassters-synthetic → biomassters (train split, 2 train + 0 test chips of the release ("
    assert f"## {months}" in readme and "biomassters-months" not in readme
    figures = {p.name for p in (workdir / "leaderboard" / "figures").glob("*-to-biomassters-*_tiles.png")}
    assert len(figures) == 2 and any("2-train-0-test" in name for name in figures)
    # and their records are two sets, not duplicates of one another
    folders = {p.parent.parent.name for p in (workdir / "leaderboard" / "results").rglob("*.json")}
    assert len(folders) == 3
    assert main(["leaderboard", "--check"]) == 0


def test_a_test_dataset_with_other_channels_is_refused(
    workdir: Path, real_sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    smoke = (Path(__file__).parents[1] / "gsr_bench" / "protocols" / "smoke.toml").read_text()
    protocol = workdir / "seasonal-real.toml"  # the real chips composited by season, not the simulator's
    protocol.write_text(f'{smoke}\n[datasets.biomassters]\ncomposite = "seasonal"\n')
    args = ["run", "-m", "bicubic", "--protocol", str(protocol), "-q", *REAL, "--root", str(real_sample)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "dataset 'biomassters' cannot test methods trained on 'biomassters-synthetic'" in err
    assert "its guide has 56 channels, theirs 14" in err

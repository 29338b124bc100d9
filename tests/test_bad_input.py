"""Bad input found before work starts, each in one line naming what is wrong and what to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gsr_bench.cli import main
from gsr_bench.data.prepare import prepare_split
from gsr_bench.dataset import GSRDataset, Sample
from gsr_bench.errors import DataError


def _one_line(capsys: pytest.CaptureFixture[str], code: int, *args: str) -> str:
    assert main(["run", *args, "--protocol", "smoke", "-q", "--no-leaderboard"]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.removeprefix("gsr-bench: error: ").strip()


def test_an_option_of_the_wrong_type_names_the_type(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _one_line(capsys, 2, "-m", "nearest", "-O", "train_chips=abc")
    assert err == "dataset 'biomassters-synthetic' option 'train_chips' takes int (default 60), got 'abc'"


def test_root_for_a_dataset_that_reads_no_folder(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--root was silently ignored: a user believed their folder was benchmarked."""
    err = _one_line(capsys, 2, "-m", "nearest", "--root", str(workdir))
    assert err.startswith("dataset 'biomassters-synthetic' reads no folder: --root is for datasets read")


def test_a_name_in_the_wrong_case_is_suggested(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _one_line(capsys, 2, "-m", "MSG").startswith("unknown method 'MSG'. Did you mean 'msg'?")


def test_an_empty_test_split_is_found_before_the_train_split_is_prepared(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _one_line(capsys, 2, "-m", "nearest", "-O", "test_chips=0", "-O", "train_chips=4")
    assert err.startswith("dataset 'biomassters-synthetic': the test split has no tiles (options ")
    assert err.endswith("nothing was prepared")
    assert not list((workdir / "results").rglob("*.h5")) and not list(
        (workdir / "results").rglob("*.partial")
    )


def test_a_misspelt_method_option_in_a_protocol(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    smoke = (Path(__file__).parents[1] / "gsr_bench" / "protocols" / "smoke.toml").read_text()
    for table, message in (
        (
            "widht = 8",
            "method 'msg' has no option 'widht'; did you mean 'width'? (its options: width, use_guide)",
        ),
        ("width = 'wide'", "method 'msg' option 'width' takes int (default 32), got 'wide'"),
    ):
        (workdir / "typo.toml").write_text(
            smoke.replace('name = "smoke"', 'name = "typo"') + f"\n[methods.msg]\n{table}\n"
        )
        assert (
            main(["run", "-m", "msg", "--protocol", str(workdir / "typo.toml"), "-q", "--no-leaderboard"])
            == 2
        )
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not (workdir / "results" / "mlflow.db").exists()  # found when jobs are planned


class Small(GSRDataset):
    """Tiles of ``tile`` pixels, x4: an option decides their size, as the raster folder's does."""

    scale, units, label, data_range = 4, "m", "height", 30.0
    guide_channels = ("blue", "green", "red")

    def __init__(self, tile: int = 64) -> None:
        self.tile = tile

    def options(self) -> dict[str, int]:
        return {"tile": self.tile}

    def tiles(self, split: str) -> list[int]:
        return [0, 1]

    def read(self, tile: int) -> Sample:
        target = np.full((self.tile, self.tile), 3.0, np.float32)
        return Sample(f"t{tile}", np.stack([target] * 3), target)


def test_a_tile_smaller_than_the_crop_because_of_an_option(tmp_path: Path) -> None:
    """Said as a matter of options and crop, never as a file to fix."""
    with pytest.raises(DataError) as info:
        prepare_split(Small(tile=40), "train", tmp_path / "x.h5", 60, workers=1, progress=False)
    message = str(info.value)
    assert message == (
        "dataset 'Small' tile 't0': 40x40 pixels, smaller than the protocol's crop 60; with options "
        "tile=40 the dataset makes tiles of that size: choose options that give larger tiles, or a "
        "protocol with a smaller task.crop"
    )
    assert "fix the file" not in message

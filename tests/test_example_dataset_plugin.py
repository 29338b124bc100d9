"""The outside dataset contributor's path: pip-install the raster-folder example plugin, point it
at a generated x8, 3-channel folder in metres, run the built-in methods, read the leaderboard."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from gsr_bench.tracking import Tracker

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gsr-bench-raster-folder"


@pytest.fixture(scope="module")
def site(install_example: Callable[[str], Path]) -> Path:
    return install_example("gsr-bench-raster-folder")


@pytest.mark.slow
def test_raster_folder_plugin_runs_the_builtin_methods_in_its_units(
    site: Path, tmp_path: Path, run_with_site: Callable[..., Any]
) -> None:
    def _run(args: list[str], site: Path, cwd: Path) -> Any:
        return run_with_site(args, site, cwd, cwd / "cache")

    folder = tmp_path / "heights"
    made = _run([sys.executable, "-m", "gsr_bench_raster_folder.fake", str(folder)], site, tmp_path)
    assert made.returncode == 0, made.stderr
    cli = [sys.executable, "-m", "gsr_bench"]
    listing = _run([*cli, "list", "datasets"], site, tmp_path)
    assert "raster-folder" in listing.stdout and "gsr-bench-raster-folder" in listing.stdout
    base = [*cli, "run", "-d", "raster-folder", "--root", str(folder), "-q", "--publish"]

    # the built-in smoke protocol crops 60 pixels: not on an 8-pixel grid, said in one line
    wrong = _run([*base, "-m", "bicubic", "--protocol", "smoke"], site, tmp_path)
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines() == [
        "gsr-bench: error: protocol 'smoke': task.crop 60 is not a multiple of the scale 8 of dataset "
        "'raster-folder' (for method 'bicubic'); use 56 or 64 in a protocol file (--protocol FILE.toml)"
    ]

    # the plugin's own protocol, by name (package data of the installed plugin)
    protocols = _run([*cli, "list", "protocols"], site, tmp_path)
    assert any(line.split()[:2] == ["smoke-x8", "1"] for line in protocols.stdout.splitlines())
    run = _run([*base, "--all", "--protocol", "smoke-x8"], site, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    table = pd.read_csv(tmp_path / "leaderboard" / "results.csv")
    builtin = {"bicubic", "bilinear", "nearest", "jbu", "guided-filter", "fdsr", "msg", "msg-ng", "p2p"}
    assert builtin | {"unet", "resnext"} <= set(table["method"])
    rmse = table.set_index("method")["rmse_mean"]
    assert rmse["bicubic"] < rmse["nearest"] and rmse["jbu"] < rmse["bicubic"]  # the guide helps
    readme = (tmp_path / "leaderboard" / "README.md").read_text()
    assert "## raster-folder · protocol `smoke-x8`" in readme and "Errors in m (canopy height)." in readme
    assert "RMSE by canopy height bin" in readme and "Mg/ha" not in readme
    for fig in ("tiles", "bins", "speed"):
        assert (tmp_path / "leaderboard" / "figures" / f"raster-folder_smoke-x8_{fig}.png").stat().st_size > 0

    runs = Tracker(tmp_path / "results").runs("FINISHED")
    bicubic = next(r for r in runs if r.data.tags["method"] == "bicubic")
    assert bicubic.data.tags["dataset_units"] == "m"
    # the scale and crop really used, not a protocol's default
    assert bicubic.data.params["dataset.scale"] == "8"
    assert bicubic.data.params["protocol.task.crop"] == "64"
    assert json.loads(bicubic.data.params["dataset.options.tile"]) == 64
    # the figures' guide preview is red, green, blue in that order (channels 0, 1, 2)
    tiles = Tracker(tmp_path / "results").download(bicubic.info.run_id, "config.json", tmp_path / "dl")
    assert tiles is not None and json.loads(tiles.read_text())["dataset"]["rgb_channels"] == [0, 1, 2]

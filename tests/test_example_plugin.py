"""The outside contributor's path: pip-install the example plugin, see it listed, run, ranked."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest


@pytest.fixture(scope="module")
def installed(install_example: Callable[[str], Path]) -> Path:
    return install_example("gsr-bench-example-plugin")


CLI = [sys.executable, "-m", "gsr_bench"]


def test_example_plugin_listed_run_and_ranked(
    installed: Path, tmp_path: Path, shared_cache: Path, run_with_site: Callable[..., Any]
) -> None:
    def _cli(args: list[str], site: Path, cwd: Path, cache: Path) -> Any:
        return run_with_site([*CLI, *args], site, cwd, cache, 600)

    plugins = _cli(["plugins"], installed, tmp_path, shared_cache)
    assert plugins.returncode == 0, plugins.stderr
    line = next(ln for ln in plugins.stdout.splitlines() if ln.startswith("example "))
    assert "gsr-bench-example-plugin" in line and "0.1.0" in line and "example-smooth-bicubic" in line
    assert "example-tiny-residual" in line
    listing = _cli(["list", "methods"], installed, tmp_path, shared_cache)
    assert "example-smooth-bicubic" in listing.stdout
    run = _cli(
        [
            "run",
            *("-m", "example-smooth-bicubic", "-m", "example-tiny-residual", "-m", "bicubic"),
            *("--protocol", "smoke", "--publish", "-q"),
        ],
        installed,
        tmp_path,
        shared_cache,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    table = pd.read_csv(tmp_path / "leaderboard" / "results.csv")
    assert set(table["method"]) == {"example-smooth-bicubic", "example-tiny-residual", "bicubic"}
    # the learned template trained: its own loss ran, and its prediction is a number
    learned = table[table["method"] == "example-tiny-residual"].iloc[0]
    assert learned["family"] == "gsr" and 0 < learned["rmse_mean"] < 1e3
    assert "example-smooth-bicubic" in (tmp_path / "leaderboard" / "README.md").read_text()
    # Without the plugin on the path, the same store still lists it (results outlive plugins).
    board = _cli(["leaderboard"], Path("/nonexistent-site"), tmp_path, shared_cache)
    assert board.returncode == 0, board.stderr

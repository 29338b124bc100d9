"""The README's contributor flow end to end: a pull request holds exactly the contributor's results.

An outside plugin is pip-installed; in a clone of this repository (with its committed records) the
contributor first tries the smoke protocol (published nowhere), then runs ``quick``; ``--check`` is
clean, and ``git status`` shows only that method's new record and the regenerated files."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "gsr_bench"]
METHOD = "example-smooth-bicubic"


def _status(clone: Path) -> list[str]:
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.splitlines()


@pytest.mark.slow
def test_a_contributors_pull_request_holds_exactly_their_results(
    tmp_path: Path,
    shared_cache: Path,
    install_example: Callable[[str], Path],
    run_with_site: Callable[..., Any],
) -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    site = install_example("gsr-bench-example-plugin")

    def cli(*args: str) -> Any:
        done = run_with_site([*CLI, *args], site, clone, shared_cache, 900)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        return done

    smoke = cli("run", "-m", METHOD, "--protocol", "smoke", "-q")  # the README's first try
    assert "not published" in smoke.stdout
    assert _status(clone) == [], "a smoke run touches nothing that is committed"

    cli("run", "-m", METHOD, "-q")  # quick: published
    check = cli("leaderboard", "--check")
    assert " 0 error(s)" in check.stdout
    status = _status(clone)
    print("\n".join(["git status --porcelain after the contributor's quick run:", *status]))
    records = [line[3:] for line in status if line[3:].startswith("leaderboard/results/")]
    changed = {line[3:] for line in status} - set(records)
    assert len(records) == 1, records  # one method, run once: no stale or smoke record
    assert records[0].startswith(f"leaderboard/results/biomassters-synthetic/quick/{METHOD}-seed0-")
    assert f"?? {records[0]}" in status  # a new file: no committed record was touched
    section = "biomassters-synthetic_quick"  # its section's files, new or regenerated
    assert changed <= {
        "leaderboard/README.md",
        "leaderboard/index.html",
        "leaderboard/results.csv",
        f"leaderboard/tables/{section}.csv",
        f"leaderboard/figures/{section}_bins.png",
        f"leaderboard/figures/{section}_speed.png",
        f"leaderboard/figures/{section}_tiles.png",
    }, changed
    assert METHOD in (clone / "leaderboard" / "results.csv").read_text()

    cli("leaderboard")  # regenerating with no new results changes nothing more
    assert _status(clone) == status


def test_an_edit_without_a_version_bump_reruns_and_says_so(
    tmp_path: Path,
    shared_cache: Path,
    install_example: Callable[[str], Path],
    run_with_site: Callable[..., Any],
) -> None:
    import shutil

    site = tmp_path / "site"
    shutil.copytree(install_example("gsr-bench-example-plugin"), site)
    module = site / "gsr_bench_example" / "method.py"
    source = module.read_text()
    run = [*CLI, "run", "-m", METHOD, "--protocol", "smoke", "--no-leaderboard"]

    def status() -> tuple[str, str]:
        done = run_with_site(run, site, tmp_path, shared_cache, 600)
        assert done.returncode == 0, done.stderr[-2000:]
        line = next(ln for ln in done.stdout.splitlines() if ln.startswith(METHOD))
        return line.split()[4], done.stderr

    assert status()[0] == "FINISHED"
    module.write_text(source.replace('"""Bicubic', '"""Smoothed bicubic') + "\n# a comment\n")
    assert status()[0] == "SKIPPED"  # comments and docstrings are not code
    module.write_text(source.replace("pad = self.size // 2", "pad = (self.size - 1) // 2"))
    state, err = status()
    assert state == "FINISHED"  # the same version, other code: never the old numbers
    assert f"method '{METHOD}' v1 changed its code since its finished run" in err
    assert err.count("changed its code") == 1

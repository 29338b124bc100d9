"""Shared fixtures: a small synthetic BioMassters folder, its prepared splits, the real sample."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gsr_bench.plugins import PluginManager, reset_plugin_manager


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker
        # Workers share the cores: torch's default of one thread per core in each of them
        # oversubscribes the machine and slows everything several times over.
        os.environ["OMP_NUM_THREADS"] = "1"  # for the CLI subprocesses too
        import torch

        torch.set_num_threads(1)


SHARED_DATA = (
    Path(os.environ.get("GSR_BENCH_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data"
)
SHARED_SAMPLE = SHARED_DATA / "biomassters-sample"
SHARED_MONTHS = SHARED_DATA / "biomassters-months"


@pytest.fixture(scope="session")
def real_sample() -> Path:
    """The real BioMassters files of this workplace; tests using it skip in other clones."""
    if not (SHARED_SAMPLE / "features_metadata.csv").exists():
        pytest.skip(f"real BioMassters sample not found at {SHARED_SAMPLE} (clone outside the workplace)")
    return SHARED_SAMPLE


@pytest.fixture(scope="session")
def real_months() -> Path:
    """Two real train chips with all their monthly files (288afc34, 000aa810); skips elsewhere."""
    if not (SHARED_MONTHS / "features_metadata.csv").exists():
        pytest.skip(f"real BioMassters months not found at {SHARED_MONTHS} (clone outside the workplace)")
    return SHARED_MONTHS


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic BioMassters: 9 train and 3 test chips, seed 3."""
    from gsr_bench_datasets.biomassters.synth import synthesize

    return synthesize(
        tmp_path_factory.mktemp("synth") / "root",
        9,
        seed=3,
        test_chips=3,
        workers=1,
        progress=False,
    )


@pytest.fixture(scope="session")
def prepared(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from gsr_bench.data.prepare import prepare_split
    from gsr_bench_datasets.biomassters.dataset import BioMassters

    out = tmp_path_factory.mktemp("prepared")
    dataset = BioMassters(str(synth_root))
    return {
        s: prepare_split(dataset, s, out / f"{s}.h5", 250, workers=1, progress=False)
        for s in ("train", "test")
    }


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cache of synthetic data for all runner tests of a worker process, removed at the end
    (pytest keeps session folders whatever the retention policy: 350 MB a worker)."""
    path = tmp_path_factory.mktemp("cache")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def workdir(tmp_path: Path, shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean working directory for CLI runs, sharing the prepared-data cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GSR_BENCH_CACHE", str(shared_cache))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.fixture
def plugin_manager() -> Iterator[PluginManager]:
    """A fresh process-wide plugin manager, restored afterwards."""
    manager = reset_plugin_manager(PluginManager())
    yield manager
    reset_plugin_manager(None)


def _pip_install_to(src: Path, target: Path) -> Path:
    args = ["install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(src)]
    subprocess.run([sys.executable, "-m", "pip", *args], check=True, capture_output=True)
    return target


def _run_with_site(
    args: list[str], site: Path, cwd: Path, cache: Path, timeout: int = 900
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "GSR_BENCH_CACHE": str(cache)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def run_with_site() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run a command with an installed plugin's folder on PYTHONPATH and a given cache, as a
    user who pip-installed it would (a fresh process: entry points are read at start)."""
    return _run_with_site


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="session")
def install_example(
    tmp_path_factory: pytest.TempPathFactory, pip_install_to: Callable[[Path, Path], Path]
) -> Callable[[str], Path]:
    """pip-install the distribution ``examples/NAME`` into a folder of its own (once a session)
    and return that folder, for PYTHONPATH."""
    done: dict[str, Path] = {}

    def install(name: str) -> Path:
        if name not in done:
            target = pip_install_to(EXAMPLES / name, tmp_path_factory.mktemp("site"))
            assert list(target.glob("*.dist-info/entry_points.txt")), f"{name}: no entry points installed"
            done[name] = target
        return done[name]

    return install


@pytest.fixture(scope="session")
def pip_install_to() -> Callable[[Path, Path], Path]:
    """Really install the distribution at ``src`` into the folder ``target`` (for PYTHONPATH);
    the test venv itself stays untouched."""
    return _pip_install_to

"""The layers of README's "Architecture" cover every module of the core (import-linter checks
the imports between them in `make lint`; a module left out of every layer is checked by nothing)."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import gsr_bench

ROOT = Path(__file__).resolve().parent.parent


def _layered() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return {
        f"gsr_bench.{name.strip()}"
        for layer in layers["layers"]
        for name in layer.replace("|", ":").split(":")
    }


def test_every_module_of_the_core_is_in_a_layer() -> None:
    layered = _layered()
    modules = [m.name for m in pkgutil.walk_packages(gsr_bench.__path__, "gsr_bench.")]
    assert modules
    # a package counts through its modules (gsr_bench.data holds only a docstring)
    missing = [
        m
        for m in modules
        if not any(m == n or m.startswith(f"{n}.") or n.startswith(f"{m}.") for n in layered)
    ]
    assert not missing, f"modules in no layer of [tool.importlinter]: {missing}"


def test_no_module_of_the_core_outgrows_a_reading() -> None:
    """About 350 lines at most: a module that does several jobs is split by responsibility."""
    sizes = {p.relative_to(ROOT): len(p.read_text().splitlines()) for p in (ROOT / "gsr_bench").rglob("*.py")}
    large = {str(p): n for p, n in sizes.items() if n > 380}
    assert not large, large

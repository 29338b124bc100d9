"""The plugin API (``gsr_bench.api``): every name loads, lazily, and code fingerprints see through it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import gsr_bench.api as api
from gsr_bench.fingerprint import _imported, _rebound

ROOT = Path(__file__).resolve().parent.parent


def test_the_listed_names_are_the_loadable_ones() -> None:
    assert sorted(api.__all__) == sorted(api._WHERE) == sorted(dir(api))


@pytest.mark.parametrize("name", api.__all__)
def test_every_name_loads_from_the_module_its_type_import_names(name: str) -> None:
    """The lazy table and the static imports say the same: fingerprints read the static ones."""
    value = getattr(api, name)
    module, attribute = api._WHERE[name]
    assert _rebound("gsr_bench.api")[name] == module
    assert value is getattr(sys.modules[module], attribute)


def test_importing_the_api_loads_nothing_heavy() -> None:
    """A plugin module imports the API at its top; a listing of plugins must not load torch."""
    code = "import sys, gsr_bench.api; from gsr_bench.api import MethodSpec; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_fingerprint_follows_api_names_to_their_code() -> None:
    """A method importing ``upsample`` from the API is fingerprinted with ``gsr_bench.ops``,
    where ``upsample`` is written: an edit there must change its fingerprint, one of the API's
    list must not."""
    tree = ast.parse("from gsr_bench.api import TaskInfo, upsample\n")
    found = _imported(tree, "gsr_bench_methods.probe", False)
    assert {"gsr_bench.ops", "gsr_bench.method"} <= found and "gsr_bench.api" not in found


def test_the_example_plugins_and_the_builtins_import_only_the_api() -> None:
    """Third-party plugins learn the API from the examples and the built-ins: they use nothing
    else of the core."""
    folders = ("examples", "datasets", "methods")
    sources = [p for folder in folders for p in (ROOT / folder).rglob("*.py") if "build" not in p.parts]
    assert sources
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "gsr_bench":
                assert node.module == "gsr_bench.api", f"{path.relative_to(ROOT)}: from {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("gsr_bench."), f"{path.relative_to(ROOT)}: {alias.name}"

"""Plugin discovery: built-ins through entry points, failures isolated, lazy listing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from gsr_bench import MethodSpec, hookimpl
from gsr_bench.errors import UnknownNameError
from gsr_bench.plugins import PluginManager


def test_builtins_come_through_entry_points() -> None:
    pm = PluginManager()
    assert {"builtin_methods", "builtin_datasets"} <= set(pm.plugins)
    assert pm.plugins["builtin_methods"].distribution == "gsr-bench"
    assert {"nearest", "bilinear", "bicubic"} <= set(pm.methods.names())
    assert {"biomassters", "biomassters-synthetic"} <= set(pm.datasets.names())
    assert {"bicubic", "bilinear", "nearest", "msg-ng"} == set(pm.methods.names(family="sr"))
    assert {"msg", "fdsr"} <= set(pm.methods.names(family="gsr"))
    assert pm.methods.names("bi*") == ["bicubic", "bilinear"]
    assert not pm.failures


def test_unknown_method_suggests_close_names() -> None:
    pm = PluginManager()
    with pytest.raises(UnknownNameError, match="Did you mean 'bicubic'"):
        pm.methods.get("bicubc")


@pytest.mark.parametrize("what", [[], ["methods"], ["datasets"], ["protocols"]])
def test_listing_does_not_import_torch(what: list[str]) -> None:
    """The real ``gsr-bench list`` commands, each in a fresh process, import no torch (a
    protocol's validation used to, through the samplers' tier names: 1.5 s for a listing).
    Fails if any module on the listing path imports torch at module level."""
    code = (
        "import sys, runpy; sys.argv = ['gsr-bench', 'list', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('gsr_bench', run_name='__main__')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "print('torch imported' if 'torch' in sys.modules else 'no torch', file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code, *what], capture_output=True, text=True, check=True)
    assert out.stderr.strip().splitlines()[-1] == "no torch"
    assert {"": "method", "methods": "method", "datasets": "dataset", "protocols": "protocol"}[
        "".join(what)
    ] in out.stdout


class _Raising:
    @hookimpl
    def gsr_bench_register_methods(self, register):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")


class _Good:
    @hookimpl
    def gsr_bench_register_methods(self, register):  # type: ignore[no-untyped-def]
        register(MethodSpec("good-one", "sr", "1", "fine", "gsr_bench_methods.interpolation:Interpolation"))
        register(MethodSpec("bicubic", "sr", "9", "clash", "x:y"))


def test_list_warns_of_a_failed_plugin(
    plugin_manager: PluginManager, capsys: pytest.CaptureFixture[str]
) -> None:
    """A listing that lacks a plugin's methods says so (it exited 0 in silence)."""
    from gsr_bench.cli import main

    plugin_manager.register(_Raising(), "raising", "dist-a")
    assert main(["list", "methods"]) == 0
    out, err = capsys.readouterr()
    assert "bicubic" in out
    assert err.strip() == "warning: 1 plugin failure(s) (raising): `gsr-bench plugins` says what failed"


def test_failures_are_recorded_and_the_rest_loads() -> None:
    pm = PluginManager()
    pm.register(_Raising(), "raising", "dist-a")
    pm.register(_Good(), "good", "dist-b")
    assert "good-one" in pm.methods
    builtin = pm.methods.get("bicubic")  # the clash did not replace the built-in
    assert builtin.version != "9" and builtin.description != "clash"
    stages = {(f.plugin, f.distribution): f for f in pm.failures}
    assert "boom" in stages[("raising", "dist-a")].error
    assert "already registered" in stages[("good", "dist-b")].error


def test_only_selected_plugins_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GSR_BENCH_PLUGINS", "builtin_methods")
    pm = PluginManager()
    assert set(pm.plugins) == {"builtin_methods"}
    assert len(pm.datasets) == 0


@pytest.fixture(scope="module")
def broken_plugins(
    tmp_path_factory: pytest.TempPathFactory, pip_install_to: Callable[[Path, Path], Path]
) -> Path:
    """A real distribution with three broken plugins and one good one, pip-installed to a folder."""
    src = tmp_path_factory.mktemp("broken-src")
    pkg = src / "gsr_bench_broken"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "import_error.py").write_text("import not_a_module_anywhere\n")
    (pkg / "duplicate.py").write_text(
        textwrap.dedent("""
        from gsr_bench import MethodSpec, hookimpl
        @hookimpl
        def gsr_bench_register_methods(register):
            register(MethodSpec("nearest", "sr", "1", "dup", "x:y"))
    """)
    )
    (pkg / "raising.py").write_text(
        textwrap.dedent("""
        from gsr_bench import hookimpl
        @hookimpl
        def gsr_bench_register_datasets(register):
            raise ValueError("dataset hook exploded")
    """)
    )
    (pkg / "good.py").write_text(
        textwrap.dedent("""
        from gsr_bench import MethodSpec, hookimpl
        @hookimpl
        def gsr_bench_register_methods(register):
            register(MethodSpec("still-here", "sr", "1", "loads despite the others",
                                "gsr_bench_methods.interpolation:Interpolation", options={"mode": "nearest"}))
    """)
    )
    (src / "pyproject.toml").write_text(
        textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "gsr-bench-broken"
        version = "0.0.1"
        [project.entry-points.gsr_bench]
        a_import_error = "gsr_bench_broken.import_error"
        b_duplicate = "gsr_bench_broken.duplicate"
        c_raising = "gsr_bench_broken.raising"
        d_good = "gsr_bench_broken.good"
        [tool.setuptools]
        packages = ["gsr_bench_broken"]
    """)
    )
    return pip_install_to(src, tmp_path_factory.mktemp("broken-site"))


def test_broken_installed_plugins_are_reported_by_the_cli(broken_plugins: Path) -> None:
    env = {"PYTHONPATH": str(broken_plugins), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "gsr_bench", "plugins"],
        capture_output=True,
        text=True,
        env=env,
        cwd=broken_plugins,
    )
    assert out.returncode == 1  # failures are reported and the command says so, as `pip check`
    assert "plugin 'a_import_error' (gsr-bench-broken) failed at import: ModuleNotFoundError" in out.stderr
    # b_duplicate sorts before builtin_methods, yet the built-in keeps 'nearest' and the outside
    # registration is the one refused
    (dup,) = [line for line in out.stderr.splitlines() if "already registered" in line]
    assert dup.strip().startswith("plugin 'b_duplicate' (gsr-bench-broken)") and "'nearest'" in dup
    assert "plugin 'builtin_methods' (gsr-bench)" in dup  # the holder is the built-in
    assert "plugin 'c_raising' (gsr-bench-broken) failed at hook" in out.stderr
    assert "dataset hook exploded" in out.stderr
    assert "still-here" in out.stdout
    listing = subprocess.run(
        [sys.executable, "-m", "gsr_bench", "list", "methods"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=broken_plugins,
    )
    assert "still-here" in listing.stdout and "bicubic" in listing.stdout
    nearest = [line for line in listing.stdout.splitlines() if line.split()[:1] == ["nearest"]]
    assert nearest and "dup" not in nearest[0]  # the built-in's description, not the outsider's


def test_a_typo_in_a_factory_fails_in_one_line_before_any_run(
    workdir: Path, plugin_manager: PluginManager, capsys: pytest.CaptureFixture[str]
) -> None:
    from gsr_bench.cli import main

    class Typo:
        @hookimpl
        def gsr_bench_register_methods(self, register):  # type: ignore[no-untyped-def]
            register(MethodSpec("typo", "sr", "1", "misspelt factory", "gsr_bench_methods.interpolaton:X"))

    plugin_manager.register(Typo(), "typo-plugin", "tests")
    assert main(["run", "-m", "typo", "--protocol", "smoke", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "method 'typo'" in err and "'gsr_bench_methods.interpolaton:X' cannot be imported" in err
    assert "ModuleNotFoundError" in err and "Traceback" not in err
    assert not (workdir / "results" / "mlflow.db").exists()  # refused while planning: no run made
    # `gsr-bench plugins` finds it too, without running anything
    assert main(["plugins"]) == 1
    assert "method 'typo' of plugin 'typo-plugin'" in capsys.readouterr().err

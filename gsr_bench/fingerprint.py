"""Code fingerprints: which code a result was made with, independent of comments and formatting.

A method's version is a promise its author keeps by hand; the fingerprint checks it. It is the
digest of the normalized syntax tree of the module that holds the method's factory and of the
modules of the same distribution that this module imports (directly, at any depth of the file:
inside functions too). Comments, docstrings, blank lines and formatting do not count; any change
to a name, a constant or a statement does. The job key hashes it, so a method whose code changed
without a version bump is never reported with its old numbers.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from collections.abc import Callable
from functools import lru_cache
from importlib.metadata import distributions, packages_distributions
from pathlib import Path
from typing import Any

from gsr_bench.errors import GsrBenchError


def normalized_source(source: str, origin: str = "<source>") -> str:
    """The syntax tree of ``source`` without docstrings or positions, as text."""
    tree = ast.parse(source, origin)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            first = body[0].value if body and isinstance(body[0], ast.Expr) else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if node.level:
        base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        return f"{base}.{node.module}" if node.module else base
    return node.module or ""


def _imports_from(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, list[str]]]:
    """``(absolute module, names)`` of every ``from ... import`` in ``tree``, wherever it is."""
    package = module if is_package else module.rpartition(".")[0]
    return [
        (_absolute(node, package), [alias.name for alias in node.names])
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    ]


@lru_cache(maxsize=256)
def _rebound(module: str) -> dict[str, str]:
    """The names ``module`` binds by importing them (``from Y import a`` -> ``{a: Y}``): a
    facade such as ``gsr_bench.api`` re-exports names whose code lives in other modules."""
    found = _module_file(module)
    if found is None:
        return {}
    path, is_package = found
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _imports_from(ast.Module([node], []), module, is_package)[0][0]
            for alias in node.names:
                out[alias.asname or alias.name] = source
    return out


def _imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Absolute names of every module ``module`` imports, wherever the import statement is; a
    name taken from a module that only re-exports it counts as its defining module's."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    for target, imported in _imports_from(tree, module, is_package):
        rebound = _rebound(target) if _same_distribution(module, target) else {}
        for name in imported:
            names.add(rebound.get(name, target))
            names.add(f"{target}.{name}")  # ``from pkg import sub`` may name a submodule
    return names


@lru_cache(maxsize=1)
def _top_levels() -> dict[str, tuple[str, ...]]:
    """Top-level package -> distributions, from the ``top_level.txt`` most distributions have
    (0.08 s here, where ``packages_distributions`` reads every RECORD: 0.6 s a process)."""
    found: dict[str, list[str]] = {}
    for dist in distributions():
        for top in (dist.read_text("top_level.txt") or "").split():
            found.setdefault(top, []).append(dist.metadata["Name"])
    return {k: tuple(v) for k, v in found.items()}


@lru_cache(maxsize=1)
def _all_top_levels() -> dict[str, tuple[str, ...]]:
    return {k: tuple(v) for k, v in packages_distributions().items()}


def _same_distribution(module: str, other: str) -> bool:
    """Whether ``other`` is installed by a distribution that installs ``module`` (the same
    top-level package counts, installed or not)."""
    a, b = module.partition(".")[0], other.partition(".")[0]
    if a == b:
        return True
    table = _top_levels() if a in _top_levels() else _all_top_levels()
    return bool(set(table.get(a, ())) & set(table.get(b, ())))


def _module_file(name: str) -> tuple[Path, bool] | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin), spec.submodule_search_locations is not None


def module_fingerprint(module: str) -> dict[str, str]:
    """``{module: digest}`` of ``module`` and the modules of its distribution it imports."""
    found = _module_file(module)
    if found is None:
        raise GsrBenchError(f"cannot fingerprint module {module!r}: no Python source found for it")
    path, is_package = found
    source = path.read_text(encoding="utf-8")
    digests = {module: hashlib.sha256(normalized_source(source, str(path)).encode()).hexdigest()}
    for name in sorted(_imported(ast.parse(source), module, is_package)):
        if name == module or not _same_distribution(module, name):
            continue
        dep = _module_file(name)
        if dep is not None:
            text = dep[0].read_text(encoding="utf-8")
            digests[name] = hashlib.sha256(normalized_source(text, str(dep[0])).encode()).hexdigest()
    return digests


def factory_module(factory: str | Callable[..., Any]) -> str:
    if isinstance(factory, str):
        return factory.partition(":")[0]
    return str(getattr(factory, "__module__", "") or "")


def _fingerprint(module: str) -> str:
    parts = module_fingerprint(module)
    text = "\n".join(f"{name} {digest}" for name, digest in sorted(parts.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def code_fingerprint(factory: str | Callable[..., Any]) -> str:
    """The 16-digit fingerprint of a factory's code (see the module docstring).

    A factory defined in ``__main__`` or without a source file has none: ``""``.
    """
    module = factory_module(factory)
    if not module or module == "__main__" or _module_file(module) is None:
        return ""
    return _fingerprint(module)

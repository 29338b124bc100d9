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


def _imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Absolute names of every module ``module`` imports, wherever the import statement is."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            names.add(target)
            # ``from pkg import sub`` may name a submodule
            names.update(f"{target}.{alias.name}" for alias in node.names)
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

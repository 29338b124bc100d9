"""A built-in method's code cannot change under an unchanged version (CI fails here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_builtin_code_matches_its_version() -> None:
    committed = json.loads((ROOT / "methods" / "fingerprints.json").read_text())
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from fingerprints import builtin_fingerprints
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    now = builtin_fingerprints()
    assert set(now) == set(committed), "a built-in was added or removed: python scripts/fingerprints.py"
    changed = [n for n in now if now[n]["version"] == committed[n]["version"] and now[n] != committed[n]]
    assert not changed, (
        f"code of {', '.join(changed)} changed under the same version: bump it in methods/plugin.py "
        "(_VERSIONS), then run python scripts/fingerprints.py"
    )
    bumped = [n for n in now if now[n]["version"] != committed[n]["version"]]
    assert not bumped, (
        f"{', '.join(bumped)} bumped: record the new fingerprint (python scripts/fingerprints.py)"
    )


def test_the_fingerprint_ignores_comments_and_docstrings_not_code(tmp_path: Path) -> None:
    from gsr_bench.fingerprint import code_fingerprint

    package = tmp_path / "fp_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helper.py").write_text("SCALE = 2\n")
    source = '"""A method."""\nfrom fp_pkg import helper\n\n\ndef make(task):\n    return helper.SCALE * 3\n'
    method = package / "method.py"
    method.write_text(source)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from gsr_bench.fingerprint import code_fingerprint; print(code_fingerprint('fp_pkg.method:make'))"
    )

    def fingerprint() -> str:  # a fresh process: nothing cached between edits
        out = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    first = fingerprint()
    assert len(first) == 16
    method.write_text(source.replace('"""A method."""', '"""Another text."""  # a comment') + "\n\n# end\n")
    assert fingerprint() == first  # comments, docstrings, blank lines: the same code
    method.write_text(source.replace("* 3", "* 4"))
    assert fingerprint() != first  # one character of code
    method.write_text(source)
    assert fingerprint() == first
    (package / "helper.py").write_text("SCALE = 3\n")  # a module of the same package it imports
    assert fingerprint() != first
    assert code_fingerprint("__main__:make") == ""  # no module file to read: no fingerprint

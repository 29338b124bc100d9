"""Write methods/fingerprints.json: each built-in method's version and code fingerprint.

Run it after bumping a method's version (tests/methods/test_fingerprints.py says when):

    python scripts/fingerprints.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gsr_bench.fingerprint import code_fingerprint
from gsr_bench.plugins import get_plugin_manager

FILE = Path(__file__).resolve().parent.parent / "methods" / "fingerprints.json"


def builtin_fingerprints() -> dict[str, dict[str, str]]:
    pm = get_plugin_manager()
    specs = [pm.methods.get(n) for n in pm.methods.names()]
    return {
        s.name: {"version": s.version, "code": code_fingerprint(s.factory)}
        for s in specs
        if s.distribution == "gsr-bench"
    }


def main() -> int:
    FILE.write_text(json.dumps(builtin_fingerprints(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {FILE.name}: {len(builtin_fingerprints())} built-in methods")
    return 0


if __name__ == "__main__":
    sys.exit(main())

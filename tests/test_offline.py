"""Nothing contacts the internet at run time: a run's every socket stays on the loopback.

The CLI runs in a fresh process whose Python audit hook records each ``socket.getaddrinfo`` and
``socket.connect`` (real events of the interpreter, not a patched library), with none of the
environment variables by which MLflow guesses it runs in CI or under pytest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HOOK = """
import json, sys
log = open(sys.argv.pop(1), "a")
def audit(event, args):
    if event == "socket.getaddrinfo":
        log.write(json.dumps(["lookup", str(args[0])]) + "\\n"); log.flush()
    elif event == "socket.connect":
        log.write(json.dumps(["connect", str(args[1])]) + "\\n"); log.flush()
sys.addaudithook(audit)
from gsr_bench.cli import main
sys.exit(main(sys.argv[1:]))
"""
LOCAL = ("127.", "::1", "localhost", "None", "/")


def test_a_run_opens_no_connection_outside_the_loopback(tmp_path: Path, shared_cache: Path) -> None:
    log = tmp_path / "sockets.jsonl"
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("CI", "PYTEST_CURRENT_TEST", "GITHUB_ACTIONS", "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")
    }
    env["GSR_BENCH_CACHE"] = str(shared_cache)
    args = ["run", "-m", "bicubic", "--protocol", "smoke", "-q"]
    done = subprocess.run(
        [sys.executable, "-c", HOOK, str(log), *args], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    events = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    outside = [e for e in events if not any(e[1].startswith(p) or e[1].startswith(f"('{p}") for p in LOCAL)]
    assert not outside, f"connections outside the loopback: {outside[:5]}"

"""``scripts/gpu_check.py --scale`` runs end to end on a CPU at a tiny size, so it cannot rot
before the next session with a GPU runs it for real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


def test_scale_check_dry_run_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    args = [
        "--scale", "--device", "cpu", "--chips", "6", "--steps", "2", "--batch", "2",
        "--p2p-tiles", "1", "--p2p-iterations", "2", "--cache", str(tmp_path / "cache"),
        "--bench-methods", "bicubic", "--results", str(tmp_path / "results"), "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for line in (
        "store first read",
        "msg: train",
        "waiting for data",
        "of bf16 peak",
        "p2p:",
        "bench rates saved",
    ):
        assert line in done.stdout, line
    report = json.loads(out.read_text())
    assert report["msg"]["train_tiles_s"] > 0 and 0 <= report["fdsr"]["data_wait_share"] < 1
    assert report["p2p"]["gflop_per_tile_iteration"] > 1  # 3,200 pixels through a 0.2 M-weight MLP
    assert list((tmp_path / "results" / "bench").glob("*.json"))

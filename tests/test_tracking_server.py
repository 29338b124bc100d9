"""Against a real MLflow tracking server on 127.0.0.1: runs, artifacts and the leaderboard."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from gsr_bench.cli import main


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db, artifacts = tmp_path / "server.db", tmp_path / "artifacts"
    mlflow = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [
            str(mlflow),
            "server",
            "--backend-store-uri",
            f"sqlite:///{db}",
            "--artifacts-destination",
            str(artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    # ready when it answers; a server that cannot start exits (its start-up time is the machine's)
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        assert proc.poll() is None, "mlflow server exited"
        time.sleep(0.5)
    try:
        yield url, db, artifacts
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_run_and_leaderboard_against_a_server(workdir: Path, server) -> None:  # type: ignore[no-untyped-def]
    url, db, artifacts = server
    assert (
        main(
            [
                "run",
                "-m",
                "nearest",
                "-m",
                "bicubic",
                "--protocol",
                "smoke",
                "--publish",
                "-q",
                "--tracking-uri",
                url,
            ]
        )
        == 0
    )
    with sqlite3.connect(db) as con:
        assert con.execute("select count(*) from runs where status = 'FINISHED'").fetchone()[0] == 2
    assert len(list(artifacts.rglob("tiles.npz"))) == 2  # uploaded through the server
    assert not (workdir / "results" / "mlflow.db").exists()
    table = pd.read_csv(workdir / "leaderboard" / "results.csv")
    assert set(table["method"]) == {"nearest", "bicubic"}
    assert (
        workdir / "leaderboard" / "figures" / "biomassters-synthetic_smoke_tiles.png"
    ).stat().st_size > 10_000
    # A second run skips against the server as against SQLite.
    assert (
        main(
            [
                "run",
                "-m",
                "nearest",
                "--protocol",
                "smoke",
                "--publish",
                "-q",
                "--tracking-uri",
                url,
                "--no-leaderboard",
            ]
        )
        == 0
    )
    with sqlite3.connect(db) as con:
        assert con.execute("select count(*) from runs").fetchone()[0] == 2

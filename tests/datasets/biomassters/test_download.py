"""``gsr-bench data download`` against a real S3 API on 127.0.0.1 (moto's server), never the
internet: selection, verification, retries, resume after SIGKILL, and the bad-input lines."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gsr_bench.cli import main
from gsr_bench_datasets.biomassters.layout import BioMasstersLayout, month_index
from gsr_bench_datasets.biomassters.selection import parse_months, parse_sensors, sample_chips


def _download(root: Path, url: str, bucket: str, *extra: str) -> list[str]:
    return ["data", "download", "--root", str(root), "--endpoint-url", url, "--bucket", bucket, "-q", *extra]


def _cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "gsr_bench", *args], capture_output=True, text=True, env=full_env, timeout=600
    )


def _manifest(root: Path) -> dict[str, Any]:
    return json.loads((root / "download.json").read_text())


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_chip_sample_is_seeded_nested_and_independent_of_order() -> None:
    """A sample drawn from the metadata's order would change with the listing; a fresh draw per
    N would throw away what a smaller sample already downloaded."""
    ids = [f"{i:08x}" for i in range(500)]
    shuffled = random.Random(1).sample(ids, len(ids))
    assert sample_chips(ids, 20, 0, "train") == sample_chips(shuffled, 20, 0, "train")
    assert set(sample_chips(ids, 20, 0, "train")) < set(sample_chips(ids, 21, 0, "train"))
    assert sample_chips(ids, 20, 0, "train") != sample_chips(ids, 20, 1, "train")
    assert parse_months("leafon") == (7, 8, 9, 10, 11)
    assert parse_months("0, May,aug") == (0, 8, 11)
    assert parse_sensors("s2") == ("S2",) and parse_sensors("none") == ()


def test_subset_downloads_verified_checks_clean_and_runs(
    local_s3: Any, synth_bucket: str, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "bio"
    base = _download(root, local_s3.url, synth_bucket, "--chips", "3", "--months", "leafon")
    assert main([*base, "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "train  S1" in dry and "test   agbm" in dry and not (root / "train_features").exists()

    assert main(base) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    manifest = _manifest(root)
    layout = BioMasstersLayout(root)
    chips = {s: [c.chip_id for c in layout.chips(s)] for s in ("train", "test")}
    source = BioMasstersLayout(synth_root)
    assert chips["train"] == sample_chips([c.chip_id for c in source.chips("train")], 3, 0, "train")
    assert len(chips["test"]) == 3
    months = {m for c in layout.chips() for m in (*c.s1, *c.s2)}
    assert months <= {7, 8, 9, 10, 11}
    n_files = sum(len(c.s1) + len(c.s2) + 1 for c in layout.chips())
    assert manifest["selected"] == manifest["downloaded"] == n_files and not manifest["failed"]
    # every file by size and MD5 (single-part ETags), and by the metadata's cksum where it has
    # one: all but the 3 test labels (no test label metadata in the bucket, as in the official)
    assert manifest["verified_by"] == {"size": n_files, "md5": n_files, "cksum": n_files - 3}
    assert manifest["complete"] and str(tmp_path) not in json.dumps(manifest)
    assert f"{n_files} downloaded" in out
    # the root's metadata lists the selection only, so its content revision names the subset
    assert {r["chip_id"] for r in _rows(root / "train_agbm_metadata.csv")} == set(chips["train"])
    assert layout.content_digest() != source.content_digest()
    for chip in layout.chips():
        for file in chip.s1.values():
            assert (root / f"{chip.split}_features" / file.filename).read_bytes() == (
                synth_root / f"{chip.split}_features" / file.filename
            ).read_bytes()

    # a rerun fetches nothing; data check is clean; a real run reads the subset
    assert main(base) == 0
    again = _manifest(root)
    assert (again["downloaded"], again["present"], again["fetched_bytes"]) == (0, n_files, 0)
    capsys.readouterr()
    assert main(["data", "check", "--root", str(root)]) == 0, capsys.readouterr().out
    # quick, the protocol a CPU runs on real data, takes a downloaded subset as it is
    out = ["--results", str(tmp_path / "results"), "--leaderboard", str(tmp_path / "board")]
    run = _cli(
        ["run", "-m", "bicubic", "-d", "biomassters", "--root", str(root), "--protocol", "quick", "-q", *out]
    )
    assert run.returncode == 0, run.stderr[-2000:]
    table = (tmp_path / "board" / "results.csv").read_text().splitlines()
    assert len(table) == 2 and ",bicubic," in table[1]


def test_retries_resume_and_verification_failures(
    local_s3: Any, synth_bucket: str, fault_proxy: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 500 is retried, a body cut mid-file is resumed with a range request, wrong bytes are
    caught by the MD5 and fetched again; a file wrong twice is reported, the rest goes on, and
    the rerun fetches only that file."""
    root = tmp_path / "bio"
    base = _download(root, fault_proxy.url, synth_bucket, "--split", "train", "--chips", "2", "--months", "8")
    base += ["--sensors", "S2", "--workers", "2"]
    assert main([*base, "--dry-run"]) == 0  # fetches the metadata, to name the faulty files
    capsys.readouterr()
    keys = sorted(
        f"train_features/{r['filename']}"
        for r in _rows(root / ".download" / "features_metadata.csv")
        if r["split"] == "train" and r["satellite"] == "S2" and month_index(r["month"], "") == 8
    )
    chosen = sample_chips([k.split("/")[1][:8] for k in keys], 2, 0, "train")
    s2 = [k for k in keys if k.split("/")[1][:8] in chosen]
    labels = [f"train_agbm/{c}_agbm.tif" for c in chosen]
    fault_proxy.faults.update(
        {s2[0]: ["500"], s2[1]: ["cut"], labels[0]: ["corrupt"], labels[1]: ["corrupt", "corrupt"]}
    )
    assert main(base) == 1
    out = capsys.readouterr().out
    manifest = _manifest(root)
    # one retry each for the 500 and the cut body; three MD5 failures: one then right, two wrong
    assert manifest["retries"] == 2 and manifest["resumed"] == 1 and manifest["verify_failures"] == 3
    assert [f["key"] for f in manifest["failed"]] == [labels[1]]
    assert "MD5" in manifest["failed"][0]["problem"] and f"{labels[1]}: MD5" in out
    ranged = [r for m, k, r in fault_proxy.log if k == s2[1] and r]
    assert len(ranged) == 1 and ranged[0] != "bytes=0-"
    assert not (root / labels[1]).exists() and not list(root.rglob("*.part"))

    start = len(fault_proxy.log)
    assert main(base) == 0
    assert [k for k in fault_proxy.gets(start) if not k.endswith(".csv")] == [labels[1]]
    assert _manifest(root)["downloaded"] == 1
    # the metadata was fetched whole once; the two runs after the dry run only checked its ETag
    metadata = [r for m, k, r in fault_proxy.log if k == "features_metadata.csv"]
    assert metadata == ["", "bytes=0-0", "bytes=0-0"]


@pytest.mark.slow
def test_killed_download_resumes_without_fetching_anything_twice(
    local_s3: Any, synth_bucket: str, fault_proxy: Any, tmp_path: Path
) -> None:
    """SIGKILL right after the 5th verified file (GSR_BENCH_KILL_AT=download:5, not a timer):
    the rerun completes, every file verified, and fetches none of those already complete."""
    root = tmp_path / "bio"
    args = _download(
        root, fault_proxy.url, synth_bucket, "--split", "train", "--months", "7,8", "--workers", "4"
    )
    killed = _cli(args, {"GSR_BENCH_KILL_AT": "download:5"})
    assert killed.returncode == -9
    logged = [
        json.loads(line)["key"] for line in (root / ".download" / "verified.jsonl").read_text().splitlines()
    ]
    assert len(logged) == 5 and not (root / "download.json").exists()
    start = len(fault_proxy.log)
    rerun = _cli(args)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert not set(fault_proxy.gets(start)) & set(logged)
    manifest = _manifest(root)
    assert manifest["present"] >= 5 and manifest["present"] + manifest["downloaded"] == manifest["selected"]
    assert not manifest["failed"] and not list(root.rglob("*.part"))
    assert _cli(["data", "check", "--root", str(root)]).returncode == 0


def test_bad_input_is_one_line(
    local_s3: Any, synth_bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "bio"
    cases = [
        (
            _download(root, "http://127.0.0.1:9", synth_bucket, "--retries", "1"),
            "http://127.0.0.1:9: cannot reach",
        ),
        (_download(root, local_s3.url, "no-such-bucket"), "s3://no-such-bucket at"),
        (
            _download(root, local_s3.url, synth_bucket, "--chips", "99"),
            "--chips 99: the train split has 9 chips",
        ),
        (
            _download(root, local_s3.url, synth_bucket, "--months", "Smarch"),
            "unknown month 'Smarch'; use leafon",
        ),
        (
            _download(root, local_s3.url, synth_bucket, "--sensors", "S3"),
            "unknown sensor S3; valid: S1, S2, none",
        ),
    ]
    for args, message in cases:
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
        assert "Traceback" not in err[0]

    # a second download into the same root refuses while the first holds it
    from filelock import FileLock

    with FileLock(root / ".download.lock"):
        assert main(_download(root, local_s3.url, synth_bucket, "--dry-run")) == 2
    assert "another gsr-bench data download is writing into this folder" in capsys.readouterr().err

    # files that are not in the selection are left as they are, and said to be
    (root / "train_features").mkdir(parents=True, exist_ok=True)
    stray = root / "train_features" / "ffffffff_S1_00.tif"
    stray.write_bytes(b"mine")
    assert main(_download(root, local_s3.url, synth_bucket, "--split", "test", "--sensors", "none")) == 0
    assert stray.read_bytes() == b"mine"
    assert "1 file(s) under" in capsys.readouterr().out


def test_rerun_checks_unlogged_files_and_completes_whole_parts(
    local_s3: Any, synth_bucket: str, fault_proxy: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Files that the verified log does not vouch for are checked against the server (a one-byte
    GET, not a HEAD: a HEAD needs a permission of its own on some servers), a wrong one is
    fetched again; a `.part` that is already whole is verified without fetching it again."""
    root = tmp_path / "bio"
    args = _download(
        root, fault_proxy.url, synth_bucket, "--split", "test", "--sensors", "S1", "--months", "0"
    )
    assert main(args) == 0
    files = sorted(p.relative_to(root).as_posix() for p in root.glob("test_*/*.tif"))
    assert len(files) == 6  # three S1 images of September, three labels
    (root / ".download" / "verified.jsonl").unlink()
    whole = root / files[0]
    whole.rename(whole.with_name(whole.name + ".part"))
    wrong = root / files[1]
    wrong.write_bytes(wrong.read_bytes()[::-1])
    start = len(fault_proxy.log)
    assert main(args) == 0, capsys.readouterr()
    manifest = _manifest(root)
    assert (manifest["present"], manifest["downloaded"], manifest["verify_failures"]) == (5, 1, 1)
    assert manifest["fetched_bytes"] == wrong.stat().st_size
    ranges = {k: r for m, k, r in fault_proxy.log[start:] if m == "GET" and k.endswith(".tif")}
    assert ranges[files[0]] == "bytes=0-0" and not list(root.rglob("*.part"))
    assert all(m == "GET" for m, _, _ in fault_proxy.log)


def test_a_file_missing_from_the_bucket_is_one_line_and_the_rest_lands(
    local_s3: Any, synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The metadata lists a file the bucket does not hold: that file is reported in one line
    naming its key, the others are downloaded and verified, and the status is 1."""
    chip = BioMasstersLayout(synth_root).chips("train")[0]
    image = f"train_features/{chip.s2[8].filename}"
    label = f"train_agbm/{chip.agbm}"
    local_s3.publish(synth_root, "synth-missing", only=(label,))
    ids = tmp_path / "ids.txt"
    ids.write_text(chip.chip_id + "\n")
    args = _download(
        tmp_path / "bio", local_s3.url, "synth-missing", "--chip-ids", str(ids), "--split", "train"
    )
    assert main([*args, "--months", "8", "--sensors", "S2"]) == 1
    out = capsys.readouterr().out
    assert f"  {image}: NoSuchKey: " in out and "1 downloaded" in out and "1 failed" in out
    assert (tmp_path / "bio" / label).is_file() and not (tmp_path / "bio" / image).exists()

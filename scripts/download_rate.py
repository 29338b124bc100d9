"""What the parallel transfers of ``gsr-bench data download`` buy: its rate against a plain loop
of single-file GETs with the same client, in one process, from a local S3 server (moto), both
direct and behind a proxy that adds a round trip per request, as a distant bucket has.

    python scripts/download_rate.py --chips 20 --latency 0.03

The files have the official sizes (S1 1,049,524 B, S2 1,443,550 B, label 262,482 B) and random
bytes; the selection is the leaf-on months of every chip. Needs the dev extra (moto).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from gsr_bench.api import posix_cksum
from gsr_bench_datasets.biomassters.download import Source, download
from gsr_bench_datasets.biomassters.layout import LEAF_ON_MONTHS, MONTHS
from gsr_bench_datasets.biomassters.selection import Selection
from gsr_bench_datasets.biomassters.transfer import make_client

SIZES = {"S1": 1_049_524, "S2": 1_443_550, "agbm": 262_482}
SERVERS = Path(__file__).resolve().parents[1] / "tests" / "datasets" / "biomassters" / "conftest.py"


def _servers() -> Any:
    spec = importlib.util.spec_from_file_location("local_s3", SERVERS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_release(folder: Path, chips: int, seed: int = 0) -> None:
    """Random files of the official sizes and their metadata, in the official layout."""
    rng = np.random.default_rng(seed)
    (folder / "train_features").mkdir(parents=True)
    (folder / "train_agbm").mkdir()
    features = ["filename,chip_id,satellite,split,month,size,cksum,corresponding_agbm"]
    labels = ["filename,chip_id,size,cksum"]
    for i in range(chips):
        chip = f"{i:08x}"
        for month in LEAF_ON_MONTHS:
            for sensor in ("S1", "S2"):
                name = f"{chip}_{sensor}_{month:02d}.tif"
                data = rng.bytes(SIZES[sensor])
                (folder / "train_features" / name).write_bytes(data)
                features.append(
                    f"{name},{chip},{sensor},train,{MONTHS[month]},{len(data)},{posix_cksum(data)},{chip}_agbm.tif"
                )
        data = rng.bytes(SIZES["agbm"])
        (folder / "train_agbm" / f"{chip}_agbm.tif").write_bytes(data)
        labels.append(f"{chip}_agbm.tif,{chip},{len(data)},{posix_cksum(data)}")
    (folder / "features_metadata.csv").write_text("\n".join(features) + "\n")
    (folder / "train_agbm_metadata.csv").write_text("\n".join(labels) + "\n")


def plain_loop(url: str, bucket: str, keys: list[str], out: Path) -> float:
    """One GET after the other, each body written to a file: seconds."""
    client = make_client(url, "us-east-1", 1)
    started = time.perf_counter()
    for key in keys:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        path = out / key
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            for chunk in body.iter_chunks(1 << 20):
                f.write(chunk)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chips", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.03, help="seconds the proxy adds per request")
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    servers = _servers()
    tmp = Path(tempfile.mkdtemp(prefix="download-rate-"))
    try:
        fake_release(tmp / "release", args.chips)
        s3 = servers.LocalS3()
        keys = [k for k in s3.publish(tmp / "release", "rate-test") if k.endswith(".tif")]
        total = sum((tmp / "release" / k).stat().st_size for k in keys)
        proxy = servers.FaultProxy(s3.url)
        proxy.latency = args.latency
        print(
            f"{len(keys)} files, {total / 1e6:.0f} MB; {args.workers} workers; "
            f"the proxy adds {args.latency * 1e3:.0f} ms a request"
        )
        print(f"{'server':<28} {'plain loop':>22} {'download':>22} {'ratio':>6}")
        for label, url in (("local (moto)", s3.url), (f"+{args.latency * 1e3:.0f} ms a request", proxy.url)):
            loop = plain_loop(url, "rate-test", keys, tmp / f"loop-{len(label)}")
            root = tmp / f"download-{len(label)}"
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # the command's own table and summary
                source = Source(bucket="rate-test", endpoint_url=url)
                status = download(root, Selection(splits=("train",)), source, args.workers, progress=False)
            seconds = time.perf_counter() - started
            assert status == 0
            rates = [f"{len(keys) / s:5.1f} files/s {total / 1e6 / s:5.1f} MB/s" for s in (loop, seconds)]
            print(f"{label:<28} {rates[0]:>22} {rates[1]:>22} {loop / seconds:5.2f}x")
        proxy.close()
        s3.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

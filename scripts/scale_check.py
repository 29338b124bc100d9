"""The paper-scale check of ``scripts/gpu_check.py --scale`` (see its docstring).

Everything is printed as it is measured, so a run cut short still reports what it got.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from gsr_bench.data.prepare import prepare_split
from gsr_bench.data.samplers import BatchSampler
from gsr_bench.data.tiles import open_prepared
from gsr_bench.evaluate import evaluate, task_info
from gsr_bench.method import TorchMethod
from gsr_bench.ops import synchronize
from gsr_bench.plugins import get_plugin_manager
from gsr_bench.protocol import Degradation, load_protocol
from gsr_bench.training import TrainContext, configure_device, train_method
from gsr_bench_datasets.biomassters.dataset import BioMassters
from gsr_bench_datasets.biomassters.synth import synthesize


def say(*parts: object) -> None:
    print(*parts, flush=True)


def forward_flops_per_pixel(method: TorchMethod, device: torch.device) -> float:
    """FLOPs of one forward pass per output pixel at 250 x 250 (torch's FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    guide = torch.randn(1, method.task.in_channels, 250, 250, device=device)
    source = torch.rand(1, 1, 25, 25, device=device) * 300
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        method.forward(guide, source)
    return counter.get_total_flops() / (250 * 250)


def data(args: argparse.Namespace) -> tuple[BioMassters, Path, Path]:
    folder = Path(args.cache)
    root = folder / f"synth-{args.chips}"
    test_chips = max(4, args.chips // 20)
    workers = os.cpu_count() or 1
    if not (root / "features_metadata.csv").exists():
        start = time.perf_counter()
        synthesize(root, args.chips, seed=0, test_chips=test_chips, workers=workers, progress=False)
        seconds = time.perf_counter() - start
        say(f"data synth: {args.chips + test_chips} chips in {seconds:.0f} s on {workers} processes")
    dataset, paths = BioMassters(str(root)), []
    for split in ("train", "test"):
        out = folder / f"prepared-{args.chips}-{split}.h5"
        if not out.exists():
            start = time.perf_counter()
            prepare_split(dataset, split, out, 250, workers=workers, progress=False)
            n = args.chips if split == "train" else test_chips
            rate = n / (time.perf_counter() - start)
            say(
                f"data prepare {split}: {rate:.0f} chips/s on {workers} processes "
                f"({rate / workers:.1f} per core)"
            )
        paths.append(out)
    return dataset, paths[0], paths[1]


def train_check(name: str, args: argparse.Namespace, splits: Any, device: torch.device) -> dict[str, float]:
    pm = get_plugin_manager()
    cuda = device.type == "cuda"
    protocol = load_protocol("paper").with_overrides(
        {
            "train.steps": args.steps,
            "train.batch_size": args.batch,
            "train.val_every": 10**9,
            "train.log_every": 10**9,
            "train.warmup_steps": 0,
            "loader.tier": "device",
            "device.bf16": cuda,
            "device.channels_last": cuda,
            "device.compile": cuda,
        }
    )
    torch.manual_seed(0)
    method = pm.methods.get(name).create(task_info(splits, 250)).to(device)
    assert isinstance(method, TorchMethod)
    fpp = forward_flops_per_pixel(method, device)
    ctx = TrainContext(
        protocol.train, 0, device, f"scale-{name}", None, False, protocol.device, protocol.loader
    )
    configure_device(method, ctx)
    warm = TrainContext(
        protocol.with_overrides({"train.steps": 3}).train,
        0,
        device,
        "",
        None,
        False,
        protocol.device,
        protocol.loader,
    )
    start = time.perf_counter()
    train_method(method, splits.train, splits.val, warm)  # compiles and loads the split to the device
    say(f"{name}: warm-up (compile, split to device) {time.perf_counter() - start:.0f} s")
    out = train_method(method, splits.train, splits.val, ctx)
    tiles_s = out["train_tiles_s"]
    sampler = BatchSampler(splits.train, protocol.train, protocol.loader, 0, device)
    list(sampler.batches(0, 2))
    synchronize(device)
    start = time.perf_counter()
    for _ in sampler.batches(0, 10):
        pass
    synchronize(device)
    sampler_tiles_s = 10 * args.batch / (time.perf_counter() - start)
    metrics, _ = evaluate(method, splits.test, args.batch, device, splits.info.bins)
    infer = metrics["throughput_mpix_s"]
    peak = args.peak_tflops * 1e12
    report = {
        "forward_mflop_per_pixel": fpp / 1e6,
        "train_tiles_s": tiles_s,
        "data_wait_share": out["data_wait_share"],
        "sampler_tiles_s": sampler_tiles_s,
        "sampler_share_of_step": tiles_s / sampler_tiles_s,
        "train_peak_fraction": tiles_s * 62500 * 3 * fpp / peak,
        "infer_mpix_s": infer,
        "infer_peak_fraction": infer * 1e6 * fpp / peak,
        "test_rmse": metrics["rmse"],
    }
    say(
        f"{name}: train {tiles_s:.3g} tiles/s (batch {args.batch} x 250 px), waiting for data "
        f"{out['data_wait_share']:.1%} of the loop; sampler alone {sampler_tiles_s:.0f} tiles/s "
        f"({report['sampler_share_of_step']:.1%} of a step); {report['train_peak_fraction']:.1%} of bf16 "
        f"peak in training; inference {infer:.3g} Mpix/s = {report['infer_peak_fraction']:.1%} of peak"
    )
    return report


def p2p_check(args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    from torch.utils.flop_counter import FlopCounterMode

    from gsr_bench_methods.p2p import fit_predict

    g = torch.Generator().manual_seed(0)
    tiles = args.p2p_tiles
    guide = torch.randn(tiles, 14, 250, 250, generator=g).to(device)
    source = (torch.rand(tiles, 1, 25, 25, generator=g) * 300).to(device)
    counts = []
    for iterations in (1, 3):
        with FlopCounterMode(display=False) as counter:
            fit_predict(guide[:1], source[:1], 10, [0], iterations)
        counts.append(counter.get_total_flops())
    per_iteration = (counts[1] - counts[0]) / 2  # one tile
    fit_predict(guide, source, 10, list(range(tiles)), 8)
    synchronize(device)
    start = time.perf_counter()
    fit_predict(guide, source, 10, list(range(tiles)), args.p2p_iterations)
    synchronize(device)
    seconds = time.perf_counter() - start
    tflops = per_iteration * tiles * args.p2p_iterations / seconds / 1e12
    full = 2773 / tiles * seconds * 32768 / args.p2p_iterations
    say(
        f"p2p: {args.p2p_iterations * tiles / seconds:,.0f} tile-iterations/s ({tiles} tiles at once), "
        f"{tflops:.2f} TFLOP/s = {tflops * 1e12 / (args.peak_tflops * 1e12):.1%} of bf16 peak; "
        f"2,773 test tiles x 32,768 iterations: {full / 3600:.1f} h"
    )
    return {
        "tflops": tflops,
        "gflop_per_tile_iteration": per_iteration / 1e9,
        "paper_test_hours": full / 3600,
    }


def scale_check(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    started = time.perf_counter()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    say(f"scale check on {name}, torch {torch.__version__}")
    dataset, train_h5, test_h5 = data(args)
    splits = open_prepared(dataset, train_h5, test_h5, 250, Degradation(), (0, 32, 4 * args.batch))
    start = time.perf_counter()
    arrays = splits.train.read_arrays(range(min(len(splits.train), 200)))
    say(f"store first read: {len(arrays.target) / (time.perf_counter() - start):.0f} tiles/s")
    report: dict[str, Any] = {"device": name, "torch": torch.__version__}
    for method in args.methods:
        report[method] = train_check(method, args, splits, device)
    report["p2p"] = p2p_check(args, device)
    if not args.no_bench:
        from gsr_bench import bench

        timings = bench.measure(
            get_plugin_manager(),
            list(args.bench_methods),
            device,
            batch=8,
            repeats=3,
            train_batch=8,
            train_patch=120,
        )
        path = bench.save(timings, Path(args.results) / "bench")
        say(f"bench rates saved to {path} (gsr-bench estimate --device '{name}')")
    say(f"scale check done in {time.perf_counter() - started:.0f} s")
    Path(args.out).write_text(json.dumps(report, indent=2, default=float))
    return report

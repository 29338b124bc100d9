"""GPU check for the learned methods: a short CUDA training run of each on synthetic BioMassters
(the quick protocol, ResNeXt at the paper's full width), then inference throughput at 250 x 250,
fp32 and bf16, after warm-up and synchronized. Meant to take a few minutes on one GPU::

    python scripts/gpu_check.py --steps 300 --out gpu_check.json

``--scale`` checks the paper-scale data path instead (at most 8 minutes on one GPU): a synthetic
BioMassters of ``--chips`` train chips (generated once, reused), MSG and FDSR trained at the paper
protocol's batch and patch from the device-resident store (bf16, channels_last, torch.compile),
printing training tiles/s, the share of time spent waiting for data, inference Mpix/s and the
fraction of the bf16 peak by FLOP counts, then P2P's TFLOP/s; it saves bench rates for
``gsr-bench estimate``::

    python scripts/gpu_check.py --scale --chips 2000 --steps 150 --cache /tmp/gsr-scale

GSR4B's Mpix/s on its GPU: MSG 53.2, FDSR 240.8, MSG^ng 116.8, U-Net 19.0, ResNeXt 0.8.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from gsr_bench.bench import median_seconds, predict_call
from gsr_bench.evaluate import evaluate, task_info
from gsr_bench.plugins import get_plugin_manager
from gsr_bench.protocol import load_protocol
from gsr_bench.training import TrainContext
from gsr_bench.training import fit as train


def throughput(method, device: torch.device, bf16: bool, batch: int = 32, iters: int = 10) -> float:  # type: ignore[no-untyped-def]
    """Mpix/s of ``method`` timed as `gsr-bench bench` times it (gsr_bench.bench)."""
    guide = torch.randn(batch, method.task.in_channels, 250, 250, device=device)
    source = torch.rand(batch, 1, 25, 25, device=device) * 300
    method.autocast = bf16
    seconds = median_seconds(predict_call(method, guide, source, device), iters, warmup=3)
    return batch * 250 * 250 / seconds / 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", action="store_true", help="the paper-scale data path check")
    parser.add_argument("--chips", type=int, default=2000, help="--scale: synthetic train chips")
    parser.add_argument("--cache", default="/tmp/gsr-bench-scale", help="--scale: data folder, reused")
    parser.add_argument("--device", default="cuda", help="--scale: cuda, or cpu for a dry run")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak (H100/H200: 989)")
    parser.add_argument("--batch", type=int, default=32, help="--scale: tiles a step (paper: 32)")
    parser.add_argument("--p2p-tiles", type=int, default=64, help="--scale: P2P tiles fitted at once")
    parser.add_argument("--p2p-iterations", type=int, default=256, help="--scale: P2P iterations timed")
    parser.add_argument("--no-bench", action="store_true", help="--scale: do not save bench rates")
    parser.add_argument(
        "--bench-methods",
        nargs="+",
        default=[
            "msg",
            "msg-ng",
            "fdsr",
            "unet",
            "resnext",
            "dada",
            "lgr",
            "utae",
            "msg-t",
            "p2p",
            "jbu",
            "guided-filter",
            "bicubic",
            "bilinear",
            "nearest",
        ],
    )
    parser.add_argument("--results", default="results", help="--scale: bench rates go to RESULTS/bench/")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["msg", "msg-ng", "fdsr", "unet", "resnext", "dada", "lgr", "utae", "msg-t"],
    )
    parser.add_argument("--out", default="gpu_check.json")
    parser.add_argument("--bf16", action="store_true", help="protocol device.bf16 (autocast)")
    parser.add_argument("--channels-last", action="store_true", help="protocol device.channels_last")
    parser.add_argument("--compile", action="store_true", help="protocol device.compile (torch.compile)")
    args = parser.parse_args(argv)
    if args.scale:
        from scale_check import scale_check

        if args.methods == parser.get_default("methods"):
            args.methods = ["msg", "fdsr"]
        if args.steps == parser.get_default("steps"):
            args.steps = 150
        scale_check(args)
        return
    assert torch.cuda.is_available(), "no CUDA device"
    device = torch.device("cuda")
    pm = get_plugin_manager()
    # every method trains --steps here (the quick protocol's [method_train.*] do not apply)
    protocol = load_protocol("quick").with_overrides(
        {
            "train.steps": args.steps,
            "train.val_every": 100,
            "device.bf16": args.bf16,
            "device.channels_last": args.channels_last,
            "device.compile": args.compile,
        }
    )
    full_width = {"resnext": {"width": 1.0, "cardinality": 32}}
    spec = pm.datasets.get("biomassters-synthetic")
    adapter = spec.create(**protocol.datasets["biomassters-synthetic"])
    cache = Path(tempfile.mkdtemp(prefix="gsr-bench-gpu-"))
    loaded: dict[bool, object] = {}

    def splits_for(temporal: bool):  # type: ignore[no-untyped-def]
        """The composite splits, or the monthly ones for the temporal methods (prepared once)."""
        if temporal not in loaded:
            extra = adapter.time_series if temporal else {}
            options = {**protocol.datasets["biomassters-synthetic"], **extra}
            loaded[temporal] = spec.create(**options).load(protocol, cache, progress=True, workers=8)
        return loaded[temporal]

    report: dict[str, object] = {"device": torch.cuda.get_device_name(device), "torch": torch.__version__}
    for name in args.methods:
        torch.manual_seed(0)
        splits = splits_for(pm.methods.get(name).temporal)
        options = full_width.get(name, protocol.methods.get(name, {}))
        method = pm.methods.get(name).create(task_info(splits, protocol.task.crop), **options).to(device)
        batch = 4 if name == "resnext" else 32  # 24 M weights at every pixel: keep a call short
        ctx = TrainContext(protocol.train, 0, device, f"gpu-check-{name}", None, True, protocol.device)
        fit = train(method, splits.train, splits.val, ctx)
        metrics, _ = evaluate(method, splits.test, batch, device, splits.info.bins)
        report[name] = {
            "train": fit,
            "test_rmse": metrics["rmse"],
            "eval_mpix_s": metrics["throughput_mpix_s"],
            "mpix_s_fp32": throughput(method, device, bf16=False, batch=batch),
            "mpix_s_bf16": throughput(method, device, bf16=True, batch=batch),
            "params": method.num_parameters(),
        }
        print(name, json.dumps(report[name], indent=1, default=float))
    Path(args.out).write_text(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()

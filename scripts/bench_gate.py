"""CI's benchmark gate: the data path and the learned methods, timed against a calibration kernel.

CI machines differ and are noisy, so every time is divided by the time of a fixed calibration
kernel (matrix products and a convolution) measured in the same run; the ratios are compared with
the committed baseline (``tests/benchmarks/gate_baseline.json``) and the gate fails only where one
grew more than ``--max-slowdown`` (2x). The table is printed either way. About a minute on 2 cores.

    python scripts/bench_gate.py                 # compare with the baseline
    python scripts/bench_gate.py --update        # write the baseline from this machine
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from gsr_bench.bench import median_seconds

BASELINE = Path(__file__).resolve().parents[1] / "tests" / "benchmarks" / "gate_baseline.json"


def calibration() -> float:
    """Seconds of a fixed mix of what the cases spend time in: GEMM, convolution, memory."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(384, 384, generator=g)
    x = torch.randn(4, 16, 96, 96, generator=g)
    w = torch.randn(16, 16, 3, 3, generator=g)
    big = torch.randn(4_000_000, generator=g)

    def kernel() -> None:
        for _ in range(4):
            a @ a
        torch.nn.functional.conv2d(x, w, padding=1)
        big.mul(1.5).add_(1.0).sum()

    return median_seconds(kernel, 15, warmup=3)


def cases(work: Path) -> dict[str, tuple[Callable[[], object], int, str]]:
    """name -> (callable, tiles or items per call, unit)."""
    from gsr_bench.bench import bench_inputs, predict_call, training_step
    from gsr_bench.data.prepare import prepare_split
    from gsr_bench.data.samplers import BatchSampler
    from gsr_bench.data.tiles import open_prepared
    from gsr_bench.metrics import ssim
    from gsr_bench.plugins import PluginManager
    from gsr_bench.protocol import Degradation, Loader, load_protocol
    from gsr_bench_datasets.biomassters.dataset import BioMassters
    from gsr_bench_datasets.biomassters.synth import synthesize

    root = synthesize(work / "root", 12, seed=0, test_chips=2, workers=1, progress=False)
    dataset = BioMassters(str(root))
    train_h5 = prepare_split(dataset, "train", work / "train.h5", 250, workers=1, progress=False)
    test_h5 = prepare_split(dataset, "test", work / "test.h5", 250, workers=1, progress=False)
    splits = open_prepared(dataset, train_h5, test_h5, 250, Degradation())
    tiles = splits.train
    paper = load_protocol("paper").train
    cpu = torch.device("cpu")
    out: dict[str, tuple[Callable[[], object], int, str]] = {}

    def prepare_again() -> None:
        target = work / "again.h5"
        target.unlink(missing_ok=True)
        prepare_split(dataset, "test", target, 250, workers=1, progress=False)

    out["data prepare (2 chips)"] = (prepare_again, 2, "chips")
    out["store first read"] = (lambda: tiles.read_arrays(range(len(tiles))), len(tiles), "tiles")
    for tier in ("device", "pinned", "stream"):
        sampler = BatchSampler(tiles, paper, Loader(tier=tier, workers=0, prefetch=2), 0, cpu)

        def draw(s: BatchSampler = sampler) -> None:
            for _ in s.batches(0, 2):
                pass

        out[f"sampler {tier} (paper batch)"] = (draw, 2 * paper.batch_size, "tiles")
    g = torch.Generator().manual_seed(0)
    target = torch.rand(8, 1, 250, 250, generator=g) * 300
    pred = target + torch.randn(8, 1, 250, 250, generator=g) * 30
    out["ssim (8 tiles)"] = (lambda: ssim(pred, target, 500.0), 8, "tiles")
    pm = PluginManager()
    task, guide, source = bench_inputs(14, 1, 2, cpu)  # what `gsr-bench bench` times with
    for name in ("msg", "fdsr"):
        method = pm.methods.get(name).create(task).to(cpu)
        out[f"train {name} (16 x 60 px)"] = (training_step(method, cpu, 16, 60), 16, "patches")
    p2p = pm.methods.get("p2p").create(task, iterations=4).to(cpu)
    out["p2p (2 tiles, 4 iterations)"] = (predict_call(p2p, guide, source, cpu), 2, "tiles")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--update", action="store_true", help="write the baseline instead of comparing")
    parser.add_argument("--max-slowdown", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="gsr-bench-gate-") as tmp:
        work = Path(tmp)
        timed = {}
        for name, (fn, items, unit) in cases(work).items():
            timed[name] = (median_seconds(fn, args.repeats, warmup=1), items, unit)
    calib = calibration()
    ratios = {name: seconds / calib for name, (seconds, _, _) in timed.items()}
    baseline = json.loads(args.baseline.read_text()) if args.baseline.exists() else {}
    failed = []
    print(f"calibration kernel: {calib * 1e3:.1f} ms")
    print(f"{'case':<30} {'seconds':>9} {'rate':>14} {'x calib':>9} {'baseline':>9} {'change':>8}")
    for name, (seconds, items, unit) in timed.items():
        base = baseline.get("ratios", {}).get(name)
        change = ratios[name] / base if base else float("nan")
        flag = ""
        if base and change > args.max_slowdown:
            failed.append(name)
            flag = "  SLOWER"
        rate = f"{items / seconds:,.1f} {unit}/s"
        base_text = f"{base:.2f}" if base else "-"
        print(
            f"{name:<30} {seconds:>9.4f} {rate:>14} {ratios[name]:>9.2f} {base_text:>9} {change:>7.2f}x{flag}"
        )
    if args.update:
        args.baseline.write_text(json.dumps({"calibration_s": calib, "ratios": ratios}, indent=2) + "\n")
        print(f"baseline written to {args.baseline}")
        return 0
    if failed:
        print(
            f"benchmark gate: {len(failed)} case(s) more than {args.max_slowdown:g}x slower: "
            + ", ".join(failed)
        )
        return 1
    print(f"benchmark gate: no case more than {args.max_slowdown:g}x slower than the baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())

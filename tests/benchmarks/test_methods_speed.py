"""Inference throughput of every registered method and one training step of every learned one
(`make bench`; `make test` runs each once with --benchmark-disable so they cannot rot).

Tiles are 250 x 250 with the default 14-channel guide (12 months of it for temporal methods);
Mpix/s and the device go to extra_info.
"""

from __future__ import annotations

import math

import pytest
import torch

from gsr_bench.bench import SERIES_PERIODS, bench_inputs, bench_options, predict_call, training_step
from gsr_bench.method import TorchMethod
from gsr_bench.metrics import ssim
from gsr_bench.plugins import PluginManager
from gsr_bench.provenance import device_name

pytestmark = pytest.mark.benchmark
BATCH = 4
METHODS = PluginManager().methods.names()
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("name", METHODS)
def test_inference(benchmark, name: str) -> None:  # type: ignore[no-untyped-def]
    """The inputs and the timed call are `gsr-bench bench`'s (gsr_bench.bench)."""
    spec = PluginManager().methods.get(name)
    task, guide, source = bench_inputs(14, SERIES_PERIODS if spec.temporal else 1, BATCH, DEVICE)
    method = spec.create(task, **bench_options(name, DEVICE)).to(DEVICE)
    predict = predict_call(method, guide, source, DEVICE)
    predict()  # warm-up
    out = benchmark(predict)
    assert out.shape == (BATCH, 1, 250, 250)
    seconds = benchmark.stats.stats.median if benchmark.stats else float("nan")
    benchmark.extra_info.update(
        method=name,
        family=spec.family,
        device=device_name(DEVICE),
        params=method.num_parameters(),
        mpix_s=BATCH * 250 * 250 / seconds / 1e6 if seconds == seconds else None,
    )


LEARNED = [n for n in METHODS if n in ("msg", "msg-ng", "fdsr", "unet", "resnext", "dada", "lgr")]


@pytest.mark.parametrize("name", LEARNED)
def test_training_step(benchmark, name: str) -> None:  # type: ignore[no-untyped-def]
    """The step `gsr-bench bench` times (gsr_bench.bench.training_step): loss, backward, Adam."""
    task, _, _ = bench_inputs(14, 1, 1, DEVICE)
    method = PluginManager().methods.get(name).create(task, **bench_options(name, DEVICE)).to(DEVICE)
    assert isinstance(method, TorchMethod)
    step = training_step(method, DEVICE, 16, 60)
    assert math.isfinite(benchmark(step))  # a Gaussian NLL may be negative
    seconds = benchmark.stats.stats.median if benchmark.stats else float("nan")
    benchmark.extra_info.update(
        method=name, device=device_name(DEVICE), batch=16, patch=60, options=bench_options(name, DEVICE)
    )
    # in 250 x 250 tiles, beside test_sampler_paper_batch's tiles/s
    benchmark.extra_info["tiles_s"] = 16 * 60 * 60 / 250**2 / seconds if seconds == seconds else None


@pytest.mark.parametrize("impl", ["torch", "torch-compiled", "skimage"])
def test_ssim(benchmark, impl: str, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(0)
    target = torch.rand(8, 1, 250, 250, generator=g, dtype=torch.float64) * 300
    pred = target + torch.randn(8, 1, 250, 250, generator=g, dtype=torch.float64) * 30
    if impl.startswith("torch"):
        if impl == "torch-compiled":
            from gsr_bench.metrics import COMPILE_SSIM_ENV

            monkeypatch.setenv(COMPILE_SSIM_ENV, "1")
        ssim(pred.float(), target.float(), 500.0)  # compiles, for the compiled one
        result = benchmark(ssim, pred.float(), target.float(), 500.0)
    else:
        p, t = pred.numpy(), target.numpy()
        result = benchmark(
            lambda: [
                structural_similarity(
                    t[i, 0], p[i, 0], data_range=500.0, gaussian_weights=True, use_sample_covariance=False
                )
                for i in range(8)
            ]
        )
    assert len(result) == 8

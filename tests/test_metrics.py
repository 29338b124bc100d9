"""Metrics against scikit-image and against hand computations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gsr_bench.metrics import MetricAccumulator, bin_index, bin_names, psnr, ssim


def _skimage_ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    return float(
        structural_similarity(
            b,
            a,
            data_range=data_range,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


@pytest.mark.parametrize("shape", [(64, 64), (250, 250), (37, 53)])
def test_ssim_psnr_match_skimage_on_random_images(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    target = rng.gamma(2.0, 40.0, shape)
    pred = np.clip(target + rng.normal(0, 25, shape), 0, None)
    t, p = torch.from_numpy(target)[None, None], torch.from_numpy(pred)[None, None]
    ours = float(ssim(p, t, 500.0)[0])
    assert abs(ours - _skimage_ssim(pred, target, 500.0)) < 1e-4
    ours_psnr = float(psnr(p, t, torch.ones_like(t, dtype=torch.bool), 500.0)[0])
    assert abs(ours_psnr - peak_signal_noise_ratio(target, pred, data_range=500.0)) < 1e-4


def test_ssim_psnr_match_skimage_on_the_real_tile(real_sample: Path) -> None:
    from gsr_bench.ops import upsample
    from gsr_bench_datasets.biomassters.layout import BioMasstersLayout

    layout = BioMasstersLayout(real_sample)
    target = torch.from_numpy(layout.read_chip(layout.chips()[0]).target[:250, :250])[None, None].double()
    pred = upsample(torch.nn.functional.avg_pool2d(target, 10), 10, "bicubic")
    for rng in (500.0, float(target.max())):
        ours = float(ssim(pred, target, rng)[0])
        assert abs(ours - _skimage_ssim(pred[0, 0].numpy(), target[0, 0].numpy(), rng)) < 1e-4
        ours_psnr = float(psnr(pred, target, torch.ones_like(target, dtype=torch.bool), rng)[0])
        assert (
            abs(ours_psnr - peak_signal_noise_ratio(target[0, 0].numpy(), pred[0, 0].numpy(), data_range=rng))
            < 1e-4
        )


def test_compiled_ssim_matches_skimage(monkeypatch: pytest.MonkeyPatch) -> None:
    """The opt-in torch.compile path (GSR_BENCH_COMPILE_SSIM=1) computes the same index."""
    from gsr_bench.metrics import COMPILE_SSIM_ENV

    rng = np.random.default_rng(1)
    target = rng.gamma(2.0, 40.0, (2, 1, 40, 40))
    pred = np.clip(target + rng.normal(0, 25, target.shape), 0, None)
    monkeypatch.setenv(COMPILE_SSIM_ENV, "1")
    ours = ssim(torch.from_numpy(pred), torch.from_numpy(target), 500.0)
    for i in range(2):
        assert abs(float(ours[i]) - _skimage_ssim(pred[i, 0], target[i, 0], 500.0)) < 1e-4


def test_accumulator_pooled_and_binned() -> None:
    target = torch.tensor([0.0, 10.0, 60.0, 150.0, 400.0] * 20).reshape(1, 1, 10, 10)
    pred = target + torch.tensor([1.0, -2.0] * 50).reshape(1, 1, 10, 10)
    valid = torch.ones_like(target, dtype=torch.bool)
    valid[0, 0, 0, 0] = False
    acc = MetricAccumulator(500.0, 10, [0.0, 50.0, 100.0, 200.0, 300.0])
    acc.update(pred, target, valid, torch.nn.functional.avg_pool2d(target, 10))
    m = acc.compute()
    err = (pred - target)[valid]
    assert m["mae"] == pytest.approx(float(err.abs().mean()))
    assert m["rmse"] == pytest.approx(float((err**2).mean().sqrt()))
    assert m["bias"] == pytest.approx(float(err.mean()))
    assert m["pixels_bin_0"] == 19 and m["pixels_bin_gt300"] == 20
    assert m["consistency_rmse"] == pytest.approx(abs(float((pred - target).mean())), abs=1e-6)
    assert 0.99 < m["r2"] <= 1
    assert np.isnan(m["ssim"])  # a 10 x 10 tile is smaller than the 11 x 11 window


def test_bins() -> None:
    edges = [0.0, 50.0, 100.0]
    assert bin_names(edges) == ["0", "0-50", "50-100", "gt100"]
    t = torch.tensor([0.0, 0.5, 50.0, 50.1, 100.0, 700.0])
    assert bin_index(t, edges).tolist() == [0, 1, 1, 2, 2, 3]

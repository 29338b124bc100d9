"""Metrics against scikit-image and against hand computations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gsr_bench.metrics import (
    ACCUMULATED,
    PSNR_MAX_DB,
    ExtraMetric,
    MetricAccumulator,
    bin_index,
    bin_label,
    bin_lower_bound,
    bin_names,
    is_accumulated,
    psnr,
    ssim,
)


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
    """Pooled metrics and bins by hand on a 20 x 20 tile with one invalid pixel.

    Fails if an invalid pixel is counted (MAE, RMSE, R² move), if a bin is half-open on the
    wrong side (10 would land in ``lt10``), or if R² is taken around 0 instead of the mean."""
    base = torch.tensor([0.0, 10.0, 60.0, 150.0, 400.0] * 80, dtype=torch.float64).reshape(1, 1, 20, 20)
    target = base
    pred = target + torch.tensor([1.0, -2.0] * 200, dtype=torch.float64).reshape(1, 1, 20, 20)
    valid = torch.ones_like(target, dtype=torch.bool)
    valid[0, 0, 0, 0] = False
    pred[0, 0, 0, 0] = 1e6  # an invalid pixel's prediction must not count anywhere
    acc = MetricAccumulator(500.0, 10, [10.0, 50.0, 100.0, 200.0, 300.0])
    acc.update(pred, target, valid, torch.nn.functional.avg_pool2d(target, 10))
    m = acc.compute()
    t, p = target[valid].numpy(), pred[valid].numpy()
    err = p - t
    assert m["mae"] == pytest.approx(np.abs(err).mean())
    assert m["rmse"] == pytest.approx(np.sqrt((err**2).mean()))
    assert m["bias"] == pytest.approx(err.mean())
    assert m["r2"] == pytest.approx(1 - (err**2).sum() / ((t - t.mean()) ** 2).sum())
    assert m["psnr"] == pytest.approx(peak_signal_noise_ratio(t, p, data_range=500.0))
    assert m["pixels_bin_lt10"] == 79 and m["pixels_bin_10-50"] == 80 and m["pixels_bin_ge300"] == 80
    assert m["pixels_bin_100-200"] == 80 and m["pixels_bin_200-300"] == 0
    assert np.isnan(m["rmse_bin_200-300"])
    in_50_100 = (t >= 50) & (t < 100)
    assert m["rmse_bin_50-100"] == pytest.approx(np.sqrt((err[in_50_100] ** 2).mean()))
    assert m["tiles_scored"] == 1 and m["tiles_empty"] == 0
    # what ``gsr-bench score`` takes as recomputable is what the accumulator computes: a metric
    # added here but not there would never be rescored, one named there but gone never dropped
    assert {k for k in m if is_accumulated(k)} == set(m) and set(m) >= ACCUMULATED
    assert not is_accumulated("throughput_mpix_s") and is_accumulated("projected_rmse_bin_lt10")


def test_bins() -> None:
    """Half-open bins named by their edges; fails if 10 is reported below 10 or 7 in a bin "0"."""
    edges = [10.0, 20.0, 30.0]
    assert bin_names(edges) == ["lt10", "10-20", "20-30", "ge30"]
    assert [bin_label(n) for n in bin_names(edges)] == ["<10", "10-20", "20-30", ">=30"]
    t = torch.tensor([0.0, 7.0, 10.0, 19.9, 20.0, 30.0, 700.0])
    assert bin_index(t, edges).tolist() == [0, 0, 1, 1, 2, 3, 3]
    assert sorted(reversed(bin_names(edges)), key=bin_lower_bound) == bin_names(edges)
    assert bin_names([]) == ["all"] and bin_index(t, []).tolist() == [0] * 7


def _masked_tiles(
    share: float, n: int = 4, size: int = 60, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Four tiles with Gaussian errors of 30 Mg/ha, a random ``share`` of pixels invalid."""
    rng = np.random.default_rng(seed)
    target = rng.gamma(2.0, 60.0, (n, 1, size, size))
    pred = np.clip(target + rng.normal(0, 30, target.shape), 0, None)
    valid = rng.random(target.shape) >= share
    return torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(valid)


def _reference_masked_ssim(pred: np.ndarray, target: np.ndarray, valid: np.ndarray, rng: float) -> float:
    """Masked SSIM written independently with scipy: Gaussian moments by normalized convolution,
    averaged over valid centres away from the border (scikit-image's crop)."""
    from scipy import ndimage

    x, y, m = pred / rng, target / rng, valid.astype(np.float64)

    def g(a: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(a, 1.5, truncate=3.5, mode="constant")

    w = g(m)
    with np.errstate(invalid="ignore", divide="ignore"):
        ux, uy = g(m * x) / w, g(m * y) / w
        vx, vy = g(m * x * x) / w - ux**2, g(m * y * y) / w - uy**2
        cxy = g(m * x * y) / w - ux * uy
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * ux * uy + c1) * (2 * cxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    r = 5
    inner = np.zeros_like(valid)
    inner[r:-r, r:-r] = valid[r:-r, r:-r]
    return float(s[inner].mean())


@pytest.mark.parametrize("share", [0.0, 0.1, 0.5, 0.9])
def test_masked_metrics_match_skimage_on_the_valid_pixels(share: float) -> None:
    """Every metric on tiles with a random ``share`` of invalid pixels, plus one tile with no
    valid pixel, against scikit-image (and an independent masked SSIM) on the valid region."""
    pred, target, valid = _masked_tiles(share)
    empty = torch.zeros_like(valid[:1])
    acc = MetricAccumulator(500.0, 10, [50.0, 100.0])
    acc.update(
        torch.cat([pred, pred[:1]]),
        torch.cat([target, target[:1]]),
        torch.cat([valid, empty]),
        torch.zeros(5, 1, 6, 6),
    )
    m = acc.compute()
    p, t, v = pred.numpy()[:, 0], target.numpy()[:, 0], valid.numpy()[:, 0]
    assert m["tiles_scored"] == 4 and m["tiles_empty"] == 1
    assert m["psnr"] == pytest.approx(peak_signal_noise_ratio(t[v], p[v], data_range=500.0), rel=1e-9)
    per_tile = [peak_signal_noise_ratio(t[i][v[i]], p[i][v[i]], data_range=500.0) for i in range(4)]
    assert m["psnr_tile"] == pytest.approx(np.mean(per_tile), rel=1e-9)
    rmse_tile = [np.sqrt(((p[i] - t[i])[v[i]] ** 2).mean()) for i in range(4)]
    assert m["rmse_tile"] == pytest.approx(np.mean(rmse_tile), rel=1e-9)
    if share == 0.0:
        expected = np.mean([_skimage_ssim(p[i], t[i], 500.0) for i in range(4)])
    else:
        expected = np.mean([_reference_masked_ssim(p[i], t[i], v[i], 500.0) for i in range(4)])
    assert m["ssim"] == pytest.approx(expected, abs=1e-5)


def test_masked_ssim_ignores_invalid_pixels_and_does_not_reward_them() -> None:
    """Fails if SSIM fills invalid pixels with the target (random errors would score better as
    the invalid share grows: 0.94 / 0.97 / 0.99 before) or reads the values under the mask."""
    scores = []
    for share in (0.0, 0.5, 0.9):
        pred, target, valid = _masked_tiles(share, seed=3)
        scores.append(float(ssim(pred, target, 500.0, valid).mean()))
        garbage = torch.where(valid, pred, torch.full_like(pred, 1e4))
        assert float(ssim(garbage, target, 500.0, valid).mean()) == pytest.approx(scores[-1], abs=1e-6)
    assert scores[1] <= scores[0] + 0.01 and scores[2] <= scores[0] + 0.01


def test_empty_and_exact_tiles() -> None:
    """A tile without a valid pixel moves no per-tile mean (it scored 254 dB and RMSE 0 before);
    an exact tile scores 100 dB, per tile and pooled."""
    pred, target, valid = _masked_tiles(0.0)
    src = torch.zeros(4, 1, 6, 6)
    alone = MetricAccumulator(500.0, 10, [50.0])
    alone.update(pred, target, valid, src)
    with_empty = MetricAccumulator(500.0, 10, [50.0])
    with_empty.update(pred, target, valid, src)
    with_empty.update(pred[:1], target[:1], torch.zeros_like(valid[:1]), src[:1])
    a, b = alone.compute(), with_empty.compute()
    for name in ("rmse", "rmse_tile", "psnr", "psnr_tile", "ssim"):
        assert a[name] == pytest.approx(b[name], rel=1e-12), name
    assert b["tiles_empty"] == 1
    exact = MetricAccumulator(500.0, 10, [50.0])
    exact.update(target[:1], target[:1], valid[:1], src[:1])
    e = exact.compute()
    assert e["psnr_tile"] == pytest.approx(PSNR_MAX_DB) and e["psnr"] == pytest.approx(PSNR_MAX_DB)
    assert e["ssim"] == pytest.approx(1.0)
    nothing = MetricAccumulator(500.0, 10, [50.0])
    nothing.update(pred[:1], target[:1], torch.zeros_like(valid[:1]), src[:1])
    assert math.isnan(nothing.compute()["rmse"]) and math.isnan(nothing.compute()["psnr_tile"])


def test_consistency_counts_only_blocks_with_a_valid_pixel() -> None:
    """Fails if a block without a valid target pixel (no source value) enters consistency."""
    target = torch.full((1, 1, 20, 20), 100.0, dtype=torch.float64)
    valid = torch.ones_like(target, dtype=torch.bool)
    valid[..., :10, :10] = False  # one of the four blocks has no label
    source = torch.full((1, 1, 2, 2), 100.0, dtype=torch.float64)
    source[..., 0, 0] = 0.0
    pred = target + 2.0
    acc = MetricAccumulator(500.0, 10, [50.0])
    acc.update(pred, target, valid, source)
    assert acc.compute()["consistency_rmse"] == pytest.approx(2.0)


def _tile_max_error(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> float:
    return float((pred - target).abs()[valid].max())


def test_extra_metric_is_per_tile_whatever_the_batch_size() -> None:
    """Fails if an extra metric is computed per batch and copied to its tiles (its value then
    depended on ``eval.batch_size``), or if its aggregation is ignored."""
    pred, target, valid = _masked_tiles(0.3)
    src = torch.zeros(4, 1, 6, 6)
    results = []
    for batch in (1, 4):
        acc = MetricAccumulator(500.0, 10, [50.0], {"max_err": ExtraMetric(_tile_max_error, "median")})
        for i in range(0, 4, batch):
            acc.update(pred[i : i + batch], target[i : i + batch], valid[i : i + batch], src[i : i + batch])
        results.append(acc.compute()["max_err"])
    per_tile = [_tile_max_error(pred[i], target[i], valid[i]) for i in range(4)]
    assert results[0] == results[1] == pytest.approx(float(np.median(per_tile)))


def test_aggregations_are_the_registry_names() -> None:
    from gsr_bench.metrics import AGGREGATIONS
    from gsr_bench.registry import METRIC_AGGREGATIONS

    assert tuple(AGGREGATIONS) == METRIC_AGGREGATIONS

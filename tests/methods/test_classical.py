"""JBU, guided filter and P2P against direct references, and their handling of bad input."""

from __future__ import annotations

import math

import pytest
import torch

from gsr_bench.method import TaskInfo
from gsr_bench.ops import project_to_source, upsample
from gsr_bench_methods.guided_filter import box_mean, first_component, guided_filter
from gsr_bench_methods.jbu import jbu
from gsr_bench_methods.p2p import fit_predict, tile_seed


def jbu_reference(guide, source, s, r, sigma_d, sigma_r):  # type: ignore[no-untyped-def]
    """Kopf et al. written pixel by pixel, straight from the definition."""
    _, c, hh, ww = guide.shape
    h, w = source.shape[-2:]
    cell = guide.reshape(1, c, h, s, w, s).mean((3, 5))
    out = torch.zeros(1, 1, hh, ww, dtype=torch.float64)
    for y in range(hh):
        for x in range(ww):
            uy, ux = (y + 0.5) / s - 0.5, (x + 0.5) / s - 0.5
            cy, cx = y // s, x // s
            num = den = 0.0
            for qy in range(cy - r, cy + r + 1):
                for qx in range(cx - r, cx + r + 1):
                    if not (0 <= qy < h and 0 <= qx < w):
                        continue
                    f = math.exp(-((uy - qy) ** 2 + (ux - qx) ** 2) / (2 * sigma_d**2))
                    d2 = float(((guide[0, :, y, x] - cell[0, :, qy, qx]) ** 2).mean())
                    wgt = f * math.exp(-d2 / (2 * sigma_r**2))
                    num += wgt * float(source[0, 0, qy, qx])
                    den += wgt
            out[0, 0, y, x] = num / den
    return out


def test_jbu_equals_per_pixel_reference() -> None:
    g = torch.Generator().manual_seed(0)
    guide = torch.randn(1, 3, 15, 12, generator=g, dtype=torch.float64)
    source = torch.rand(1, 1, 5, 4, generator=g, dtype=torch.float64) * 100
    for r, sd, sr in ((1, 1.0, 0.5), (2, 0.7, 1.3)):
        ours = jbu(guide, source, 3, r, sd, sr)
        assert torch.allclose(ours, jbu_reference(guide, source, 3, r, sd, sr), atol=1e-5)


def test_jbu_batched_float32_matches_and_differs_from_nearest() -> None:
    g = torch.Generator().manual_seed(1)
    guide = torch.randn(3, 4, 40, 40, generator=g)
    source = torch.rand(3, 1, 4, 4, generator=g) * 200
    batched = jbu(guide, source, 10)
    single = torch.cat([jbu(guide[i : i + 1], source[i : i + 1], 10) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-5)
    assert (batched - upsample(source, 10, "nearest")).abs().mean() > 1.0


def test_jbu_nan_guide_pixels_and_constant_guide() -> None:
    guide = torch.randn(1, 3, 30, 30)
    source = torch.rand(1, 1, 3, 3) * 100
    holed = guide.clone()
    holed[0, 1, 5:9, 5:9] = float("nan")  # a cloud in one band
    holed[0, :, 20, 20] = float("nan")  # a pixel with nothing at all
    out = jbu(holed, source, 10)
    assert torch.isfinite(out).all()
    flat = jbu(torch.ones(1, 3, 30, 30), source, 10)  # range kernel constant: spatial weights only
    assert torch.isfinite(flat).all()
    assert torch.allclose(flat, jbu(torch.zeros(1, 3, 30, 30), source, 10))


def test_bad_sizes_and_nan_source_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="is not 10 x the source"):
        jbu(torch.randn(1, 3, 255, 255), torch.rand(1, 1, 25, 25), 10)
    source = torch.rand(1, 1, 6, 6)
    source[0, 0, 2, 2] = float("nan")
    assert torch.isfinite(jbu(torch.randn(1, 3, 60, 60), source, 10)).all()  # ignored cell
    source[:] = float("nan")
    with pytest.raises(ValueError, match="no valid source cell"):
        jbu(torch.randn(1, 3, 60, 60), source, 10)
    with pytest.raises(ValueError, match="NaN source cells"):
        fit_predict(torch.randn(1, 3, 60, 60), source, 10, [0], 2)


def _box_mean_reference(x: torch.Tensor, r: int) -> torch.Tensor:
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    for y in range(h):
        for z in range(w):
            out[..., y, z] = x[..., max(0, y - r) : y + r + 1, max(0, z - r) : z + r + 1].mean((-1, -2))
    return out


def test_guided_filter_equals_direct_reference() -> None:
    g = torch.Generator().manual_seed(2)
    guide = torch.randn(2, 1, 13, 17, generator=g, dtype=torch.float64)
    p = torch.randn(2, 1, 13, 17, generator=g, dtype=torch.float64)
    for r in (1, 3, 20):
        assert torch.allclose(box_mean(p, r), _box_mean_reference(p, r), atol=1e-10)
    r, eps = 2, 0.1
    m = _box_mean_reference
    a = (m(guide * p, r) - m(guide, r) * m(p, r)) / (m(guide * guide, r) - m(guide, r) ** 2 + eps)
    b = m(p, r) - a * m(guide, r)
    assert torch.allclose(guided_filter(guide, p, r, eps), m(a, r) * guide + m(b, r), atol=1e-10)


def test_guided_filter_constant_and_nan_guides() -> None:
    assert torch.equal(first_component(torch.ones(1, 4, 20, 20)), torch.zeros(1, 1, 20, 20))
    guide = torch.randn(1, 4, 20, 20)
    guide[0, 2, 3:6, 3:6] = float("nan")
    pc = first_component(guide)
    assert torch.isfinite(pc).all() and abs(float(pc.std()) - 1) < 1e-3
    out = guided_filter(torch.zeros(1, 1, 20, 20), torch.rand(1, 1, 20, 20), 3, 0.1)
    assert torch.isfinite(out).all()


def test_p2p_batched_equals_alone() -> None:
    g = torch.Generator().manual_seed(3)
    guide = torch.randn(3, 4, 30, 30, generator=g)
    source = torch.rand(3, 1, 3, 3, generator=g) * 150
    seeds = [tile_seed(7, s) for s in source]
    together = fit_predict(guide, source, 10, seeds, 40, hidden=256)
    alone = torch.cat(
        [
            fit_predict(guide[i : i + 1], source[i : i + 1], 10, seeds[i : i + 1], 40, hidden=256)
            for i in range(3)
        ]
    )
    assert torch.allclose(together, alone, rtol=1e-4, atol=1e-3), (together - alone).abs().max()
    again = fit_predict(guide, source, 10, seeds, 40, hidden=256)
    assert torch.equal(together, again)  # seeded: the same numbers again


def test_p2p_matches_the_source_after_fitting() -> None:
    """Block means end close to the source: P2P's loss is exactly that mismatch."""
    g = torch.Generator().manual_seed(4)
    yy, xx = torch.meshgrid(torch.arange(60.0), torch.arange(60.0), indexing="ij")
    target = (100 + 60 * torch.sin(xx / 7) + 40 * (yy > 25).float())[None, None]
    guide = torch.cat(
        [target / 50 + 0.05 * torch.randn(1, 1, 60, 60, generator=g), torch.randn(1, 1, 60, 60, generator=g)],
        1,
    )
    source = torch.nn.functional.avg_pool2d(target, 10)
    pred = fit_predict(guide, source, 10, [0], 600)
    err = (torch.nn.functional.avg_pool2d(pred, 10) - source).abs()
    # Within 2 % of the source's spread on average: an L1 fit stops short of exact, the
    # projection below makes it exact.
    assert float(err.mean()) < 0.02 * float(source.std())  # reached: 0.85 %, max 0.8 Mg/ha
    projected = project_to_source(pred, source, 10)
    assert torch.allclose(torch.nn.functional.avg_pool2d(projected, 10), source, atol=1e-3)


def test_projection_is_exact_and_nonnegative() -> None:
    g = torch.Generator().manual_seed(5)
    pred = torch.rand(2, 1, 40, 40, generator=g) * 100 - 20
    pred[0, 0, :10, :10] = 0.0  # a block predicted empty under a non-empty source cell
    source = torch.rand(2, 1, 4, 4, generator=g) * 80 + 1
    out = project_to_source(pred, source, 10)
    assert out.min() >= 0
    assert torch.allclose(torch.nn.functional.avg_pool2d(out, 10), source, atol=1e-4)


def test_p2p_budget_comes_from_the_protocol() -> None:
    from gsr_bench.protocol import load_protocol
    from gsr_bench_methods.p2p import P2P

    budgets = {name: load_protocol(name).train.per_image_iterations for name in ("smoke", "quick", "paper")}
    assert budgets["smoke"] < budgets["quick"] < budgets["paper"] == 32768

    class Ctx:
        seed = 1
        train = load_protocol("smoke").train

    method = P2P(TaskInfo(("a", "b"), 10, 30, 0.0, 1.0, 1.0))
    method.fit(None, None, Ctx())
    assert method.iterations == budgets["smoke"] and method.config()["iterations"] == budgets["smoke"]
    assert 0.19e6 < P2P(TaskInfo(tuple("abcdefghijklmn"), 10, 250, 0, 1, 1)).num_parameters() < 0.21e6


def test_jbu_does_not_underflow_with_a_narrow_range_kernel() -> None:
    g = torch.Generator().manual_seed(6)
    guide = torch.randn(1, 14, 50, 50, generator=g) * 30  # every range weight exp(-huge) == 0.0
    source = torch.rand(1, 1, 5, 5, generator=g) * 300
    out = jbu(guide, source, 10, sigma_r=0.05)
    assert torch.isfinite(out).all()
    assert float(out.min()) >= float(source.min()) - 1e-3 and float(out.max()) <= float(source.max()) + 1e-3

from __future__ import annotations

import torch

from gsr_bench.method import TaskInfo
from gsr_bench.plugins import PluginManager

TASK = TaskInfo(tuple(f"c{i}" for i in range(14)), 10, 250, 60.0, 70.0, 500.0)


def _create(name: str):  # type: ignore[no-untyped-def]
    return PluginManager().methods.get(name).create(TASK)


def test_nearest_is_block_copy() -> None:
    source = torch.rand(2, 1, 25, 25) * 300
    out = _create("nearest").predict(torch.zeros(2, 14, 250, 250), source)
    assert torch.equal(out, source.repeat_interleave(10, -2).repeat_interleave(10, -1))


def test_bilinear_bicubic_shapes_consistency_and_sign() -> None:
    source = torch.zeros(1, 1, 25, 25)
    source[..., 12, 12] = 400.0  # a lone stand: bicubic rings below zero unless clamped
    for name in ("bilinear", "bicubic"):
        out = _create(name).predict(torch.zeros(1, 14, 250, 250), source)
        assert out.shape == (1, 1, 250, 250) and torch.isfinite(out).all()
        assert out.min() >= 0
    # Linear fields are reproduced exactly away from the border, so block means match the source.
    ramp = (torch.arange(25.0)[None, :] * 4 + torch.arange(25.0)[:, None] * 2 + 50)[None, None]
    for name in ("bilinear", "bicubic"):
        up = _create(name).predict(torch.zeros(1, 14, 250, 250), ramp)
        cons = torch.nn.functional.avg_pool2d(up, 10)
        assert (cons - ramp)[..., 2:-2, 2:-2].abs().max() < 1e-3

"""MSG-Net, MSG without guide and FDSR: shapes, gradients, sizes against the spec, overfitting."""

from __future__ import annotations

import pytest
import torch

from gsr_bench.method import TaskInfo, TorchMethod
from gsr_bench.plugins import PluginManager
from tests.methods.fitting import fit_one_tile

C = 14
TASK = TaskInfo(tuple(f"c{i}" for i in range(C)), 10, 250, 60.0, 70.0, 500.0)


def conv(cin: int, cout: int, k: int, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def msg_expected(c: int, w: int = 32, guide: bool = True) -> int:
    """Parameters implied by methods.md for MSG at x10 (two levels), PReLU slopes aside."""
    g = w if guide else 0
    n = conv(1, 64, 5) + conv(64, w, 5)  # source branch: conv, transposed conv up x5
    n += conv(w + g, w, 5) + conv(w, w, 5) + conv(w, w, 5)  # level 125: two convs, up x2
    n += conv(w + g, w, 5) + 2 * conv(w, w, 5) + conv(w, 1, 5)  # HR head
    if guide:
        n += conv(c, 49, 7) + conv(49, w, 5) + conv(w, w, 5)  # guide: F0, one coarser level
    return n


def fdsr_expected(c: int) -> int:
    """Parameters implied by methods.md for FDSR (batch-norm affine terms aside)."""
    msrb = sum(2 * conv(n, n, 3) + conv(n, n, 1) for n in (32, 56, 80, 104))
    # 32 channels split into 24 high + 8 low; the last keeps only the 24 high ones it passes on
    octave = 2 * conv(32, 32, 3, bias=False) + conv(32, 24, 3, bias=False)
    recon = conv(104, 128, 3) + conv(32, 128, 3) + conv(32, 1, 3)
    return msrb + octave + recon + conv(16, 32, 3) + conv(16 * c, 32, 3)


def _make(name: str, task: TaskInfo = TASK, **options: object) -> TorchMethod:
    torch.manual_seed(0)
    method: TorchMethod = PluginManager().methods.get(name).create(task, **options)
    return method


@pytest.mark.parametrize(
    ("name", "expected"),
    [("msg", msg_expected(C)), ("msg-ng", msg_expected(C, guide=False)), ("fdsr", fdsr_expected(C))],
)
def test_parameter_count_matches_spec(name: str, expected: int) -> None:
    n = _make(name).num_parameters()
    assert abs(n - expected) / expected < 0.05, (n, expected)


def test_fdsr_is_about_0_6m_with_a_colour_guide() -> None:
    task = TaskInfo(("r", "g", "b"), 10, 250, 0.0, 1.0, 1.0)
    assert abs(_make("fdsr", task).num_parameters() - 0.6e6) / 0.6e6 < 0.05


@pytest.mark.parametrize("name", ["msg", "msg-ng", "fdsr"])
@pytest.mark.parametrize("size", [30, 60, 250])
def test_shapes_finite_nonnegative(name: str, size: int) -> None:
    method = _make(name)
    guide = torch.randn(2, C, size, size)
    source = torch.rand(2, 1, size // 10, size // 10) * 300
    out = method.predict(guide, source)
    assert out.shape == (2, 1, size, size)
    assert torch.isfinite(out).all() and out.min() >= 0


@pytest.mark.parametrize("name", ["msg", "msg-ng", "fdsr"])
def test_gradients_reach_every_parameter(name: str) -> None:
    method = _make(name)
    method.net.train()
    out = method.forward(torch.randn(2, C, 60, 60), torch.rand(2, 1, 6, 6) * 300)
    out.mean().backward()
    missing = [n for n, p in method.net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_guide_matters_to_msg_only() -> None:
    source = torch.rand(1, 1, 6, 6) * 300
    g1, g2 = torch.randn(1, C, 60, 60), torch.randn(1, C, 60, 60)
    msg, ng = _make("msg"), _make("msg-ng")
    assert not torch.allclose(msg.predict(g1, source), msg.predict(g2, source))
    assert torch.equal(ng.predict(g1, source), ng.predict(g2, source))


@pytest.mark.parametrize(
    ("name", "options"),
    [("msg", {"width": 16}), ("msg-ng", {"width": 16}), ("fdsr", {"width": 16, "high": 12})],
)
def test_overfits_a_single_tile(name: str, options: dict[str, int]) -> None:
    """A small configuration drives its loss on one tile down 10x within a few hundred steps."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(40.0), torch.arange(40.0), indexing="ij")
    # Detail within and across 100 m cells; no pixel noise, which no network could infer.
    target = (120 + 60 * torch.sin(xx / 5) * torch.cos(yy / 6))[None, None]
    source = torch.nn.functional.avg_pool2d(target, 10)
    guide = torch.cat([target / 100 + 0.1 * torch.randn(1, 1, 40, 40, generator=g)] * C, 1)
    losses = fit_one_tile(_make(name, **options), guide, source, target, steps=300, lr=2e-3)
    assert min(losses[-20:]) < losses[0] / 10, (losses[0], min(losses[-20:]))

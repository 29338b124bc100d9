"""U-Net and ResNeXt, the direct-regression baselines: shapes, gradients, sizes, overfitting."""

from __future__ import annotations

import pytest
import torch

from gsr_bench.method import TaskInfo, TorchMethod
from gsr_bench.plugins import PluginManager
from gsr_bench_datasets.biomassters.composite import COMPOSITES
from gsr_bench_methods.resnext import LOG_VAR_MAX, LOG_VAR_MIN
from tests.methods.fitting import parameters_without_gradient

CHANNELS = COMPOSITES["leafon-median"][1]  # 10 S2 bands, then 4 S1 bands
TASK = TaskInfo(CHANNELS, 10, 250, 60.0, 70.0, 500.0)
SMALL = {"unet": {"encoder": "resnet18"}, "resnext": {"width": 1 / 32, "cardinality": 4}}


def _make(name: str, task: TaskInfo = TASK, **options: object) -> TorchMethod:
    torch.manual_seed(0)
    method: TorchMethod = PluginManager().methods.get(name).create(task, **options)
    return method


def conv(cin: int, cout: int, k: int, bias: bool = False, groups: int = 1) -> int:
    return cin // groups * cout * k * k + (cout if bias else 0)


def bn(c: int) -> int:
    return 2 * c


def resnet34_encoder(c: int) -> int:
    """ResNet-34 without its classifier: 7 x 7 stem, basic blocks [3, 4, 6, 3]."""
    n = conv(c, 64, 7) + bn(64)
    cin = 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for b in range(blocks):
            n += conv(cin, width, 3) + bn(width) + conv(width, width, 3) + bn(width)
            if b == 0 and cin != width:
                n += conv(cin, width, 1) + bn(width)
            cin = width
    return n


def unet_decoder() -> int:
    skips, cin, n = [256, 128, 64, 64], 512, 0
    for k, width in enumerate((256, 128, 64, 32, 16)):
        skip = skips[k] if k < len(skips) else 0
        n += conv(cin + skip, width, 3) + bn(width) + conv(width, width, 3) + bn(width)
        cin = width
    return n + conv(16, 1, 3, bias=True)


def resnext_expected(s2: int, s1: int, width: float = 1.0, card: int = 32) -> int:
    """methods.md: entry 1x1 (S2) and 5x5 (S1) to 32 each, bottlenecks [2, 3, 5, 3] with ResNeXt-50
    widths and cardinality 32, no stride, a 1x1 pixel shortcut, mean and log-variance heads."""
    n = conv(s2, 32, 1) + bn(32) + conv(s1, 32, 5) + bn(32)
    cin = 64
    for blocks, base in zip((2, 3, 5, 3), (128, 256, 512, 1024), strict=True):
        mid = max(card, round(base * width / card) * card)
        out = 2 * mid
        for _ in range(blocks):
            n += conv(cin, mid, 1) + bn(mid) + conv(mid, mid, 3, groups=card) + bn(mid)
            n += conv(mid, out, 1) + bn(out)
            if cin != out:
                n += conv(cin, out, 1) + bn(out)
            cin = out
    return n + conv(64, cin, 1, bias=True) + 2 * conv(cin, 1, 1, bias=True)


def test_unet_size_matches_spec() -> None:
    method = _make("unet")
    encoder = sum(p.numel() for p in method.net.encoder.parameters())
    assert encoder == resnet34_encoder(len(CHANNELS))
    assert method.num_parameters() == resnet34_encoder(len(CHANNELS)) + unet_decoder()


def test_resnext_size_matches_spec() -> None:
    n = _make("resnext").num_parameters()
    assert n == resnext_expected(10, 4)
    assert abs(n - 24e6) / 24e6 < 0.12  # methods.md: "about 24 M parameters at full width"
    assert _make("resnext", width=0.25).config()["stage_widths"] == [64, 128, 256, 512]


def test_resnext_splits_sensors_by_channel_name() -> None:
    method = _make("resnext", **SMALL["resnext"])
    assert method.s1_idx == [10, 11, 12, 13] and method.s2_idx == list(range(10))
    seasonal = TaskInfo(COMPOSITES["seasonal"][1], 10, 250, 60.0, 70.0, 500.0)
    method = _make("resnext", seasonal, **SMALL["resnext"])
    assert len(method.s1_idx) == 16 and len(method.s2_idx) == 40


@pytest.mark.parametrize("name", ["unet", "resnext"])
@pytest.mark.parametrize("size", [30, 60, 250])
def test_shapes_finite_nonnegative(name: str, size: int) -> None:
    method = _make(name, **SMALL[name])
    out = method.predict(torch.randn(2, len(CHANNELS), size, size), torch.rand(2, 1, size // 10, size // 10))
    assert out.shape == (2, 1, size, size)
    assert torch.isfinite(out).all() and out.min() >= 0


@pytest.mark.parametrize("name", ["unet", "resnext"])
def test_never_sees_the_source(name: str) -> None:
    method = _make(name, **SMALL[name])
    guide = torch.randn(1, len(CHANNELS), 60, 60)
    a = method.predict(guide, torch.zeros(1, 1, 6, 6))
    b = method.predict(guide, torch.full((1, 1, 6, 6), 300.0))
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["unet", "resnext"])
def test_gradients_reach_every_parameter(name: str) -> None:
    method = _make(name, **SMALL[name])
    method.net.train()
    batch = {
        "guide": torch.randn(2, len(CHANNELS), 60, 60),
        "source": torch.rand(2, 1, 6, 6) * 300,
        "target": torch.rand(2, 1, 60, 60) * 300,
        "valid": torch.ones(2, 1, 60, 60, dtype=torch.bool),
    }
    assert not parameters_without_gradient(method, batch)


def test_resnext_loss_is_the_gaussian_nll() -> None:
    method = _make("resnext", **SMALL["resnext"])
    guide = torch.randn(2, len(CHANNELS), 30, 30)
    target = torch.rand(2, 1, 30, 30) * 200
    valid = torch.rand(2, 1, 30, 30) > 0.3
    mean, log_var = method.net(guide[:, method.s2_idx], guide[:, method.s1_idx])
    var = log_var.clamp(LOG_VAR_MIN, LOG_VAR_MAX).exp()
    expected = torch.nn.functional.gaussian_nll_loss(mean[valid], method.normalize(target)[valid], var[valid])
    loss = method.training_loss({"guide": guide, "target": target, "valid": valid}, "l1")
    assert torch.allclose(loss, expected, rtol=1e-5)
    std = method.predict_std(guide)
    assert std.shape == (2, 1, 30, 30) and (std > 0).all()


@pytest.mark.parametrize("name", ["unet", "resnext"])
def test_overfits_a_single_tile(name: str) -> None:
    """Biomass that the guide shows (plus a nonlinearity): the loss drops 10x in 300 steps."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(40.0), torch.arange(40.0), indexing="ij")
    target = (120 + 60 * torch.sin(xx / 5) * torch.cos(yy / 6))[None, None]
    signal = (target - 120) / 60
    guide = torch.cat([signal**k + 0.05 * torch.randn(1, 1, 40, 40, generator=g) for k in (1, 2)] * 7, 1)
    method = _make(name, **SMALL[name])
    opt = torch.optim.Adam(method.net.parameters(), lr=3e-3)
    method.net.train()
    batch = {"guide": guide, "source": torch.zeros(1, 1, 4, 4), "target": target}
    batch["valid"] = torch.ones_like(target, dtype=torch.bool)
    losses = []
    for _ in range(300):
        pred = method.forward(guide, batch["source"])
        loss = (pred - target).abs().mean()
        opt.zero_grad()
        method.training_loss(batch, "l1").backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-20:]) < losses[0] / 10, (losses[0], min(losses[-20:]))


def test_resnext_beta_nll_weights_each_pixel_by_its_variance() -> None:
    plain = _make("resnext", **SMALL["resnext"])
    beta = _make("resnext", **SMALL["resnext"], beta=0.5)  # same seed: same weights
    guide = torch.randn(2, len(CHANNELS), 30, 30)
    batch = {"guide": guide, "target": torch.rand(2, 1, 30, 30) * 200}
    batch["valid"] = torch.ones_like(batch["target"], dtype=torch.bool)
    _, log_var = plain.net(guide[:, plain.s2_idx], guide[:, plain.s1_idx])
    weight = torch.exp(0.5 * log_var.clamp(LOG_VAR_MIN, LOG_VAR_MAX))
    mean, _ = plain.net(guide[:, plain.s2_idx], guide[:, plain.s1_idx])
    var = weight**2
    nll = 0.5 * (var.log() + (mean - plain.normalize(batch["target"])) ** 2 / var)
    assert torch.allclose(beta.training_loss(batch, "l1"), (nll * weight).mean(), rtol=1e-4)
    assert beta.config()["loss"] == "beta-nll (0.5)" and plain.config()["loss"] == "gaussian-nll"

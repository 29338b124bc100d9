"""U-TAE and MSG-T, the methods that read the monthly time series: shapes at 3 and 12 months,
masks (missing months never count), gradients, overfitting."""

from __future__ import annotations

import pytest
import torch

from gsr_bench.channels import MASK_PREFIX, S1_BANDS, S2_BANDS
from gsr_bench.method import TaskInfo, TorchMethod
from gsr_bench.plugins import PluginManager
from gsr_bench_datasets.biomassters.composite import COMPOSITES, MONTH_LABELS
from gsr_bench_methods.utae import SeriesLayout
from tests.methods.fitting import fit_one_tile


def series_channels(months: int) -> tuple[str, ...]:
    """The monthly composite's naming for the first ``months`` months."""
    labels = MONTH_LABELS[:months]
    bands = tuple(f"{b}@{m}" for m in labels for b in (*S2_BANDS, *S1_BANDS))
    masks = tuple(f"{MASK_PREFIX}{s}@{m}" for s in ("S2", "S1") for m in labels)
    return bands + masks


def _task(months: int) -> TaskInfo:
    return TaskInfo(series_channels(months), 10, 250, 60.0, 70.0, 500.0)


def _make(name: str, months: int = 3, **options: object) -> TorchMethod:
    torch.manual_seed(0)
    method: TorchMethod = PluginManager().methods.get(name).create(_task(months), **options)
    return method


def _guide(months: int, size: int, seed: int = 0) -> torch.Tensor:
    """Random z-scored bands and random 0/1 masks (clouds, missing passes)."""
    g = torch.Generator().manual_seed(seed)
    channels = series_channels(months)
    guide = torch.randn(2, len(channels), size, size, generator=g)
    masks = [k for k, c in enumerate(channels) if c.startswith(MASK_PREFIX)]
    guide[:, masks] = (torch.rand(2, len(masks), size, size, generator=g) > 0.3).float()
    return guide


def test_the_monthly_composite_names_are_what_the_tests_use() -> None:
    assert series_channels(12) == COMPOSITES["monthly"][1]


def test_layout_regroups_by_month_and_refuses_uneven_months() -> None:
    layout = SeriesLayout.from_channels(series_channels(3))
    assert layout.periods == MONTH_LABELS[:3] and len(layout.bands) == 14 and layout.per_period == 16
    single = SeriesLayout.from_channels(COMPOSITES["leafon-median"][1])
    assert single.periods == ("",) and single.per_period == 14
    with pytest.raises(ValueError, match="period 'Oct'"):
        SeriesLayout.from_channels(("B2@Sep", "B3@Sep", "B2@Oct"))


@pytest.mark.parametrize("name", ["utae", "msg-t"])
@pytest.mark.parametrize(("months", "size"), [(3, 30), (12, 60), (3, 250)])
def test_shapes_finite_nonnegative(name: str, months: int, size: int) -> None:
    method = _make(name, months)
    out = method.predict(_guide(months, size), torch.rand(2, 1, size // 10, size // 10) * 300)
    assert out.shape == (2, 1, size, size)
    assert torch.isfinite(out).all() and out.min() >= 0


@pytest.mark.parametrize("name", ["utae", "msg-t"])
def test_missing_months_are_masked_not_read(name: str) -> None:
    """A chip with months missing gives the same output as the same chip whose missing months
    hold random values: neither the encoder nor the attention reads them."""
    months, channels = 12, series_channels(12)
    guide = _guide(months, 60)
    for m in ("Sep", "Oct", "Nov", "Dec", "Jan", "Feb"):  # 000aa810's case: no S2 until March
        guide[:, channels.index(f"{MASK_PREFIX}S2@{m}")] = 0
    guide[:, channels.index(f"{MASK_PREFIX}S1@Dec")] = 0  # and one month with nothing at all
    guide[:, channels.index(f"{MASK_PREFIX}S2@Dec")] = 0
    noisy = guide.clone()
    for k, c in enumerate(channels):
        band, _, month = c.partition("@")
        sensor = "S2" if band in S2_BANDS else "S1" if band in S1_BANDS else None
        if sensor:
            hidden = guide[:, channels.index(f"{MASK_PREFIX}{sensor}@{month}")] == 0
            noisy[:, k] = torch.where(hidden, torch.randn_like(guide[:, k]) * 5, guide[:, k])
    assert not torch.equal(noisy, guide)
    method = _make(name, months)
    source = torch.rand(2, 1, 6, 6) * 300
    assert torch.equal(method.predict(guide, source), method.predict(noisy, source))
    # an observed month does count
    seen = guide.clone()
    seen[:, channels.index("B8@Jul")] += 3
    assert not torch.equal(method.predict(seen, source), method.predict(guide, source))


def test_a_chip_without_any_observation_gives_finite_output() -> None:
    method = _make("utae", 3)
    guide = _guide(3, 30)
    guide[:, [k for k, c in enumerate(series_channels(3)) if c.startswith(MASK_PREFIX)]] = 0
    assert torch.isfinite(method.predict(guide, torch.zeros(2, 1, 3, 3))).all()


def test_utae_never_sees_the_source_and_msg_t_does() -> None:
    guide = _guide(3, 60)
    a, b = torch.zeros(2, 1, 6, 6), torch.full((2, 1, 6, 6), 300.0)
    utae, msgt = _make("utae"), _make("msg-t")
    assert torch.equal(utae.predict(guide, a), utae.predict(guide, b))
    assert not torch.allclose(msgt.predict(guide, a), msgt.predict(guide, b))


@pytest.mark.parametrize("name", ["utae", "msg-t"])
def test_gradients_reach_every_parameter(name: str) -> None:
    method = _make(name)
    method.net.train()
    out = method.forward(_guide(3, 60), torch.rand(2, 1, 6, 6) * 300)
    out.mean().backward()
    missing = [n for n, p in method.net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("name", ["utae", "msg-t"])
def test_overfits_a_single_tile(name: str) -> None:
    """Biomass that the near-infrared band shows in every month where it is clear (a random
    third of the pixels clouded each month): a small configuration drives its loss on one tile
    down 5x."""
    months = 3
    yy, xx = torch.meshgrid(torch.arange(40.0), torch.arange(40.0), indexing="ij")
    target = (120 + 60 * torch.sin(xx / 5) * torch.cos(yy / 6))[None, None]
    guide = _guide(months, 40)[:1]
    channels = series_channels(months)
    for k, c in enumerate(channels):
        if c.startswith("B8@"):
            guide[:, k] = target[0] / 100
    source = torch.nn.functional.avg_pool2d(target, 10)
    losses = fit_one_tile(_make(name, months, widths=(8, 16)), guide, source, target, steps=150, lr=3e-3)
    assert min(losses[-10:]) < losses[0] / 5, (losses[0], min(losses[-10:]))

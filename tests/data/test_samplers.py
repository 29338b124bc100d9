"""Batch samplers: the three tiers serve the same batches, and the gather is the crop it claims."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from gsr_bench.data.samplers import BatchSampler, _grids, assemble, choose_tier, draw_plan
from gsr_bench.data.tiles import open_prepared
from gsr_bench.protocol import Degradation, Loader, load_protocol
from gsr_bench_datasets.biomassters.dataset import BioMassters


@pytest.fixture(scope="module")
def splits(prepared: dict[str, Path]):  # type: ignore[no-untyped-def]
    return open_prepared(BioMassters(), prepared["train"], prepared["test"], 250, Degradation(blur_sigma=1.0))


@pytest.mark.parametrize("size", [3, 6])
def test_variant_grids_are_rotations_then_flips(size: int) -> None:
    image = torch.arange(size * size).view(1, size, size)
    for v, grid in enumerate(_grids(size, torch.device("cpu"))):
        expected = torch.rot90(image, v // 2, dims=(-2, -1))
        expected = torch.flip(expected, dims=(-1,)) if v % 2 else expected
        assert torch.equal(image[0][grid[0], grid[1]], expected[0]), v


def test_assembled_batch_equals_crops_of_the_samples(splits) -> None:  # type: ignore[no-untyped-def]
    tiles = splits.train
    arrays = tiles.read_arrays(range(len(tiles)))
    plan = draw_plan(5, 17, len(tiles), 16, 60, 250, 10, augment=True)
    batch = assemble(arrays, plan, 60, 10)
    assert set(plan["variant"].tolist()) != {0}  # the draw exercised rotations and flips
    for b in range(16):
        sample = tiles[int(plan["tiles"][b])]
        y, x = plan["offset"][b].tolist()
        k, flip = divmod(int(plan["variant"][b]), 2)
        for name, size, (yy, xx) in (
            ("guide", 60, (y, x)),
            ("target", 60, (y, x)),
            ("valid", 60, (y, x)),
            ("source", 6, (y // 10, x // 10)),  # the blurred source of the whole tile, cropped
            ("source_valid", 6, (y // 10, x // 10)),
        ):
            crop = torch.rot90(sample[name][:, yy : yy + size, xx : xx + size], k, dims=(-2, -1))
            crop = torch.flip(crop, dims=(-1,)) if flip else crop
            if name == "guide":  # same formula, float16 store: equal to float32 rounding
                torch.testing.assert_close(batch[name][b], crop, rtol=0, atol=1e-5)
            else:
                assert torch.equal(batch[name][b], crop), (name, b)


def _batches(tiles, tier: str, start: int, stop: int, workers: int = 0) -> list[dict[str, torch.Tensor]]:  # type: ignore[no-untyped-def]
    train = load_protocol("smoke").with_overrides({"train.batch_size": 6, "train.patch_size": 40}).train
    sampler = BatchSampler(
        tiles, train, Loader(tier=tier, workers=workers, prefetch=2), 3, torch.device("cpu")
    )
    assert sampler.tier == tier
    return list(sampler.batches(start, stop))


def test_every_tier_serves_the_same_batches(splits) -> None:  # type: ignore[no-untyped-def]
    device = _batches(splits.train, "device", 0, 6)
    for tier, workers in (("pinned", 0), ("stream", 0), ("stream", 2)):
        other = _batches(splits.train, tier, 0, 6, workers)
        assert len(other) == 6
        for a, b in zip(device, other, strict=True):
            for name in a:
                assert torch.equal(a[name], b[name]), (tier, workers, name)


def test_a_resumed_range_continues_the_same_sequence(splits) -> None:  # type: ignore[no-untyped-def]
    whole = _batches(splits.train, "pinned", 0, 5)
    tail = _batches(splits.train, "device", 3, 5)
    for a, b in zip(whole[3:], tail, strict=True):
        assert torch.equal(a["guide"], b["guide"])
    assert not torch.equal(whole[0]["guide"], whole[1]["guide"])


def test_auto_falls_back_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    cpu = torch.device("cpu")
    assert choose_tier("auto", 1000, cpu, 0.5) == "device"
    with caplog.at_level(logging.WARNING):
        assert choose_tier("auto", 10**18, cpu, 0.5) == "stream"
    assert len(caplog.records) == 1
    assert "does not fit" in caplog.text and "streaming" in caplog.text


def test_a_batch_is_drawn_whole_so_ddp_shares_split_it() -> None:
    a = draw_plan(0, 3, 100, 8, 60, 250, 10, True)
    b = draw_plan(0, 3, 100, 8, 60, 250, 10, True)
    c = draw_plan(0, 4, 100, 8, 60, 250, 10, True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["tiles"], c["tiles"])
    assert (a["offset"] % 10 == 0).all() and (a["offset"] <= 190).all()

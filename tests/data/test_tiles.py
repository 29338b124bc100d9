"""The source of a tile: its validity, the fill of invalid blocks, and the mask methods receive."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gsr_bench.channels import SOURCE_MASK
from gsr_bench.data.samplers import assemble, draw_plan
from gsr_bench.data.source import degrade, with_source_mask
from gsr_bench.data.tiles import TileArrays, open_prepared
from gsr_bench.evaluate import task_info
from gsr_bench.protocol import Degradation
from gsr_bench_datasets.biomassters.dataset import BioMassters


def _tile() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    target = rng.uniform(50, 150, (1, 40, 40)).astype(np.float32)
    valid = np.ones((1, 40, 40), bool)
    valid[:, 10:20, 20:30] = False  # block (1, 2): no valid pixel
    valid[:, 0:10, 0:9] = False  # block (0, 0): one valid column left
    return target, valid


def test_a_block_without_a_valid_pixel_is_invalid_and_takes_a_neighbours_value() -> None:
    """Stored as 0, the block's bicubic source dragged its valid neighbours' edges towards 0 (and
    for disparity 0 means infinitely far)."""
    target, valid = _tile()
    source, source_valid = degrade(target, valid, 10, Degradation(), "chip")
    expected_valid = np.ones((1, 4, 4), bool)
    expected_valid[0, 1, 2] = False
    assert source_valid.dtype == bool and np.array_equal(source_valid, expected_valid)
    neighbours = {float(source[0, r, c]) for r, c in ((0, 2), (2, 2), (1, 1), (1, 3))}
    assert float(source[0, 1, 2]) in neighbours
    # a block with one valid column is valid, its value the mean of that column
    assert source[0, 0, 0] == np.float32(target[0, :10, 9].astype(np.float64).mean())


def test_a_tile_without_any_valid_pixel_has_an_all_invalid_zero_source() -> None:
    target, _ = _tile()
    source, source_valid = degrade(target, np.zeros_like(target, bool), 10, Degradation(blur_sigma=1), "c")
    assert not source_valid.any() and not source.any()


def test_the_source_mask_is_the_block_validity_at_the_guides_resolution() -> None:
    _, valid = _tile()
    _, source_valid = degrade(*_tile(), 10, Degradation(), "chip")
    guide = torch.randn(3, 40, 40)
    out = with_source_mask(guide, torch.from_numpy(source_valid), 10)
    assert out.shape == (4, 40, 40) and torch.equal(out[:3], guide)
    mask = out[3].numpy()
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert (mask[10:20, 20:30] == 0).all() and mask.sum() == 40 * 40 - 100
    assert (mask[valid[0]] == 1).all()  # every valid target pixel lies in a valid block


def test_batches_carry_the_mask_through_rotations_and_flips(prepared: dict[str, Path]) -> None:
    """The sampler appends the mask after its gather: the mask rotates with its patch."""
    splits = open_prepared(BioMassters(), prepared["train"], prepared["test"], 250, Degradation())
    tiles = splits.train
    arrays = tiles.read_arrays(range(len(tiles)))
    # invalidate an irregular set of blocks, so that a patch's mask has places to be wrong
    valid = arrays.source_valid.clone()
    valid[:, :, ::2, ::3] = False
    valid[:, :, 1, 1] = False
    arrays = TileArrays(
        arrays.guide, arrays.target, arrays.valid, arrays.source, valid, arrays.mean, arrays.std
    )
    plan = draw_plan(1, 3, len(tiles), 8, 60, 250, 10, augment=True)
    batch = assemble(arrays, plan, 60, 10)
    assert batch["guide"].shape[1] == len(splits.info.guide_channels) + 1
    for b in range(8):
        expected = with_source_mask(batch["guide"][b, :-1], batch["source_valid"][b], 10)
        assert torch.equal(batch["guide"][b], expected)
    assert not batch["source_valid"].all()  # some patch held the invalid block
    task = task_info(splits, 250)
    assert task.guide_channels[-1] == SOURCE_MASK and task.in_channels == batch["guide"].shape[1]

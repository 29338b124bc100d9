"""The dataset contract (``gsr_bench.dataset``): what the core does with what an adapter yields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from gsr_bench.data.prepare import prepare_split
from gsr_bench.data.store import load
from gsr_bench.dataset import GSRDataset, Sample
from gsr_bench.errors import DataError
from gsr_bench.protocol import load_protocol


class Arrays(GSRDataset):
    """Tiles made in memory: ``size`` pixels, x4, an RGB guide named in BGR order."""

    scale, units, label, data_range = 4, "m", "height", 30.0
    guide_channels = ("blue", "green", "red")
    rgb = ("red", "green", "blue")
    nodata = -1.0

    def __init__(self, size: int = 40, n: int = 12, broken: str = "") -> None:
        self.size, self.n, self.broken = size, n, broken

    def tiles(self, split: str) -> list[tuple[str, int]]:
        return [(split, i) for i in range(self.n if split == "train" else 3)]

    def read(self, tile: tuple[str, int]) -> Sample:
        split, i = tile
        rng = np.random.default_rng(i)
        target = rng.uniform(0, 30, (self.size, self.size)).astype(np.float32)
        target[0, :3] = -1.0  # nodata
        target[1, 0] = np.nan
        guide = np.stack([target * 0.1, target * 0.2, target * 0.3]).astype(np.float32)
        guide[:, 5, 5] = np.nan  # no observation
        tile_id = f"{split}-{i}"
        if self.broken == "channels":
            guide = guide[:2]
        if self.broken == "duplicate":
            tile_id = "same"
        return Sample(tile_id, guide, target)


def test_prepared_at_the_protocol_crop_with_the_dataset_scale(tmp_path: Path) -> None:
    dataset = Arrays(size=40)
    out = prepare_split(dataset, "train", tmp_path / "train.h5", 36, workers=1, progress=False)
    with h5py.File(out, "r") as f:
        assert f["guide"].shape == (12, 3, 36, 36) and f["source"].shape == (12, 1, 9, 9)
        valid, target = f["valid"][0, 0], f["target"][0, 0]
        assert not valid[0, :3].any() and not valid[1, 0] and valid[2:].all()  # nodata and NaN
        assert np.isnan(f["guide"][0, 0, 5, 5])  # kept as NaN: filled after z-scoring
        block = target[4:8, 4:8]
        np.testing.assert_allclose(f["source"][0, 0, 1, 1], block.mean(), rtol=1e-5)
        assert f.attrs["scale"] == 4
        ids = [x.decode() for x in f["chip_id"][:]]
        assert f["is_val"][:].tolist() == [dataset.is_val(x) for x in ids]


def test_splits_carry_the_dataset_declarations(tmp_path: Path) -> None:
    protocol = load_protocol("smoke").with_overrides({"task.crop": 36, "train.patch_size": 12})
    splits = load(Arrays(n=30), protocol, tmp_path, progress=False, workers=1)
    info = splits.info
    assert (info.scale, info.units, info.label, info.data_range) == (4, "m", "height", 30.0)
    assert info.rgb_channels == (2, 1, 0)  # named red, green, blue: found whatever their order
    batch = splits.test.batch(range(2))
    # the dataset's 3 channels and the source mask
    assert batch["guide"].shape == (2, 4, 36, 36) and batch["source"].shape == (2, 1, 9, 9)
    assert batch["source_valid"].shape == (2, 1, 9, 9) and batch["guide"][:, 3].eq(1).all()
    # cached: a second load reads the same store
    assert len(list(tmp_path.glob("prepared/*/train.h5"))) == 1
    load(Arrays(n=30), protocol, tmp_path, progress=False, workers=1)
    assert len(list(tmp_path.glob("prepared/*/train.h5"))) == 1


@pytest.mark.parametrize(
    ("kwargs", "crop", "message"),
    [
        (
            {"size": 40},
            48,
            r"dataset 'Arrays' tile 'train-0': 40x40 pixels, smaller than the protocol's crop 48",
        ),
        ({"broken": "channels"}, 36, r"guide of shape \(2, 40, 40\), expected \[3, H, W\]"),
        ({"broken": "duplicate"}, 36, r"tile ids are not unique \(same\)"),
        ({"n": 0}, 36, r"split 'train' has no tiles"),
        ({}, 38, r"crop 38 is not a multiple of the scale 4 of dataset 'Arrays'"),
    ],
)
def test_contract_violations_name_the_tile(
    tmp_path: Path, kwargs: dict[str, Any], crop: int, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        prepare_split(Arrays(**kwargs), "train", tmp_path / "x.h5", crop, workers=1, progress=False)
    assert not (tmp_path / "x.h5").exists()


def test_tiles_smaller_than_250_prepare_at_a_smaller_crop(tmp_path: Path) -> None:
    """torchgeo's fixture has 32-pixel tiles: a protocol cropping 60 must not ask for 250."""
    protocol = load_protocol("smoke").with_overrides({"task.crop": 32, "train.patch_size": 16})
    splits = load(Arrays(size=32, n=20), protocol, tmp_path, progress=False, workers=1)
    assert splits.train.batch([0])["target"].shape == (1, 1, 32, 32)

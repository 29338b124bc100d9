"""Prepared HDF5 splits as datasets of the sample contract.

A sample is a dict: ``guide`` float32 [C + 1, H, W] (the dataset's channels z-scored with the
train statistics, no-data as 0, then :data:`SOURCE_MASK`), ``source`` float32 [1, H/s, W/s] and
``target`` float32 [1, H, W] in the dataset's units, ``valid`` bool [1, H, W], ``source_valid``
bool [1, H/s, W/s] and ``id`` str.
(:mod:`gsr_bench.data.source` makes the source, its validity and the mask.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from gsr_bench.channels import SOURCE_MASK, sensor_of
from gsr_bench.data.prepare import read_prepared_attrs
from gsr_bench.data.source import degrade, with_source_mask
from gsr_bench.errors import DataError
from gsr_bench.protocol import Degradation

if TYPE_CHECKING:
    from gsr_bench.dataset import GSRDataset

IN_MEMORY_LIMIT = 4 * 2**30  # bytes: below this a split is read once and kept in memory


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset declares about its tiles (``gsr_bench.dataset.GSRDataset``), as opened."""

    name: str
    guide_channels: tuple[str, ...]
    scale: int
    data_range: float
    bins: tuple[float, ...]
    revision: str
    target_mean: float
    target_std: float
    units: str = ""
    label: str = "target"
    rgb_channels: tuple[int, int, int] = (0, 1, 2)
    source_name: str = "source"
    guide: str = ""  # how the guide differs from the dataset's default (GSRDataset.guide_label)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @property
    def method_channels(self) -> tuple[str, ...]:
        """The guide channels a method receives: the dataset's and :data:`SOURCE_MASK`."""
        return (*self.guide_channels, SOURCE_MASK)


def safe_std(std: np.ndarray) -> np.ndarray:
    """1 for channels constant (or never observed) in the train split, the std elsewhere.

    An availability mask that is 1 on every train chip has a std of 0; dividing by a floor of
    1e-6 sent a test chip's single 0 to -1e6 and the regression networks to RMSEs of 10^5.
    """
    std = np.asarray(std, np.float64)
    return np.where(std > 1e-6, std, 1.0)


def guide_statistics(channels: Sequence[str], mean: Any, std: Any) -> tuple[np.ndarray, np.ndarray]:
    """The float32 mean and std each guide channel is z-scored with: :func:`safe_std`, and
    availability masks left as 0/1 (mean 0, std 1), so that temporal methods read them as masks.
    Training, evaluation and ``gsr-bench predict`` all take them from here."""
    mean = np.array(mean, np.float32)
    std = safe_std(std).astype(np.float32)
    masks = [k for k, name in enumerate(channels) if sensor_of(name) == "mask"]
    mean[masks], std[masks] = 0.0, 1.0
    return mean, std


def normalize_guide(guide: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``[C, H, W]`` z-scored with ``mean``/``std``, no observation (NaN) as 0: the mean."""
    z = (guide - mean[:, None, None]) / std[:, None, None]
    return np.nan_to_num(z, nan=0.0).astype(np.float32)


@dataclass
class TileSet(torch.utils.data.Dataset):
    """Tiles of one prepared split, cropped (top-left) to ``crop``."""

    path: Path
    indices: list[int]
    info: DatasetInfo
    guide_mean: np.ndarray
    guide_std: np.ndarray
    crop: int
    degradation: Degradation = field(default_factory=Degradation)
    _file: h5py.File | None = field(default=None, repr=False)
    _pid: int = field(default=0, repr=False)
    _resident: dict[tuple[str, bool], TileArrays] = field(default_factory=dict, repr=False)
    _cache: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.indices)

    def _h5(self) -> h5py.File:
        # a handle inherited through fork (the stream tier's loader workers) is not safe to use
        if self._file is None or self._pid != os.getpid():
            self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
        return self._file

    def __getstate__(self) -> dict[str, Any]:  # h5py handles do not cross processes
        state = dict(self.__dict__)
        state["_file"] = None
        state["_resident"] = {}  # stream workers read what they need; never copy a whole split
        return state

    def _read(self, index: int) -> dict[str, Any]:
        f = self._h5()
        c = self.crop
        i = self.indices[index]
        guide = f["guide"][i, :, :c, :c].astype(np.float32)
        target = f["target"][i, :, :c, :c]
        valid = f["valid"][i, :, :c, :c]
        chip_id = f["chip_id"][i].decode()
        guide = normalize_guide(guide, self.guide_mean, self.guide_std)
        source, source_valid = degrade(target, valid, self.info.scale, self.degradation, chip_id)
        return {
            "guide": with_source_mask(
                torch.from_numpy(guide), torch.from_numpy(source_valid), self.info.scale
            ),
            "source": torch.from_numpy(source),
            "target": torch.from_numpy(target.astype(np.float32)),
            "valid": torch.from_numpy(valid.astype(bool)),
            "source_valid": torch.from_numpy(source_valid),
            "id": chip_id,
        }

    def release(self) -> None:
        """Drop what this set keeps in memory (resident arrays, cached samples, the HDF5 handle);
        it reads again from its file if used later."""
        self._resident.clear()
        self._cache.clear()
        if self._file is not None:
            self._file.close()
            self._file = None

    def ids(self) -> list[str]:
        """The tile ids of this set, in its order."""
        names = self._h5()["chip_id"]
        return [names[i].decode() for i in self.indices]

    def nbytes(self) -> int:
        """Memory of the whole split as :meth:`read_arrays` holds it (guide in the store's dtype)."""
        c, s = self.crop, self.info.scale
        guide_item = np.dtype(self._h5()["guide"].dtype).itemsize
        per_tile = len(self.info.guide_channels) * c * c * guide_item + c * c * (4 + 1) + (c // s) ** 2 * 4
        return per_tile * len(self)

    def resident(self, device: torch.device, pin: bool = False, progress: bool = False) -> TileArrays:
        """All tiles of this set as :class:`TileArrays` on ``device`` (pinned host memory with
        ``pin``), read once and kept for every later call."""
        key = (str(device), pin)
        if key not in self._resident:
            arrays = self.read_arrays(range(len(self)), progress=progress)
            self._resident[key] = arrays.pin_memory() if pin else arrays.to(device)
        return self._resident[key]

    def read_arrays(self, positions: Sequence[int], progress: bool = False) -> TileArrays:
        """Tiles ``positions`` (of this set) in bulk: the raw guide as stored, target, valid and
        the (degraded) source, read chunk by chunk straight into preallocated arrays."""
        f = self._h5()
        c, s = self.crop, self.info.scale
        positions = list(positions)
        n, channels = len(positions), len(self.info.guide_channels)
        guide = np.empty((n, channels, c, c), f["guide"].dtype)
        target = np.empty((n, 1, c, c), np.float32)
        valid = np.empty((n, 1, c, c), bool)
        source = np.empty((n, 1, c // s, c // s), np.float32)
        source_valid = np.empty((n, 1, c // s, c // s), bool)
        ids = f["chip_id"]
        full = f["guide"].shape[-1] == c
        for k, pos in enumerate(
            tqdm(positions, desc="load tiles", unit="tile", disable=not progress, leave=False)
        ):
            i = self.indices[pos]
            if full:  # one whole chunk each: no selection work in HDF5
                f["guide"].read_direct(guide, np.s_[i], np.s_[k])
                f["target"].read_direct(target, np.s_[i], np.s_[k])
                f["valid"].read_direct(valid, np.s_[i], np.s_[k])
            else:
                guide[k] = f["guide"][i, :, :c, :c]
                target[k] = f["target"][i, :, :c, :c]
                valid[k] = f["valid"][i, :, :c, :c]
            source[k], source_valid[k] = degrade(target[k], valid[k], s, self.degradation, ids[i].decode())
        return TileArrays(
            torch.from_numpy(guide),
            torch.from_numpy(target),
            torch.from_numpy(valid),
            torch.from_numpy(source),
            torch.from_numpy(source_valid),
            torch.from_numpy(self.guide_mean.astype(np.float32)),
            torch.from_numpy(self.guide_std.astype(np.float32)),
        )

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            index += len(self)
        if index in self._cache:
            return self._cache[index]
        sample = self._read(index)
        if self._bytes_per_tile() * len(self) <= IN_MEMORY_LIMIT:
            self._cache[index] = sample
        return sample

    def _bytes_per_tile(self) -> int:
        return (len(self.info.method_channels) + 2) * self.crop * self.crop * 4

    def batch(self, indices: list[int] | range) -> dict[str, Any]:
        """Several samples stacked into batch tensors (``id`` a list)."""
        samples = [self[i] for i in indices]
        out: dict[str, Any] = {
            k: torch.stack([s[k] for s in samples])
            for k in ("guide", "source", "target", "valid", "source_valid")
        }
        out["id"] = [s["id"] for s in samples]
        return out


@dataclass
class TileArrays:
    """Several tiles as batch tensors, the guide raw (store dtype, NaN = no observation) with the
    statistics that z-score it; what the batch samplers gather from."""

    guide: torch.Tensor  # [N, C, H, W]
    target: torch.Tensor  # [N, 1, H, W] float32
    valid: torch.Tensor  # [N, 1, H, W] bool
    source: torch.Tensor  # [N, 1, H/s, W/s] float32, degraded as the protocol says
    source_valid: torch.Tensor  # [N, 1, H/s, W/s] bool
    mean: torch.Tensor  # [C] float32
    std: torch.Tensor  # [C] float32

    def _map(self, fn: Any) -> TileArrays:
        return TileArrays(*(fn(getattr(self, f.name)) for f in fields(self)))

    def to(self, device: torch.device) -> TileArrays:
        return self._map(lambda t: t.to(device))

    def pin_memory(self) -> TileArrays:
        return self._map(lambda t: t.pin_memory())


@dataclass
class Splits:
    train: TileSet
    val: TileSet
    test: TileSet
    info: DatasetInfo


def open_prepared(
    dataset: GSRDataset,
    train_h5: Path,
    test_h5: Path,
    crop: int,
    degradation: Degradation,
    max_tiles: tuple[int, int, int] = (0, 0, 0),
) -> Splits:
    """Train/val/test tile sets of ``dataset`` from two prepared files; statistics always from train."""
    attrs = read_prepared_attrs(train_h5)
    test_attrs = read_prepared_attrs(test_h5)
    name = dataset.name
    if int(attrs["crop"]) < crop:
        raise DataError(f"{train_h5}: prepared at crop {attrs['crop']}, smaller than the protocol's {crop}")
    if attrs["guide_channels"] != test_attrs["guide_channels"]:
        raise DataError(f"{test_h5}: guide channels differ from {train_h5}")
    channels = tuple(json.loads(attrs["guide_channels"]))
    info = DatasetInfo(
        name=name,
        guide_channels=channels,
        scale=dataset.scale,
        data_range=dataset.data_range,
        bins=tuple(dataset.bins),
        revision=dataset.revision(),
        target_mean=float(attrs["target_mean"]),
        target_std=float(attrs["target_std"]),
        units=dataset.units,
        label=dataset.label,
        rgb_channels=dataset.rgb_indices(),
        source_name=dataset.source_name,
        guide=dataset.guide_label(),
    )
    with h5py.File(train_h5, "r") as f:
        is_val = f["is_val"][:]
    with h5py.File(test_h5, "r") as f:
        n_test = len(f["done"])
    train_idx = [int(i) for i in np.flatnonzero(~is_val)]
    val_idx = [int(i) for i in np.flatnonzero(is_val)]
    if not val_idx:  # tiny folders: hold out the last train chip rather than validate on nothing
        val_idx, train_idx = train_idx[-1:], train_idx[:-1]
    lists = [train_idx, val_idx, list(range(n_test))]
    for k, limit in enumerate(max_tiles):
        if limit:
            lists[k] = lists[k][:limit]
    for split, idx in zip(("train", "val", "test"), lists, strict=True):
        if not idx:
            raise DataError(f"{name}: the {split} split is empty")
    mean, std = guide_statistics(channels, attrs["guide_mean"], attrs["guide_std"])
    sets = [
        TileSet(path, idx, info, mean, std, crop, degradation)
        for path, idx in ((train_h5, lists[0]), (train_h5, lists[1]), (test_h5, lists[2]))
    ]
    return Splits(sets[0], sets[1], sets[2], info)


def open_test(
    path: Path,
    trained_on: Splits,
    crop: int,
    degradation: Degradation,
    max_tiles: int = 0,
    revision: str = "",
    data_range: float | None = None,
    bins: Sequence[float] | None = None,
) -> TileSet:
    """Every tile of one prepared split as a test set for methods trained on ``trained_on``:
    normalized with its train statistics, as the methods learned them; ``revision``,
    ``data_range`` and ``bins`` are the test data's own (its metrics are its dataset's)."""
    with h5py.File(path, "r") as f:
        n = len(f["done"])
    indices = list(range(min(n, max_tiles or n)))
    train = trained_on.train
    info = replace(
        trained_on.info,
        revision=revision,
        data_range=trained_on.info.data_range if data_range is None else float(data_range),
        bins=trained_on.info.bins if bins is None else tuple(bins),
    )
    return TileSet(path, indices, info, train.guide_mean, train.guide_std, crop, degradation)

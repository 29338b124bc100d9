"""Pack a dataset's split into one HDF5 store (``gsr-bench data prepare``, or the first run).

Raw files can cost dozens of reads a tile; training and evaluation read only the store. The file
is written as ``OUT.partial`` with a per-tile ``done`` flag and renamed to ``OUT`` only once
complete, so an interrupted run resumes where it stopped and no complete-looking file is ever
half written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from gsr_bench.errors import DataError, DiskFullError, check_room
from gsr_bench.faults import kill_point
from gsr_bench.parallel import Partial, default_workers, ordered_map, worker_pool
from gsr_bench.protocol import GUIDE_DTYPES

if TYPE_CHECKING:  # h5py is imported where used: pool workers only read tiles
    import h5py

    from gsr_bench.dataset import GSRDataset, Sample

log = logging.getLogger(__name__)

FORMAT_VERSION = "3"  # 3: written at the protocol's crop, from any GSRDataset; extras under extra/


def block_mean(image: np.ndarray, valid: np.ndarray, scale: int) -> np.ndarray:
    """Exact ``scale x scale`` block mean of ``image[..., H, W]`` over valid pixels (0 if none)."""
    *lead, h, w = image.shape
    shape = (*lead, h // scale, scale, w // scale, scale)
    total = np.where(valid, image, 0).reshape(shape).sum(axis=(-3, -1), dtype=np.float64)
    count = valid.reshape(shape).sum(axis=(-3, -1))
    return np.where(count > 0, total / np.maximum(count, 1), 0).astype(np.float32)


@dataclass
class PreparedTile:
    tile_id: str
    guide: np.ndarray
    target: np.ndarray
    valid: np.ndarray
    source: np.ndarray
    guide_sum: np.ndarray
    guide_sumsq: np.ndarray
    guide_count: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)


def prepare_tile(dataset: GSRDataset, crop: int, guide_dtype: str, tile: Any) -> PreparedTile:
    """Read one tile through the dataset, check it against the contract, crop it (top left)."""
    sample = dataset.read(tile)
    guide, target = _checked(dataset, sample, crop)
    guide = guide[:, :crop, :crop].astype(guide_dtype)
    target = target[None, :crop, :crop].astype(np.float32)
    if sample.valid is None:
        valid = np.isfinite(target)
        if dataset.nodata is not None:
            valid &= target != dataset.nodata
    else:
        mask = np.asarray(sample.valid, bool).reshape(np.shape(sample.valid)[-2:])
        valid = mask[None, :crop, :crop] & np.isfinite(target)
    target = np.where(valid, target, 0).astype(np.float32)
    # statistics of the values as stored, so that z-scoring uses what training reads
    finite = np.isfinite(guide)
    g = np.where(finite, guide, 0).astype(np.float64)
    return PreparedTile(
        tile_id=sample.id,
        guide=guide,
        target=target,
        valid=valid,
        source=block_mean(target, valid, dataset.scale),
        guide_sum=g.sum(axis=(1, 2)),
        guide_sumsq=(g * g).sum(axis=(1, 2)),
        guide_count=finite.sum(axis=(1, 2)).astype(np.float64),
        extras={k: np.asarray(v) for k, v in sample.extras.items()},
    )


class TileSizeError(DataError):
    """A tile smaller than the crop: a matter of options or protocol, not of a broken file."""


def _checked(dataset: GSRDataset, sample: Sample, crop: int) -> tuple[np.ndarray, np.ndarray]:
    where = f"dataset {dataset.name!r} tile {sample.id!r}"
    guide, target = np.asarray(sample.guide), np.asarray(sample.target)
    if target.ndim == 3 and target.shape[0] == 1:
        target = target[0]
    channels = len(dataset.guide_channels)
    if guide.ndim != 3 or guide.shape[0] != channels:
        raise DataError(
            f"{where}: guide of shape {guide.shape}, expected [{channels}, H, W] "
            f"(one plane per name in guide_channels)"
        )
    if target.ndim != 2 or target.shape != guide.shape[1:]:
        raise DataError(f"{where}: target of shape {target.shape}, expected [H, W] = {guide.shape[1:]}")
    if sample.valid is not None and np.shape(sample.valid)[-2:] != target.shape:
        raise DataError(f"{where}: valid mask of shape {np.shape(sample.valid)}, expected {target.shape}")
    h, w = target.shape
    if h < crop or w < crop:
        opts = ", ".join(f"{k}={v}" for k, v in dataset.options().items())
        raise TileSizeError(
            f"{where}: {w}x{h} pixels, smaller than the protocol's crop {crop}"
            + (f"; with options {opts} the dataset makes tiles of that size" if opts else "")
            + ": choose options that give larger tiles, or a protocol with a smaller task.crop"
        )
    return guide, target


def prepare_split(
    dataset: GSRDataset,
    split: str,
    out: str | Path,
    crop: int,
    workers: int | None = None,
    progress: bool = True,
    guide_dtype: str = "float16",
) -> Path:
    """Prepare ``split`` of ``dataset`` into ``out`` (HDF5) at ``crop``; returns ``out``.

    The guide is stored raw in ``guide_dtype``: float16 halves the memory a split needs (the full
    BioMassters train split: 15 GB instead of 30) at a relative rounding of 1/2048, far below the
    sensors' noise; the target stays float32.

    Raises:
        DataError: the split is empty, a tile breaks the contract, or a file is missing or
            malformed (all tiles' :meth:`~gsr_bench.dataset.GSRDataset.check` run first, so that
            nothing is written for a folder with broken files).
    """
    out = Path(out)
    tiles = list(dataset.tiles(split))
    if not tiles:
        raise DataError(f"dataset {dataset.name!r}: split {split!r} has no tiles")
    if crop % dataset.scale:
        raise DataError(
            f"crop {crop} is not a multiple of the scale {dataset.scale} of dataset {dataset.name!r}"
        )
    if guide_dtype not in GUIDE_DTYPES:
        raise DataError(f"guide dtype {guide_dtype!r} is not one of {', '.join(GUIDE_DTYPES)}")
    workers = default_workers() if workers is None else workers
    signature = json.dumps(
        {
            "format": FORMAT_VERSION,
            "dataset": dataset.name,
            "options": dataset.options(),
            "identity": dataset.identity(),
            "split": split,
            "crop": crop,
            "guide_dtype": guide_dtype,
            "tiles": hashlib.sha1(repr(tiles).encode()).hexdigest(),
        },
        sort_keys=True,
        default=str,
    )
    partial = out.with_name(out.name + ".partial")
    with worker_pool(min(workers, len(tiles))) as pool:
        _prepare(dataset, tiles, split, partial, signature, crop, guide_dtype, pool, progress)
    os.replace(partial, out)
    return out


def _prepare(
    dataset: GSRDataset,
    tiles: list[Any],
    split: str,
    partial: Path,
    signature: str,
    crop: int,
    guide_dtype: str,
    pool: Any,
    progress: bool,
) -> None:
    handle = _open_partial(partial, signature)
    if handle is None:
        _validate(dataset, tiles, pool, progress)
        partial.parent.mkdir(parents=True, exist_ok=True)
        handle = _create(partial, signature, len(tiles), crop, dataset, guide_dtype)
        handle.attrs.update(
            dataset=dataset.name,
            identity=dataset.identity(),
            options=json.dumps(dataset.options(), sort_keys=True, default=str),
            split=split,
            crop=crop,
            scale=dataset.scale,
            guide_channels=json.dumps(list(dataset.guide_channels)),
            code_version=_code_version(),
        )
    with handle as f:
        done = f["done"][:]
        pending = [i for i in range(len(tiles)) if not done[i]]
        bar = tqdm(
            total=len(tiles),
            initial=len(tiles) - len(pending),
            unit="tile",
            desc=f"prepare {dataset.name} {split}",
            disable=not progress,
            dynamic_ncols=True,
        )
        try:
            results = ordered_map(
                Partial(prepare_tile, dataset, crop, guide_dtype, position=3),
                [tiles[i] for i in pending],
                pool=pool,
            )
            for written, (i, item) in enumerate(zip(pending, results, strict=True), start=1):
                # HDF5 leaves a file it failed to write corrupt; one closed between tiles resumes
                need = 2 * sum(getattr(item, k).nbytes for k in ("guide", "target", "valid", "source"))
                check_room(partial.parent, need + 2**20, str(partial))
                _write(f, i, item, dataset)
                f.flush()  # a tile is ~100 ms of work: flushing each one bounds what a kill loses
                bar.update()
                kill_point("prepare", written)
        except (DiskFullError, TileSizeError):
            raise
        except DataError as exc:
            raise DataError(
                f"{exc} (work so far kept in {partial}: fix the file and rerun to resume)"
            ) from None
        finally:
            bar.close()
        _finish(f, split)


def _code_version() -> str:
    from gsr_bench import __version__

    return f"gsr-bench {__version__}, prepared format {FORMAT_VERSION}"


def _open_partial(partial: Path, signature: str) -> h5py.File | None:
    import h5py

    if not partial.exists():
        return None
    try:
        f = h5py.File(partial, "a")
    except OSError as exc:
        log.warning("%s: unreadable partial file (%s); starting over", partial, exc)
        partial.unlink()
        return None
    if f.attrs.get("signature") != signature:
        log.warning("%s: left by a different preparation; starting over", partial)
        f.close()
        partial.unlink()
        return None
    return f


def _validate(dataset: GSRDataset, tiles: list[Any], pool: Any, progress: bool) -> None:
    """The dataset's fast checks of every tile before anything is written (fails fast)."""
    problems: list[str] = []
    checks = ordered_map(dataset.check, tiles, pool=pool)
    for found in tqdm(checks, total=len(tiles), unit="tile", desc="check", disable=not progress, leave=False):
        problems.extend(found)
    if problems:
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        hint = f" ({dataset.check_hint()})" if dataset.check_hint() else ""
        raise DataError(f"{'; '.join(problems[:3])}{more}{hint}")


def _create(
    partial: Path, signature: str, n: int, crop: int, dataset: GSRDataset, guide_dtype: str
) -> h5py.File:
    import h5py

    c, lr = len(dataset.guide_channels), crop // dataset.scale
    f = h5py.File(partial, "w")
    f.attrs["signature"] = signature
    f.attrs["complete"] = False
    f.attrs["format_version"] = FORMAT_VERSION
    # Uncompressed: LZF on float images saved little and decoded at 40 tiles/s, as slow as the
    # raw TIFFs the store replaces; a plain chunk is one read into the destination array.
    f.create_dataset("guide", (n, c, crop, crop), guide_dtype, chunks=(1, c, crop, crop))
    f.create_dataset("target", (n, 1, crop, crop), np.float32, chunks=(1, 1, crop, crop))
    opts: dict[str, Any] = {"compression": "lzf", "shuffle": True}
    f.create_dataset("valid", (n, 1, crop, crop), bool, chunks=(1, 1, crop, crop), **opts)
    f.create_dataset("source", (n, 1, lr, lr), np.float32, chunks=(1, 1, lr, lr), **opts)
    f.create_dataset("chip_id", (n,), h5py.string_dtype())
    f.create_dataset("is_val", (n,), bool)
    for name in ("guide_sum", "guide_sumsq", "guide_count"):
        f.create_dataset(name, (n, c), np.float64)
    f.create_dataset("done", (n,), bool)
    return f


def _write(f: h5py.File, i: int, item: PreparedTile, dataset: GSRDataset) -> None:
    for name in ("guide", "target", "valid", "source", "guide_sum", "guide_sumsq", "guide_count"):
        f[name][i] = getattr(item, name)
    f["chip_id"][i] = item.tile_id
    f["is_val"][i] = dataset.is_val(item.tile_id)
    for name, value in item.extras.items():
        ds = f.require_dataset(f"extra/{name}", (len(f["done"]), *value.shape), value.dtype, exact=False)
        ds[i] = value
    f["done"][i] = True  # last: a tile counts as done only once all of it is written


def _finish(f: h5py.File, split: str) -> None:
    """Normalization statistics from the train part only, then the completion mark."""
    ids = [x.decode() if isinstance(x, bytes) else str(x) for x in f["chip_id"][:]]
    if len(set(ids)) != len(ids):
        dupes = sorted({x for x in ids if ids.count(x) > 1})[:3]
        raise DataError(f"split {split!r}: tile ids are not unique ({', '.join(dupes)})")
    use = ~f["is_val"][:] if split == "train" else np.ones(len(f["done"]), bool)
    n = f["guide_count"][:][use].sum(axis=0)
    mean = f["guide_sum"][:][use].sum(axis=0) / np.maximum(n, 1)
    var = f["guide_sumsq"][:][use].sum(axis=0) / np.maximum(n, 1) - mean**2
    f.attrs["guide_mean"] = mean
    f.attrs["guide_std"] = np.sqrt(np.maximum(var, 0))  # 0 for a constant channel: see tiles.safe_std
    t_sum = t_sq = t_n = 0.0
    for i in np.flatnonzero(use):
        t, v = f["target"][i], f["valid"][i]
        t_sum += float(t[v].sum(dtype=np.float64))
        t_sq += float((t[v].astype(np.float64) ** 2).sum())
        t_n += float(v.sum())
    t_mean = t_sum / max(t_n, 1)
    f.attrs["target_mean"] = t_mean
    f.attrs["target_std"] = float(np.sqrt(max(t_sq / max(t_n, 1) - t_mean**2, 1e-12)))
    f.attrs["prepared_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    f.attrs["complete"] = True
    f.flush()


def read_prepared_attrs(path: str | Path, rebuild: str = "rerun `gsr-bench data prepare`") -> dict[str, Any]:
    """Attributes of a prepared file; refuses a file not marked complete or of another format."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
    except OSError as exc:
        raise DataError(f"{path}: not a readable prepared HDF5 file ({exc}); {rebuild}") from None
    if not attrs.get("complete"):
        raise DataError(f"{path}: preparation did not complete; {rebuild}")
    if str(attrs.get("format_version")) != FORMAT_VERSION:
        raise DataError(
            f"{path}: prepared format {attrs.get('format_version')}, this gsr-bench reads "
            f"{FORMAT_VERSION}; {rebuild}"
        )
    return attrs

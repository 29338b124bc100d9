"""``gsr-bench data prepare``: pack a BioMassters split into one HDF5 file.

Raw TIFFs cost 24 file reads a tile; training and evaluation read only the prepared file. The
file is written as ``OUT.partial`` with a per-chip ``done`` flag and renamed to ``OUT`` only once
complete, so an interrupted run resumes where it stopped and no complete-looking file is ever
half written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from gsr_bench.data.biomassters import BioMasstersLayout, Chip, read_chip
from gsr_bench.data.check import check_chip
from gsr_bench.data.composite import get_composite
from gsr_bench.errors import DataError, DiskFullError, check_room
from gsr_bench.parallel import Partial, default_workers, ordered_map, worker_pool

if TYPE_CHECKING:  # h5py is imported where used: pool workers only read TIFFs and composite
    import h5py

log = logging.getLogger(__name__)

FORMAT_VERSION = "2"  # 2: guide stored in a compact dtype (float16 by default), uncompressed
GUIDE_DTYPES = ("float16", "float32")
SCALE = 10


def is_val_chip(chip_id: str) -> bool:
    """Deterministic 90/10 train/val split of the official train chips, by chip id hash."""
    return int(hashlib.sha1(chip_id.encode()).hexdigest(), 16) % 10 == 0


def block_mean(image: np.ndarray, valid: np.ndarray, scale: int) -> np.ndarray:
    """Exact ``scale x scale`` block mean of ``image[..., H, W]`` over valid pixels (0 if none)."""
    *lead, h, w = image.shape
    shape = (*lead, h // scale, scale, w // scale, scale)
    total = np.where(valid, image, 0).reshape(shape).sum(axis=(-3, -1), dtype=np.float64)
    count = valid.reshape(shape).sum(axis=(-3, -1))
    return np.where(count > 0, total / np.maximum(count, 1), 0).astype(np.float32)


@dataclass
class PreparedChip:
    chip_id: str
    guide: np.ndarray
    target: np.ndarray
    valid: np.ndarray
    source: np.ndarray
    s1_months: np.ndarray
    s2_months: np.ndarray
    fallback_month: int
    guide_sum: np.ndarray
    guide_sumsq: np.ndarray
    guide_count: np.ndarray


def prepare_chip(
    root: Path, chip: Chip, crop: int, composite: str, guide_dtype: str = "float16"
) -> PreparedChip:
    raw = read_chip(root, chip)
    h, w = raw.target.shape
    if h < crop or w < crop:
        raise DataError(
            f"{root / f'{chip.split}_agbm' / chip.agbm}: tile {w}x{h} is smaller than the crop {crop}"
        )
    fn, _ = get_composite(composite)
    comp = fn(raw)
    # statistics of the values as stored, so that z-scoring uses what training reads
    guide = comp.guide[:, :crop, :crop].astype(guide_dtype)
    target = raw.target[None, :crop, :crop]
    valid = np.isfinite(target) & (target >= 0)
    target = np.where(valid, target, 0).astype(np.float32)
    finite = np.isfinite(guide)
    g = np.where(finite, guide, 0).astype(np.float64)
    return PreparedChip(
        chip_id=chip.chip_id,
        guide=guide,
        target=target,
        valid=valid,
        source=block_mean(target, valid, SCALE),
        s1_months=raw.s1_present,
        s2_months=raw.s2_present,
        fallback_month=comp.fallback_month,
        guide_sum=g.sum(axis=(1, 2)),
        guide_sumsq=(g * g).sum(axis=(1, 2)),
        guide_count=finite.sum(axis=(1, 2)).astype(np.float64),
    )


def _check_errors(root: Path, chip: Chip) -> list[str]:
    return [str(p).removeprefix("error: ") for p in check_chip(root, chip) if p.severity == "error"]


def prepare_split(
    root: str | Path,
    split: str,
    out: str | Path,
    crop: int = 250,
    composite: str = "leafon-median",
    workers: int | None = None,
    progress: bool = True,
    guide_dtype: str = "float16",
) -> Path:
    """Prepare ``split`` of the BioMassters folder ``root`` into ``out`` (HDF5); returns ``out``.

    The guide is stored raw in ``guide_dtype``: float16 halves the memory a split needs (the full
    BioMassters train split: 15 GB instead of 30) at a relative rounding of 1/2048, far below the
    sensors' noise; the target stays float32.

    Raises:
        DataError: the folder, the split or any of its files is missing or malformed; nothing is
            written in that case.
    """
    layout = BioMasstersLayout(root)
    root = layout.root
    out = Path(out)
    chips = layout.chips(split)
    if not chips:
        raise DataError(
            f"{layout.metadata_path}: split {split!r} has no chips "
            f"(splits present: {', '.join(layout.splits()) or 'none'})"
        )
    if crop % SCALE:
        raise DataError(f"crop {crop} is not a multiple of the scale {SCALE}")
    if guide_dtype not in GUIDE_DTYPES:
        raise DataError(f"guide dtype {guide_dtype!r} is not one of {', '.join(GUIDE_DTYPES)}")
    workers = default_workers() if workers is None else workers
    get_composite(composite)  # an unknown name fails before any work
    signature = json.dumps(
        {
            "format": FORMAT_VERSION,
            "root": str(root.resolve()),
            "split": split,
            "crop": crop,
            "composite": composite,
            "guide_dtype": guide_dtype,
            "chips": hashlib.sha1(",".join(c.chip_id for c in chips).encode()).hexdigest(),
        },
        sort_keys=True,
    )
    partial = out.with_name(out.name + ".partial")
    with worker_pool(min(workers, len(chips))) as pool:
        _prepare(layout, chips, split, partial, signature, crop, composite, guide_dtype, pool, progress)
    os.replace(partial, out)
    return out


def _prepare(
    layout: BioMasstersLayout,
    chips: list[Chip],
    split: str,
    partial: Path,
    signature: str,
    crop: int,
    composite: str,
    guide_dtype: str,
    pool: Any,
    progress: bool,
) -> None:
    root = layout.root
    _, channels = get_composite(composite)
    handle = _open_partial(partial, signature)
    if handle is None:
        _validate(root, chips, pool, progress)
        partial.parent.mkdir(parents=True, exist_ok=True)
        handle = _create(partial, signature, chips, crop, channels, guide_dtype)
        handle.attrs.update(
            source_root=str(root.resolve()),
            split=split,
            crop=crop,
            scale=SCALE,
            composite=composite,
            guide_channels=json.dumps(list(channels)),
            file_count=sum(1 + len(c.s1) + len(c.s2) for c in chips),
            metadata_file=layout.metadata_path.name,
            code_version=_code_version(),
        )
    with handle as f:
        done = f["done"][:]
        pending = [i for i in range(len(chips)) if not done[i]]
        bar = tqdm(
            total=len(chips),
            initial=len(chips) - len(pending),
            unit="chip",
            desc=f"prepare {split}",
            disable=not progress,
            dynamic_ncols=True,
        )
        try:
            results = ordered_map(
                Partial(prepare_chip, root, crop, composite, guide_dtype, position=1),
                [chips[i] for i in pending],
                pool=pool,
            )
            for i, item in zip(pending, results, strict=True):
                # HDF5 leaves a file it failed to write corrupt; one closed between chips resumes
                need = 2 * sum(getattr(item, k).nbytes for k in ("guide", "target", "valid", "source"))
                check_room(partial.parent, need + 2**20, str(partial))
                _write(f, i, item)
                f.flush()  # a chip is ~100 ms of work: flushing each one bounds what a kill loses
                bar.update()
        except DiskFullError:
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


def _validate(root: Path, chips: list[Chip], pool: Any, progress: bool) -> None:
    """Header checks of every file before anything is written (fails fast, leaves nothing)."""
    problems: list[str] = []
    checks = ordered_map(Partial(_check_errors, root, position=1), chips, pool=pool)
    for found in tqdm(checks, total=len(chips), unit="chip", desc="check", disable=not progress, leave=False):
        problems.extend(found)
    if problems:
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise DataError(f"{'; '.join(problems[:3])}{more} (run `gsr-bench data check --root {root}`)")


def _create(
    partial: Path, signature: str, chips: list[Chip], crop: int, channels: tuple[str, ...], guide_dtype: str
) -> h5py.File:
    import h5py

    n, c, lr = len(chips), len(channels), crop // SCALE
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
    f.create_dataset("chip_id", data=np.array([ch.chip_id for ch in chips], dtype="S"))
    f.create_dataset("is_val", data=np.array([is_val_chip(ch.chip_id) for ch in chips]))
    f.create_dataset("s1_months", (n, 12), bool)
    f.create_dataset("s2_months", (n, 12), bool)
    f.create_dataset("fallback_month", (n,), np.int8)
    for name in ("guide_sum", "guide_sumsq", "guide_count"):
        f.create_dataset(name, (n, c), np.float64)
    f.create_dataset("done", (n,), bool)
    return f


def _write(f: h5py.File, i: int, item: PreparedChip) -> None:
    for name in (
        "guide",
        "target",
        "valid",
        "source",
        "s1_months",
        "s2_months",
        "guide_sum",
        "guide_sumsq",
        "guide_count",
    ):
        f[name][i] = getattr(item, name)
    f["fallback_month"][i] = item.fallback_month
    f["done"][i] = True  # last: a chip counts as done only once all of it is written


def _finish(f: h5py.File, split: str) -> None:
    """Normalization statistics from the train part only, then the completion mark."""
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
    fallback = f["fallback_month"][:]
    f.attrs["chips_with_s2_fallback"] = int((fallback >= 0).sum())
    f.attrs["chips_without_s2"] = int((fallback == -2).sum())
    f.attrs["prepared_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    f.attrs["complete"] = True
    f.flush()


def read_prepared_attrs(path: str | Path) -> dict[str, Any]:
    """Attributes of a prepared file; refuses a file not marked complete."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
    except OSError as exc:
        raise DataError(f"{path}: not a readable prepared HDF5 file ({exc})") from None
    if not attrs.get("complete"):
        raise DataError(f"{path}: preparation did not complete; rerun `gsr-bench data prepare`")
    return attrs

"""A dataset's prepared store: where it lives, how it is made once, and how it is opened.

The store of a dataset is keyed by its name, version, options, :meth:`~GSRDataset.identity`, the
protocol's crop, the store format and the guide dtype (:func:`store_key`); inside the key's
folder a ``signature`` file holds the data's content revision, so that a folder whose files
changed is prepared again rather than read as it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from gsr_bench.data.prepare import FORMAT_VERSION, prepare_split, read_prepared_attrs
from gsr_bench.data.tiles import Splits, TileSet, open_prepared, open_test
from gsr_bench.dataset import SPLITS, GSRDataset
from gsr_bench.errors import DataError
from gsr_bench.protocol import Protocol

log = logging.getLogger(__name__)


def store_key(dataset: GSRDataset, crop: int, guide_dtype: str) -> str:
    """The 12-digit key of ``dataset``'s store at ``crop`` and ``guide_dtype``."""
    key = {
        "dataset": dataset.name,
        "version": dataset.spec.version if dataset.spec else "",
        "options": dataset.options(),
        "identity": dataset.identity(),
        "crop": crop,
        "format": FORMAT_VERSION,
        "guide_dtype": guide_dtype,
    }
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


def prepare(
    dataset: GSRDataset,
    cache_dir: Path,
    crop: int,
    guide_dtype: str = "float16",
    progress: bool = True,
    workers: int | None = None,
    splits: Sequence[str] = SPLITS,
) -> dict[str, Path]:
    """``splits`` of ``dataset`` prepared (once) into the cache at ``crop``; their paths.

    Raises:
        DataError: a split to prepare has no tiles (before any split is prepared), or a
            prepared file is corrupt (naming the folder to delete).
    """
    dataset.setup(cache_dir, progress)
    folder = Path(cache_dir) / "prepared" / f"{dataset.name}-{store_key(dataset, crop, guide_dtype)}"
    signature, marker = dataset.content_revision(), folder / "signature"
    if folder.exists():
        found = marker.read_text().strip() if marker.is_file() else "none"
        if found != signature:
            log.warning(
                "%s: prepared from other files (signature %s, the data's now %s); preparing again",
                folder,
                found,
                signature,
            )
            shutil.rmtree(folder)
    missing = [s for s in splits if not (folder / f"{s}.h5").exists()]
    empty = [s for s in missing if not dataset.tiles(s)]
    if empty:  # before any split is prepared: a run would stop at the empty one anyway
        opts = ", ".join(f"{k}={v}" for k, v in dataset.options().items())
        raise DataError(
            f"dataset {dataset.name!r}: the {' and '.join(empty)} split has no tiles"
            + (f" (options {opts})" if opts else "")
            + "; nothing was prepared"
        )
    folder.mkdir(parents=True, exist_ok=True)
    if not marker.is_file() or marker.read_text().strip() != signature:
        # atomically: Ray workers and DDP ranks open the same store at once, and one that read a
        # half-written marker would take the store for another data's and delete it
        tmp = marker.with_name(f".signature.{os.getpid()}")
        tmp.write_text(signature + "\n")
        os.replace(tmp, marker)
    paths = {}
    for split in splits:
        path = folder / f"{split}.h5"
        if not path.exists():
            prepare_split(
                dataset, split, path, crop, workers=workers, progress=progress, guide_dtype=guide_dtype
            )
        read_prepared_attrs(path, rebuild=f"delete {folder} to rebuild it on the next run")
        paths[split] = path
    return paths


def load(
    dataset: GSRDataset,
    protocol: Protocol,
    cache_dir: Path,
    progress: bool = True,
    workers: int | None = None,
) -> Splits:
    """Train, validation and test tile sets of ``dataset`` under ``protocol``, prepared on
    first use."""
    d = protocol.data
    paths = prepare(dataset, cache_dir, protocol.task.crop, d.guide_dtype, progress, workers)
    return open_prepared(
        dataset,
        paths["train"],
        paths["test"],
        protocol.task.crop,
        protocol.task.degradation,
        (d.max_train_tiles, d.max_val_tiles, d.max_test_tiles),
    )


def load_test(
    dataset: GSRDataset,
    protocol: Protocol,
    cache_dir: Path,
    split: str,
    trained_on: Splits,
    progress: bool = True,
    workers: int | None = None,
) -> TileSet:
    """Every tile of ``dataset``'s ``split`` as the test set of methods trained on another
    dataset's ``trained_on``: the same channels and scale, z-scored with that dataset's statistics.

    Raises:
        DataError: the guide channels, the scale or the units differ (naming the first
            channel that differs).
    """
    info = trained_on.info
    if tuple(dataset.guide_channels) != tuple(info.guide_channels):
        ours, theirs = list(dataset.guide_channels), list(info.guide_channels)
        differ = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), None)
        where = f"channel {differ}: {ours[differ]!r} against {theirs[differ]!r}" if differ is not None else ""
        raise DataError(
            f"dataset {dataset.name!r} cannot test methods trained on {info.name!r}: its guide has "
            f"{len(ours)} channels, theirs {len(theirs)}{'; ' + where if where else ''}"
        )
    if dataset.scale != info.scale or dataset.units != info.units:
        raise DataError(
            f"dataset {dataset.name!r} (x{dataset.scale}, {dataset.units}) cannot test methods "
            f"trained on {info.name!r} (x{info.scale}, {info.units})"
        )
    d, task = protocol.data, protocol.task
    path = prepare(dataset, cache_dir, task.crop, d.guide_dtype, progress, workers, (split,))[split]
    return open_test(
        path,
        trained_on,
        task.crop,
        task.degradation,
        d.max_test_tiles,
        dataset.revision(),
        dataset.data_range,
        dataset.bins,
    )

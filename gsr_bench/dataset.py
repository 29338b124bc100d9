"""The dataset contract: what a dataset adapter declares and what it yields.

What the core does with it (prepare once into a cached store, normalize, crop, degrade, batch)
lives in ``gsr_bench.data``: :mod:`gsr_bench.data.store` prepares and opens a dataset's store.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from gsr_bench.registry import DatasetSpec

SPLITS = ("train", "test")


@dataclass
class Sample:
    """One tile as a dataset adapter yields it; the core stores, normalizes and crops it.

    Attributes:
        id: unique within its split; also decides the train/validation split (see
            :meth:`GSRDataset.is_val`).
        guide: ``[C, H, W]`` fine-resolution guide, any float or integer dtype, in the order of
            :attr:`GSRDataset.guide_channels`; NaN where nothing was observed (the core fills
            it with the channel's train mean after z-scoring).
        target: ``[H, W]`` (or ``[1, H, W]``) fine-resolution label in :attr:`GSRDataset.units`.
        valid: ``[H, W]`` bool, pixels that count in training and metrics; ``None`` means every
            finite pixel not equal to :attr:`GSRDataset.nodata`.
        extras: small per-tile arrays of the same shape on every tile of a split (months
            observed, a quality flag): stored beside the tile for diagnostics, never read by
            methods.
    """

    id: str
    guide: np.ndarray
    target: np.ndarray
    valid: np.ndarray | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)


class GSRDataset:
    """Base class of dataset adapters: the paired guide and fine target of one dataset.

    A dataset plugin subclasses it, declares its metadata as class or instance attributes, and
    implements :meth:`tiles` and :meth:`read`. Everything else is the core's: the first run
    reads every tile once (in parallel worker processes), crops it to the protocol's crop,
    computes the coarse source as the exact ``scale x scale`` block mean of the valid target
    pixels, and caches the result as HDF5 keyed by the dataset's name, version, options and
    :meth:`identity`; z-scoring the guide uses statistics of the train part only. A contributor
    never writes that store.

    The plugin registers it with a :class:`~gsr_bench.registry.DatasetSpec` whose ``factory``
    is the subclass; options given in the protocol (``[datasets.NAME]``) or on the command line
    (``--root``) reach its ``__init__`` as keyword arguments.

    Attributes:
        scale: ratio of the coarse source's pixel size to the fine target's (10 for 100 m to
            10 m). Protocol crops and patches must be multiples of it.
        units: unit of the target, shown in tables and figures (``"Mg/ha"``, ``"m"``).
        label: what the target is, for figure labels (``"AGB"``, ``"canopy height"``).
        data_range: the span of valid target values PSNR and SSIM are computed over.
        bins: edges of the target bins that metrics break errors down by, ascending: with
            ``(10, 50)`` the bins are ``<10``, ``10-50`` (10 <= t < 50) and ``>=50``.
        guide_channels: one name per guide channel, ``BAND`` or ``BAND@PERIOD``
            (``"B4@summer"``); methods find sensors and periods by these names.
        rgb: names of the three guide channels drawn as the RGB preview of figures, red first;
            ``None`` draws Sentinel-2's B4/B3/B2 when present, else the first three channels.
        nodata: target value that marks unlabelled pixels (besides NaN), when :class:`Sample`
            gives no ``valid`` mask.
        source_name: what the coarse source is called in figures (``"source (100 m)"``).
        time_series: the options that give this dataset a guide with one image per period
            (``{"composite": "monthly"}``), for temporal methods; ``None`` when it has none.

    Example:
        A folder of ``NAME_guide.npy`` / ``NAME_target.npy`` pairs::

            class NpyPairs(GSRDataset):
                scale, units, label, data_range = 8, "m", "height", 40.0
                guide_channels = ("red", "green", "blue")
                rgb = ("red", "green", "blue")

                def __init__(self, root: str) -> None:
                    self.root = Path(root)

                def identity(self) -> str:
                    return str(self.root.resolve())

                def tiles(self, split: str) -> list[Path]:
                    return sorted((self.root / split).glob("*_guide.npy"))

                def read(self, tile: Path) -> Sample:
                    name = tile.name.removesuffix("_guide.npy")
                    return Sample(name, np.load(tile), np.load(tile.with_name(f"{name}_target.npy")))
    """

    spec: DatasetSpec | None = None  # set by DatasetSpec.create
    scale: int = 10
    units: str = ""
    label: str = "target"
    data_range: float = 1.0
    bins: tuple[float, ...] = ()
    guide_channels: tuple[str, ...] = ()
    rgb: tuple[str, str, str] | None = None
    nodata: float | None = None
    source_name: str = "source"
    time_series: Mapping[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.spec.name if self.spec else type(self).__name__

    # --- what a subclass implements -----------------------------------------------------------

    def tiles(self, split: str) -> Sequence[Any]:
        """References of the tiles of ``split`` (``"train"`` or ``"test"``), in a fixed order.

        Cheap and picklable (paths, ids, ``(file, row, col)`` tuples): they travel to the worker
        processes that call :meth:`read`.
        """
        raise NotImplementedError

    def read(self, tile: Any) -> Sample:
        """Read one tile; runs in worker processes. Raise :class:`~gsr_bench.errors.DataError`
        naming the file and what is wrong with it."""
        raise NotImplementedError

    # --- what a subclass may override ---------------------------------------------------------

    def options(self) -> dict[str, Any]:
        """The options this instance was made with that change its data (a composite, a tile
        size): recorded with each run, part of its job key. Never a path: where the data sits
        is :meth:`identity`'s, what it is :meth:`content_revision`'s."""
        return {}

    def identity(self) -> str:
        """Where the raw data of this instance sits (a resolved folder path): part of the local
        cache's key only, never of a job key or a record."""
        return ""

    def content_revision(self) -> str:
        """What the raw data is, the same on every machine: part of every job key and of the
        prepared store's signature. The default digests :meth:`revision` and the tile counts;
        a dataset read from a folder overrides it with a digest of its files' names, sizes and
        checksums, so that a changed file or an added tile reruns the jobs that read it."""
        text = json.dumps([self.revision(), self.tile_counts()], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def setup(self, cache_dir: Path, progress: bool = True) -> None:
        """Make the raw data available (generate it, check a download) before :meth:`tiles`."""

    def check(self, tile: Any) -> list[str]:
        """Fast checks of one tile's files before anything is written (headers, sizes): one
        message per problem, naming the file. All tiles are checked before the first is read."""
        return []

    def check_hint(self) -> str:
        """What to run to see every problem :meth:`check` finds (said once after them)."""
        return ""

    def is_val(self, tile_id: str) -> bool:
        """Whether a train tile is held out for validation: 1 in 10, by a hash of its id."""
        return int(hashlib.sha1(tile_id.encode()).hexdigest(), 16) % 10 == 0

    def revision(self) -> str:
        """A line naming the data's release or generator, recorded with each run."""
        return ""

    def guide_label(self) -> str:
        """How this instance's guide differs from the dataset's default (``"monthly composite"``),
        or ``""``: results on another guide get their own leaderboard section."""
        return ""

    def tile_counts(self) -> dict[str, int]:
        """Tiles per split, for ``gsr-bench estimate``; override where listing needs the data."""
        return {split: len(self.tiles(split)) for split in SPLITS}

    # --- what the core does -------------------------------------------------------------------

    def rgb_indices(self) -> tuple[int, int, int]:
        from gsr_bench.channels import rgb_indices

        if self.rgb is None:
            return rgb_indices(self.guide_channels)
        names = list(self.guide_channels)
        r, g, b = (names.index(n) for n in self.rgb)
        return r, g, b

    def describe(self) -> dict[str, Any]:
        """What a run records about this dataset: its options, its content revision and its
        declared task."""
        return {
            "options": self.options(),
            "content_revision": self.content_revision(),
            "scale": self.scale,
            "units": self.units,
            "label": self.label,
        }

"""BioMassters (Nascetti et al., "BioMassters: A Benchmark Dataset for Forest Biomass Estimation
using Multi-modal Satellite Time-series", NeurIPS 2023 Datasets and Benchmarks).

Reads a local copy of the official release; the folder comes from the ``root`` option
(``gsr-bench run --root DIR``), else from ``GSR_BENCH_BIOMASSTERS_ROOT``.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from gsr_bench.api import DataError, GsrBenchError, GSRDataset, Sample
from gsr_bench_datasets.biomassters.composite import get_composite
from gsr_bench_datasets.biomassters.layout import (
    DOWNLOAD_HINT,
    METADATA_NAMES,
    BioMasstersLayout,
    Chip,
    read_chip,
)

ROOT_ENV = "GSR_BENCH_BIOMASSTERS_ROOT"
OFFICIAL_CHIPS = {"train": 8689, "test": 2773}  # the official release's chip counts


class BioMasstersFormat(GSRDataset):
    """A folder in the official BioMassters layout: one tile per chip, the guide a composite of
    its 12 monthly Sentinel-1/2 images, the target its LiDAR AGB map.

    Args:
        composite: how the monthly images become one guide: ``"leafon-median"`` (14 channels),
            ``"seasonal"`` or ``"monthly"`` (see ``gsr-bench list composites``).
    """

    scale = 10  # 100 m source over 10 m pixels
    units = "Mg/ha"
    label = "AGB"
    data_range = 500.0  # above the 99.9th percentile of BioMassters (about 425)
    bins = (10.0, 50.0, 100.0, 200.0, 300.0)  # <10 holds the unforested pixels (labels of 0)
    source_name = "source (100 m)"
    time_series = MappingProxyType({"composite": "monthly"})

    def __init__(self, composite: str = "leafon-median") -> None:
        try:
            _, self.guide_channels = get_composite(composite)
        except GsrBenchError as exc:
            raise GsrBenchError(f"dataset option composite: {exc}") from None
        self.composite = composite
        self._layout: BioMasstersLayout | None = None

    def __getstate__(self) -> dict[str, Any]:
        # workers read chips, which carry their files: never ship the whole metadata to them
        return {**self.__dict__, "_layout": None}

    def raw_root(self) -> Path:
        raise NotImplementedError

    def layout(self) -> BioMasstersLayout:
        if self._layout is None:
            self._layout = BioMasstersLayout(self.raw_root())
        return self._layout

    def options(self) -> dict[str, Any]:
        return {"composite": self.composite}

    def guide_label(self) -> str:
        return "" if self.composite == "leafon-median" else f"{self.composite} composite"

    def tiles(self, split: str) -> list[Chip]:
        return self.layout().chips(split)

    def check(self, tile: Chip) -> list[str]:
        from gsr_bench_datasets.biomassters.check import check_chip

        problems = check_chip(self.raw_root(), tile)
        return [str(p).removeprefix("error: ") for p in problems if p.severity == "error"]

    def check_hint(self) -> str:
        return f"run `gsr-bench data check --root {self.raw_root()}`"

    def read(self, tile: Chip) -> Sample:
        raw = read_chip(self.raw_root(), tile)
        fn, _ = get_composite(self.composite)
        comp = fn(raw)
        return Sample(
            tile.chip_id,
            comp.guide,
            raw.target,
            np.isfinite(raw.target) & (raw.target >= 0),
            extras={
                "s1_months": raw.s1_present,
                "s2_months": raw.s2_present,
                "fallback_month": np.int8(comp.fallback_month),
            },
        )


class BioMassters(BioMasstersFormat):
    """The official BioMassters release in a local folder.

    Args:
        root: the folder holding ``features_metadata.csv``; default ``$GSR_BENCH_BIOMASSTERS_ROOT``.
        composite: see :class:`BioMasstersFormat`.
    """

    def __init__(self, root: str | None = None, composite: str = "leafon-median") -> None:
        super().__init__(composite)
        self.root = root or os.environ.get(ROOT_ENV)

    def raw_root(self) -> Path:
        if not self.root:
            raise DataError(
                f"dataset 'biomassters' needs its folder: pass --root DIR or set {ROOT_ENV}; {DOWNLOAD_HINT}"
            )
        root = Path(self.root).expanduser()
        if not any((root / n).is_file() for n in METADATA_NAMES):
            raise DataError(f"{root}: not a BioMassters folder (no {METADATA_NAMES[0]}); {DOWNLOAD_HINT}")
        return root

    def identity(self) -> str:
        return str(self.raw_root().resolve())

    def revision(self) -> str:
        """``official`` for the whole release; a subset (a sample, a partial download) says so."""
        counts = self.tile_counts()
        if counts == OFFICIAL_CHIPS:
            return "official"
        # the digest, not the folder's name, tells two subsets apart: names are the user's
        return (
            f"{counts['train']} train + {counts['test']} test chips of the release "
            f"({self.content_revision()[:8]})"
        )

    def content_revision(self) -> str:
        """The digest of the folder's metadata rows (:meth:`BioMasstersLayout.content_digest`);
        ``official`` before the folder is given (``gsr-bench estimate`` plans without data)."""
        if not self.root:
            return "official"
        return self.layout().content_digest()

    def tile_counts(self) -> dict[str, int]:
        """From the folder's metadata when it is here, else the official release's counts."""
        if not self.root:
            return dict(OFFICIAL_CHIPS)
        return super().tile_counts()

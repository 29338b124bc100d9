"""BioMassters (Nascetti et al., "BioMassters: A Benchmark Dataset for Forest Biomass Estimation
using Multi-modal Satellite Time-series", NeurIPS 2023 Datasets and Benchmarks).

Reads a local copy of the official release; the folder comes from the ``root`` option
(``gsr-bench run --root DIR``), else from ``GSR_BENCH_BIOMASSTERS_ROOT``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gsr_bench.data.adapter import BioMasstersFormatAdapter
from gsr_bench.data.biomassters import DOWNLOAD_HINT, METADATA_NAMES
from gsr_bench.errors import DataError
from gsr_bench.protocol import Protocol

ROOT_ENV = "GSR_BENCH_BIOMASSTERS_ROOT"
OFFICIAL_CHIPS = {"train": 8689, "test": 2773}  # the official release's chip counts


class BioMassters(BioMasstersFormatAdapter):
    def __init__(self, root: str | None = None) -> None:
        self.root = root or os.environ.get(ROOT_ENV)

    def raw_root(self, protocol: Protocol, cache_dir: Path, progress: bool) -> Path:
        if not self.root:
            raise DataError(
                f"dataset 'biomassters' needs its folder: pass --root DIR or set {ROOT_ENV}; {DOWNLOAD_HINT}"
            )
        root = Path(self.root).expanduser()
        if not any((root / n).is_file() for n in METADATA_NAMES):
            raise DataError(f"{root}: not a BioMassters folder (no {METADATA_NAMES[0]}); {DOWNLOAD_HINT}")
        return root

    def revision(self, protocol: Protocol) -> str:
        return "official"

    def describe(self) -> dict[str, Any]:
        return {"root": str(Path(self.root).expanduser().resolve()) if self.root else None}

    def chip_counts(self, protocol: Protocol) -> dict[str, int]:
        """From the folder's metadata when it is here, else the official release's counts."""
        if not self.root:
            return dict(OFFICIAL_CHIPS)
        from gsr_bench.data.biomassters import BioMasstersLayout

        layout = BioMasstersLayout(self.root)
        return {split: len(layout.chips(split)) for split in ("train", "test")}

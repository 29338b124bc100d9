"""Read rate of prepared HDF5 tiles against the raw TIFFs of the same chips (`make bench`).

Raw: the 24 monthly files of a chip read and composited into the guide. Prepared: one HDF5 chunk
per array, decompressed and normalized into the sample contract.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gsr_bench.data.biomassters import BioMasstersLayout
from gsr_bench.data.composite import leafon_median
from gsr_bench.data.tiles import open_prepared
from gsr_bench.protocol import Degradation

pytestmark = pytest.mark.benchmark


def test_read_raw_tiffs(benchmark, synth_root: Path) -> None:  # type: ignore[no-untyped-def]
    layout = BioMasstersLayout(synth_root)
    chips = layout.chips("train")

    def read_all() -> None:
        for chip in chips:
            leafon_median(layout.read_chip(chip))

    benchmark.extra_info["tiles"] = len(chips)
    benchmark(read_all)


def test_read_prepared_hdf5(benchmark, prepared: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    splits = open_prepared(
        "s", prepared["train"], prepared["test"], 250, 10, (0.0,), 500.0, "", Degradation()
    )
    tiles = splits.train
    tiles.indices = list(range(9))  # every chip of the file, as the raw benchmark reads

    def read_all() -> None:
        for i in range(len(tiles)):
            tiles._read(i)  # uncached: the cost of a read from disk

    benchmark.extra_info["tiles"] = len(tiles)
    benchmark(read_all)

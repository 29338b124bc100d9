"""Read rate of prepared HDF5 tiles against the raw TIFFs of the same chips (`make bench`).

Raw: the 24 monthly files of a chip read and composited into the guide. Prepared: one HDF5 chunk
per array, decompressed and normalized into the sample contract.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gsr_bench.data.tiles import open_prepared
from gsr_bench.protocol import Degradation
from gsr_bench_datasets.biomassters.composite import leafon_median
from gsr_bench_datasets.biomassters.dataset import BioMassters
from gsr_bench_datasets.biomassters.layout import BioMasstersLayout

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
    splits = open_prepared(BioMassters(), prepared["train"], prepared["test"], 250, Degradation())
    tiles = splits.train
    tiles.indices = list(range(9))  # every chip of the file, as the raw benchmark reads

    def read_all() -> None:
        for i in range(len(tiles)):
            tiles._read(i)  # uncached: the cost of a read from disk

    benchmark.extra_info["tiles"] = len(tiles)
    benchmark(read_all)


@pytest.mark.parametrize("tier", ["device", "pinned", "stream"])
def test_sampler_paper_batch(benchmark, prepared: dict[str, Path], tier: str) -> None:  # type: ignore[no-untyped-def]
    """Training batches at the paper protocol's batch and patch (32 x 250 px), from each tier;
    compare tiles/s with ``test_training_step``'s to see which one a training run waits for."""
    import torch

    from gsr_bench.data.samplers import BatchSampler
    from gsr_bench.protocol import Loader, load_protocol

    splits = open_prepared(BioMassters(), prepared["train"], prepared["test"], 250, Degradation())
    train = load_protocol("paper").train
    sampler = BatchSampler(splits.train, train, Loader(tier=tier, workers=0), 0, torch.device("cpu"))
    steps = iter(range(10**9))

    def draw() -> None:
        step = next(steps)
        for _ in sampler.batches(step, step + 1):
            pass

    draw()  # loads the split once (device and pinned tiers)
    benchmark(draw)
    seconds = benchmark.stats.stats.median if benchmark.stats else float("nan")
    benchmark.extra_info.update(tier=tier, batch=train.batch_size, patch=train.patch_size)
    benchmark.extra_info["tiles_s"] = train.batch_size / seconds if seconds == seconds else None

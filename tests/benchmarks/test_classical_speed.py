"""Throughput of the training-free guided methods on 250 x 250 tiles (`make bench`).

JBU and the guided filter: a batch of 8 tiles, so Mpix/s = 8 * 62,500 / mean time / 1e6. P2P:
16 tiles fitted together against one tile, at the smoke budget, to show what batching buys.
"""

from __future__ import annotations

import pytest
import torch

from gsr_bench.bench import bench_inputs
from gsr_bench_methods.guided_filter import GuidedFilter
from gsr_bench_methods.jbu import JBU
from gsr_bench_methods.p2p import fit_predict

pytestmark = pytest.mark.benchmark
TASK, GUIDE, SOURCE = bench_inputs(14, 1, 16, torch.device("cpu"))


@pytest.fixture(scope="module")
def tiles() -> tuple[torch.Tensor, torch.Tensor]:
    return GUIDE, SOURCE


@pytest.mark.parametrize("name", ["jbu", "guided-filter"])
def test_classical_mpix_per_s(benchmark, tiles, name: str) -> None:  # type: ignore[no-untyped-def]
    method = JBU(TASK, sigma_r=0.4) if name == "jbu" else GuidedFilter(TASK, radius=5, eps=0.1)
    guide, source = tiles[0][:8], tiles[1][:8]
    benchmark.extra_info["pixels"] = 8 * 250 * 250
    benchmark(method.predict, guide, source)


@pytest.mark.parametrize("batch", [1, 16])
def test_p2p_tiles_per_s(benchmark, tiles, batch: int) -> None:  # type: ignore[no-untyped-def]
    guide, source = tiles[0][:batch], tiles[1][:batch]
    benchmark.extra_info["tiles"] = batch
    benchmark.pedantic(fit_predict, args=(guide, source, 10, list(range(batch)), 10), rounds=2, iterations=1)

"""Synthetic BioMassters: ``gsr_bench.data.synth`` written in the official layout into the cache
on first use, then prepared like the real data. Deterministic for a seed; the protocol sets its
size (``[data.synthetic]``)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from gsr_bench.data.adapter import BioMasstersFormatAdapter
from gsr_bench.data.synth import GENERATOR_VERSION, synthesize
from gsr_bench.protocol import Protocol


class BioMasstersSynthetic(BioMasstersFormatAdapter):
    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def _params(self, protocol: Protocol) -> tuple[int, int, int]:
        s = protocol.data.synthetic
        return s.train_chips, s.test_chips, s.seed if self.seed is None else self.seed

    def raw_root(self, protocol: Protocol, cache_dir: Path, progress: bool) -> Path:
        train, test, seed = self._params(protocol)
        root = cache_dir / "synthetic" / f"v{GENERATOR_VERSION}-seed{seed}-train{train}-test{test}"
        if not (root / "features_metadata.csv").exists():  # written last: its presence means done
            partial = root.with_name(root.name + ".partial")  # resumed: finished chips are kept
            synthesize(partial, train, seed, test_chips=test, progress=progress)
            shutil.rmtree(root, ignore_errors=True)
            partial.rename(root)
        return root

    def revision(self, protocol: Protocol) -> str:
        train, test, seed = self._params(protocol)
        return f"generator v{GENERATOR_VERSION}, seed {seed}, {train} train + {test} test chips"

    def describe(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def chip_counts(self, protocol: Protocol) -> dict[str, int]:
        train, test, _ = self._params(protocol)
        return {"train": train, "test": test}

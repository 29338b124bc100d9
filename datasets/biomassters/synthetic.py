"""Synthetic BioMassters: :mod:`gsr_bench_datasets.biomassters.synth` written in the official
layout into the cache on first use, then read like the real data. Deterministic for a seed."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from gsr_bench_datasets.biomassters.dataset import BioMasstersFormat
from gsr_bench_datasets.biomassters.synth import GENERATOR_VERSION, synthesize


class BioMasstersSynthetic(BioMasstersFormat):
    """A seeded simulation of Finnish forest in the BioMassters layout (no download).

    Args:
        train_chips: chips of the train split (one in ten of them validates).
        test_chips: chips of the test split.
        seed: generator seed; the same seed writes the same files.
        composite: see :class:`~gsr_bench_datasets.biomassters.dataset.BioMasstersFormat`.
    """

    def __init__(
        self, train_chips: int = 60, test_chips: int = 20, seed: int = 0, composite: str = "leafon-median"
    ) -> None:
        super().__init__(composite)
        self.train_chips, self.test_chips, self.seed = int(train_chips), int(test_chips), int(seed)
        self.folder: Path | None = None

    def _name(self) -> str:
        return f"v{GENERATOR_VERSION}-seed{self.seed}-train{self.train_chips}-test{self.test_chips}"

    def setup(self, cache_dir: Path, progress: bool = True) -> None:
        root = Path(cache_dir) / "synthetic" / self._name()
        if not (root / "features_metadata.csv").exists():  # written last: its presence means done
            partial = root.with_name(root.name + ".partial")  # resumed: finished chips are kept
            synthesize(partial, self.train_chips, self.seed, test_chips=self.test_chips, progress=progress)
            shutil.rmtree(root, ignore_errors=True)
            partial.rename(root)
        self.folder, self._layout = root, None

    def raw_root(self) -> Path:
        if self.folder is None:
            raise RuntimeError("BioMasstersSynthetic.setup(cache_dir) has not run")
        return self.folder

    def identity(self) -> str:
        return f"generator {self._name()}"

    def revision(self) -> str:
        return (
            f"generator v{GENERATOR_VERSION}, seed {self.seed}, "
            f"{self.train_chips} train + {self.test_chips} test chips"
        )

    def content_revision(self) -> str:
        """The generator's version and parameters: they decide every file it writes."""
        return f"generator {self._name()}"

    def options(self) -> dict[str, Any]:
        return {
            "train_chips": self.train_chips,
            "test_chips": self.test_chips,
            "seed": self.seed,
            **super().options(),
        }

    def tile_counts(self) -> dict[str, int]:
        return {"train": self.train_chips, "test": self.test_chips}

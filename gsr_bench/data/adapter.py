"""The base of BioMassters-format dataset adapters: a raw folder, prepared once, then tiles."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from gsr_bench.data.prepare import FORMAT_VERSION, prepare_split, read_prepared_attrs
from gsr_bench.data.tiles import Splits, open_prepared
from gsr_bench.errors import DataError
from gsr_bench.protocol import Protocol

PREPARED_CROP = 250  # the prepared files hold 250 x 250; protocols may crop smaller at read time


class BioMasstersFormatAdapter:
    """A dataset in the official BioMassters layout.

    Subclasses say where the raw folder is (``raw_root``); this class prepares its train and test
    splits into the cache once (keyed by folder, composite and format) and opens them.
    """

    spec: Any = None
    data_range: float = 500.0  # Mg/ha: above the 99.9th percentile of BioMassters (about 425)
    scale: int = 10

    def raw_root(self, protocol: Protocol, cache_dir: Path, progress: bool) -> Path:
        raise NotImplementedError

    def revision(self, protocol: Protocol) -> str:
        return ""

    def describe(self) -> dict[str, Any]:
        """Options recorded with each run (and hashed into the job key)."""
        return {}

    def chip_counts(self, protocol: Protocol) -> dict[str, int]:
        """Chips of the ``train`` and ``test`` splits, without reading or preparing any data."""
        raise NotImplementedError

    def load(
        self, protocol: Protocol, cache_dir: Path, progress: bool = True, workers: int | None = None
    ) -> Splits:
        root = self.raw_root(protocol, cache_dir, progress)
        key = json.dumps(
            {
                "root": str(root.resolve()),
                "composite": protocol.data.composite,
                "crop": PREPARED_CROP,
                "format": FORMAT_VERSION,
                "guide_dtype": protocol.data.guide_dtype,
            },
            sort_keys=True,
        )
        name = self.spec.name if self.spec else type(self).__name__
        folder = cache_dir / "prepared" / f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"
        paths = {}
        for split in ("train", "test"):
            path = folder / f"{split}.h5"
            if not path.exists():
                prepare_split(
                    root,
                    split,
                    path,
                    PREPARED_CROP,
                    protocol.data.composite,
                    workers=workers,
                    progress=progress,
                    guide_dtype=protocol.data.guide_dtype,
                )
            try:
                read_prepared_attrs(path)
            except DataError as exc:
                rebuild = (
                    f"gsr-bench data prepare --root {root} --split {split} --out {path} "
                    f"--composite {protocol.data.composite} --guide-dtype {protocol.data.guide_dtype}"
                )
                raise DataError(
                    f"{exc}; rebuild it with `{rebuild}` (or delete it to rebuild on the next run)"
                ) from None
            paths[split] = path
        d = protocol.data
        return open_prepared(
            name,
            paths["train"],
            paths["test"],
            protocol.task.crop,
            protocol.task.scale,
            tuple(protocol.eval.bins),
            self.data_range,
            self.revision(protocol),
            protocol.task.degradation,
            (d.max_train_tiles, d.max_val_tiles, d.max_test_tiles),
        )

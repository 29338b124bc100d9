"""A folder of paired guide and target rasters as a gsr-bench dataset.

The folder says what its rasters are in ``dataset.toml`` (scale, units, channel names); every
``NAME_guide.tif`` / ``NAME_target.tif`` pair of a split is cut into square tiles.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from gsr_bench.api import DataError, GSRDataset, Sample, read_tiff, tiff_header

Tile = tuple[str, str, int, int]  # (split, raster name, row, column) of a tile's top-left pixel
REQUIRED = ("scale", "units", "channels")


class RasterFolder(GSRDataset):
    """Paired rasters from ``ROOT/{train,test}/NAME_{guide,target}.tif``, cut into tiles.

    Args:
        root: the folder; its ``dataset.toml`` declares ``scale``, ``units``, ``channels`` and
            optionally ``label``, ``data_range``, ``bins``, ``rgb`` and ``nodata``.
        tile: side of the square tiles, in target pixels (a multiple of the scale).

    Raises:
        DataError: the folder or its ``dataset.toml`` is missing or incomplete.
    """

    def __init__(self, root: str | None = None, tile: int = 64) -> None:
        if not root:
            raise DataError("dataset 'raster-folder' needs its folder: pass --root DIR")
        self.root = Path(root).expanduser().resolve()
        self.tile = int(tile)
        meta = self._metadata()
        self.scale = int(meta["scale"])
        self.units = str(meta["units"])
        self.label = str(meta.get("label", "target"))
        self.data_range = float(meta.get("data_range", 1.0))
        self.bins = tuple(float(b) for b in meta.get("bins", ()))
        self.guide_channels = tuple(str(c) for c in meta["channels"])
        rgb = meta.get("rgb")
        self.rgb = (str(rgb[0]), str(rgb[1]), str(rgb[2])) if rgb else None
        self.nodata = float(meta["nodata"]) if "nodata" in meta else None
        self.source_name = f"source (x{self.scale})"
        if self.tile % self.scale:
            raise DataError(f"dataset option tile {self.tile} is not a multiple of the scale {self.scale}")

    def _metadata(self) -> dict[str, Any]:
        path = self.root / "dataset.toml"
        if not path.is_file():
            raise DataError(f"{path}: missing; it declares the rasters' scale, units and channels")
        try:
            meta = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise DataError(f"{path}: not valid TOML ({exc})") from None
        missing = [k for k in REQUIRED if k not in meta]
        if missing:
            raise DataError(f"{path}: missing {', '.join(missing)}")
        return meta

    def options(self) -> dict[str, Any]:
        # what changes the data: the folder is where it sits (identity), not part of any key
        return {"tile": self.tile}

    def identity(self) -> str:
        return str(self.root)

    def content_revision(self) -> str:
        """What the folder holds, wherever it is: its declaration and every raster's name and size."""
        import hashlib

        files = [self.root / "dataset.toml", *sorted(self.root.glob("*/*.tif"))]
        listing = [f"{p.relative_to(self.root).as_posix()} {p.stat().st_size}" for p in files if p.is_file()]
        return hashlib.sha256("\n".join(listing).encode()).hexdigest()[:16]

    def revision(self) -> str:
        counts = {split: len(self._pairs(split)) for split in ("train", "test")}
        pairs = f"{counts['train']} train + {counts['test']} test pairs"
        return f"raster folder of {pairs} ({self.content_revision()[:8]})"

    def _pairs(self, split: str) -> list[str]:
        return sorted(p.name.removesuffix("_guide.tif") for p in (self.root / split).glob("*_guide.tif"))

    def tiles(self, split: str) -> list[Tile]:
        out: list[Tile] = []
        for name in self._pairs(split):
            (h, w), _, _ = tiff_header(self.root / split / f"{name}_target.tif")
            out += [
                (split, name, r, c)
                for r in range(0, h - self.tile + 1, self.tile)
                for c in range(0, w - self.tile + 1, self.tile)
            ]
        return out

    def check(self, tile: Tile) -> list[str]:
        split, name, r, c = tile
        if r or c:  # one check per raster pair, not per tile
            return []
        guide, target = self._paths(split, name)
        try:
            g_hw, bands, _ = tiff_header(guide)
            t_hw, _, _ = tiff_header(target)
        except DataError as exc:
            return [str(exc)]
        problems = []
        if bands != len(self.guide_channels):
            problems.append(f"{guide}: {bands} bands, dataset.toml names {len(self.guide_channels)} channels")
        if g_hw != t_hw:
            problems.append(f"{guide}: {g_hw[1]}x{g_hw[0]} pixels, its target has {t_hw[1]}x{t_hw[0]}")
        return problems

    def _paths(self, split: str, name: str) -> tuple[Path, Path]:
        folder = self.root / split
        return folder / f"{name}_guide.tif", folder / f"{name}_target.tif"

    def read(self, tile: Tile) -> Sample:
        split, name, r, c = tile
        guide_path, target_path = self._paths(split, name)
        window = np.s_[r : r + self.tile, c : c + self.tile]
        guide = read_tiff(guide_path, len(self.guide_channels))[(slice(None), *window)]
        target = read_tiff(target_path, 1)[0][window]
        return Sample(f"{name}_r{r}_c{c}", guide, target)

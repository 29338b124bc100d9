"""Reader of the official BioMassters layout (Nascetti et al., NeurIPS 2023 Datasets & Benchmarks).

The layout::

    ROOT/features_metadata.csv   (or biomassters_features_metadata.csv)
    ROOT/train_features/{chip}_S1_{MM}.tif  4 bands float32 dB, -9999 = no data
    ROOT/train_features/{chip}_S2_{MM}.tif  11 bands uint16 (10 bands x 10000, CLP 0-100, 255)
    ROOT/train_agbm/{chip}_agbm.tif         1 band float32, Mg/ha
    ROOT/test_features/, ROOT/test_agbm/    the same for the test chips

Month index ``MM``: 00 = September ... 11 = August. The metadata file is the source of truth:
files are found through it, never by globbing, and a month that it does not list is absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gsr_bench.api import S1_BANDS, S2_BANDS, DataError, read_tiff

MONTHS = (
    "September",
    "October",
    "November",
    "December",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
)
S2_FILE_BANDS = (*S2_BANDS, "CLP")
LEAF_ON_MONTHS = (7, 8, 9, 10, 11)  # April .. August
S1_NODATA = -9999.0
CLP_INVALID = 255
METADATA_NAMES = ("features_metadata.csv", "biomassters_features_metadata.csv")
REQUIRED_COLUMNS = ("filename", "chip_id", "satellite", "split", "month")
SENSOR_BANDS = {"S1": len(S1_BANDS), "S2": len(S2_FILE_BANDS)}
SENSOR_DTYPES = {"S1": np.dtype("float32"), "S2": np.dtype("uint16"), "agbm": np.dtype("float32")}
DOWNLOAD_HINT = (
    "get the data with `gsr-bench data download --root DIR` (add --dry-run to see the sizes "
    "first) and point --root or GSR_BENCH_BIOMASSTERS_ROOT at that folder"
)


@dataclass(frozen=True)
class FeatureFile:
    filename: str
    chip_id: str
    sensor: str
    split: str
    month: int
    size: int | None = None
    cksum: int | None = None


@dataclass
class Chip:
    chip_id: str
    split: str
    agbm: str
    s1: dict[int, FeatureFile] = field(default_factory=dict)
    s2: dict[int, FeatureFile] = field(default_factory=dict)


@dataclass
class RawChip:
    """All of a chip's images, absent months and no-data as NaN."""

    chip_id: str
    s1: np.ndarray  # [12, 4, H, W] dB
    s2: np.ndarray  # [12, 10, H, W] reflectance x 10000
    clp: np.ndarray  # [12, H, W] cloud probability 0-100, 255 invalid, NaN absent
    target: np.ndarray  # [H, W] Mg/ha

    @property
    def s1_present(self) -> np.ndarray:
        return np.asarray(~np.isnan(self.s1).all(axis=(1, 2, 3)))

    @property
    def s2_present(self) -> np.ndarray:
        return np.asarray(~np.isnan(self.clp).all(axis=(1, 2)))


def month_index(value: object, where: str) -> int:
    """Month index 0-11 from a month name (``"September"``) or a number (``"00"``, 3)."""
    text = str(value).strip()
    for i, name in enumerate(MONTHS):
        if text.lower() in (name.lower(), name[:3].lower()):
            return i
    if text.isdigit() and 0 <= int(text) < 12:
        return int(text)
    raise DataError(f"{where}: month {value!r} is neither a month name nor an index 00-11")


def _optional_int(value: object) -> int | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


class BioMasstersLayout:
    """The chips of a BioMassters folder, as its metadata CSV lists them.

    Args:
        root: folder holding the metadata CSV and the ``*_features``/``*_agbm`` folders.

    Raises:
        DataError: the folder or the metadata is missing, or the metadata lacks columns.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"{self.root}: BioMassters folder not found; {DOWNLOAD_HINT}")
        found = [self.root / n for n in METADATA_NAMES if (self.root / n).is_file()]
        if not found:
            raise DataError(f"{self.root}: no {' or '.join(METADATA_NAMES)} in this folder; {DOWNLOAD_HINT}")
        self.metadata_path = found[0]
        import pandas as pd  # here: preparation workers read chips, never the metadata

        try:
            table = pd.read_csv(self.metadata_path, dtype={"chip_id": str, "month": str})
        except Exception as exc:
            raise DataError(f"{self.metadata_path}: not a readable CSV ({exc})") from None
        missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
        if missing:
            raise DataError(
                f"{self.metadata_path}: missing column(s) {', '.join(missing)}; "
                f"expected at least {', '.join(REQUIRED_COLUMNS)}"
            )
        # keyed by split and id: a chip id may appear in both splits and must not merge them
        self._chips: dict[tuple[str, str], Chip] = {}
        for row in table.itertuples(index=False):
            self._add_row(row)

    def _add_row(self, row: Any) -> None:
        where = f"{self.metadata_path} row {getattr(row, 'filename', '?')}"
        sensor = str(row.satellite).upper()
        if sensor not in SENSOR_BANDS:
            raise DataError(f"{where}: satellite {sensor!r} is neither S1 nor S2")
        split = str(row.split).strip().lower()
        chip_id = str(row.chip_id)
        agbm = getattr(row, "corresponding_agbm", None)
        agbm = str(agbm) if isinstance(agbm, str) and agbm else f"{chip_id}_agbm.tif"
        file = FeatureFile(
            filename=str(row.filename),
            chip_id=chip_id,
            sensor=sensor,
            split=split,
            month=month_index(row.month, where),
            size=_optional_int(getattr(row, "size", None)) or None,  # 0 is a placeholder, not a size
            cksum=_optional_int(getattr(row, "cksum", None)),
        )
        chip = self._chips.setdefault((split, chip_id), Chip(chip_id, split, agbm))
        (chip.s1 if sensor == "S1" else chip.s2)[file.month] = file

    def splits(self) -> list[str]:
        return sorted({c.split for c in self._chips.values()})

    def chips(self, split: str | None = None) -> list[Chip]:
        """Chips of a split (all when None), sorted by id."""
        return sorted(
            (c for c in self._chips.values() if split is None or c.split == split),
            key=lambda c: c.chip_id,
        )

    def content_digest(self) -> str:
        """What this folder holds, the same wherever it sits: a digest of every listed file's
        name, split, size and checksum, the labels' from ``{split}_agbm_metadata.csv`` where the
        folder has it (the official release does), so a changed or added file changes it."""
        import csv
        import hashlib

        labels: dict[tuple[str, str], list[Any]] = {}
        for split in self.splits():
            path = self.root / f"{split}_agbm_metadata.csv"
            if path.is_file():
                with path.open(newline="") as f:
                    for row in csv.DictReader(f):
                        labels[(split, row.get("filename", ""))] = [row.get("size"), row.get("cksum")]
        rows: list[list[Any]] = []
        for chip in self.chips():
            for file in [*chip.s1.values(), *chip.s2.values()]:
                rows.append([file.split, file.filename, file.size, file.cksum])
            rows.append([chip.split, chip.agbm, *labels.get((chip.split, chip.agbm), [None, None])])
        text = "\n".join(",".join(str(v) for v in r) for r in sorted(rows, key=str))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def feature_path(self, file: FeatureFile) -> Path:
        return feature_path(self.root, file)

    def agbm_path(self, chip: Chip) -> Path:
        return agbm_path(self.root, chip)

    def read_chip(self, chip: Chip) -> RawChip:
        return read_chip(self.root, chip)


def feature_path(root: Path, file: FeatureFile) -> Path:
    return root / f"{file.split}_features" / file.filename


def agbm_path(root: Path, chip: Chip) -> Path:
    return root / f"{chip.split}_agbm" / chip.agbm


def read_chip(root: Path, chip: Chip) -> RawChip:
    """Read every file of a chip; all must share the label's height and width."""
    target_path = agbm_path(root, chip)
    target = read_tiff(target_path, 1)[0]
    h, w = target.shape
    raw = empty_chip(chip.chip_id, target)
    for files, sensor in ((chip.s1, "S1"), (chip.s2, "S2")):
        for month, file in files.items():
            path = feature_path(root, file)
            image = read_tiff(path, SENSOR_BANDS[sensor])
            if image.shape[1:] != (h, w):
                raise DataError(
                    f"{path}: size {image.shape[2]}x{image.shape[1]} differs from the "
                    f"label's {w}x{h} ({target_path.name})"
                )
            place_image(raw, sensor, month, image)
    return raw


def empty_chip(chip_id: str, target: np.ndarray) -> RawChip:
    """A chip of ``target``'s size with every month absent (NaN)."""
    h, w = target.shape
    s1 = np.full((12, len(S1_BANDS), h, w), np.nan, np.float32)
    s2 = np.full((12, len(S2_BANDS), h, w), np.nan, np.float32)
    return RawChip(chip_id, s1, s2, np.full((12, h, w), np.nan, np.float32), target)


def place_image(chip: RawChip, sensor: str, month: int, image: np.ndarray) -> None:
    """One monthly file's bands into ``chip``: S1's no-data as NaN; S2's last band is the cloud
    probability. The one conversion of the official files, for tiles and scenes alike."""
    if sensor == "S1":
        image = np.where(image == S1_NODATA, np.nan, image).astype(np.float32)
        chip.s1[month] = image
    else:
        chip.s2[month] = image[:-1]
        chip.clp[month] = image[-1]

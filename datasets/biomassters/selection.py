"""What ``gsr-bench data download`` fetches: the official metadata, filtered to a selection.

The selection is made from the metadata alone (the bucket is never listed for features), so a
dry run costs two small downloads and the same selection gives the same files everywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from gsr_bench.api import DataError
from gsr_bench_datasets.biomassters.layout import LEAF_ON_MONTHS, MONTHS, month_index

SPLITS = ("train", "test")
SENSORS = ("S1", "S2")
LABEL = "agbm"


@dataclass(frozen=True)
class Selection:
    """Which files of the release to fetch.

    Attributes:
        splits: ``train``, ``test`` or both.
        months: month indices, 0 = September ... 11 = August.
        sensors: ``S1``, ``S2`` or both (none: labels only).
        labels: whether the AGB labels come too.
        chips: a seeded sample of this many chips per split (``None``: every chip).
        seed: the sample's seed.
        chip_ids: only these chips (``None``: no such filter).
    """

    splits: tuple[str, ...] = SPLITS
    months: tuple[int, ...] = tuple(range(12))
    sensors: tuple[str, ...] = SENSORS
    labels: bool = True
    chips: int | None = None
    seed: int = 0
    chip_ids: tuple[str, ...] | None = None

    def describe(self) -> dict[str, Any]:
        """The selection as the manifest records it (chip ids by count and digest)."""
        out = asdict(self)
        out["months"] = [MONTHS[m] for m in self.months]
        if self.chip_ids is not None:
            text = "\n".join(sorted(self.chip_ids))
            out["chip_ids"] = {
                "count": len(self.chip_ids),
                "sha256": hashlib.sha256(text.encode()).hexdigest(),
            }
        return out


@dataclass(frozen=True)
class RemoteFile:
    """One object of the release; ``key`` is also its path under the download root."""

    key: str
    split: str
    kind: str  # S1, S2 or agbm
    size: int | None
    cksum: int | None = None


def parse_months(text: str) -> tuple[int, ...]:
    """``"leafon"`` (the months the default composite reads), ``"all"``, or a comma-separated
    list of indices and month names (``"7,8,May"``)."""
    words = [w.strip() for w in str(text).split(",") if w.strip()]
    if words == ["leafon"]:
        return LEAF_ON_MONTHS
    if words == ["all"]:
        return tuple(range(12))
    months: set[int] = set()
    for word in words:
        try:
            months.add(month_index(word, "--months"))
        except DataError:
            names = ", ".join(m[:3] for m in MONTHS)
            raise DataError(
                f"--months: unknown month {word!r}; use leafon, all, indices 0-11 (0 = September) "
                f"or names ({names})"
            ) from None
    if not months:
        raise DataError("--months: no month given")
    return tuple(sorted(months))


def parse_sensors(text: str) -> tuple[str, ...]:
    """A comma-separated list of sensors (``"S1,S2"``); ``"none"`` for labels only."""
    words = [w.strip().upper() for w in str(text).split(",") if w.strip()]
    if words == ["NONE"]:
        return ()
    unknown = [w for w in words if w not in SENSORS]
    if unknown or not words:
        raise DataError(f"--sensors: unknown sensor {', '.join(unknown) or repr(text)}; valid: S1, S2, none")
    return tuple(s for s in SENSORS if s in words)


def sample_chips(ids: Iterable[str], n: int, seed: int, split: str) -> list[str]:
    """``n`` chip ids drawn by seed: the ``n`` smallest digests of ``seed:id``, so the sample
    does not depend on the order of the metadata, and the sample of ``n`` is within that of
    ``n + 1`` (growing a subset keeps what was downloaded)."""
    unique = sorted(set(ids))
    if n > len(unique):
        raise DataError(f"--chips {n}: the {split} split has {len(unique)} chips")
    ranked = sorted(unique, key=lambda c: hashlib.sha256(f"{seed}:{c}".encode()).hexdigest())
    return sorted(ranked[:n])


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def select(
    features: Sequence[Mapping[str, str]],
    labels: Mapping[str, Sequence[Mapping[str, str]]],
    selection: Selection,
) -> tuple[list[RemoteFile], list[Mapping[str, str]], dict[str, list[Mapping[str, str]]]]:
    """The files of ``selection`` and the metadata rows that describe them.

    Args:
        features: rows of ``features_metadata.csv``.
        labels: rows of ``{split}_agbm_metadata.csv`` by split (a split may have none).
        selection: what to keep.

    Returns:
        The files (features, then labels, sorted by key), the kept feature rows and the kept
        label rows by split.

    Raises:
        DataError: a chip id of ``selection.chip_ids`` is not in the metadata, or
            ``selection.chips`` is larger than a split.
    """
    by_split: dict[str, set[str]] = {s: set() for s in selection.splits}
    for row in features:
        split = str(row["split"]).strip().lower()
        if split in by_split:
            by_split[split].add(str(row["chip_id"]))
    if selection.chip_ids is not None:
        known = set().union(*by_split.values())
        unknown = sorted(set(selection.chip_ids) - known)
        if unknown:
            shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise DataError(
                f"--chip-ids: {len(unknown)} chip id(s) not in the {'/'.join(selection.splits)} "
                f"metadata: {shown}"
            )
        by_split = {s: ids & set(selection.chip_ids) for s, ids in by_split.items()}
    if selection.chips is not None:
        by_split = {
            s: set(sample_chips(ids, selection.chips, selection.seed, s)) for s, ids in by_split.items()
        }
    kept: list[Mapping[str, str]] = []
    agbm: dict[tuple[str, str], str] = {}
    files: list[RemoteFile] = []
    for row in features:
        split, chip = str(row["split"]).strip().lower(), str(row["chip_id"])
        if chip not in by_split.get(split, ()):
            continue
        agbm[(split, chip)] = str(row.get("corresponding_agbm") or f"{chip}_agbm.tif")
        sensor = str(row["satellite"]).upper()
        if sensor not in selection.sensors or month_index(row["month"], "metadata") not in selection.months:
            continue
        kept.append(row)
        key = f"{split}_features/{row['filename']}"
        files.append(RemoteFile(key, split, sensor, _int(row.get("size")) or None, _int(row.get("cksum"))))
    kept_labels: dict[str, list[Mapping[str, str]]] = {}
    if selection.labels:
        for split in selection.splits:
            rows = {str(r["filename"]): r for r in labels.get(split, ())}
            for (s, _chip), name in sorted(agbm.items()):
                if s != split:
                    continue
                found = rows.get(name)
                if found is not None:
                    kept_labels.setdefault(split, []).append(found)
                size, cksum = (
                    (_int(found.get("size")) or None, _int(found.get("cksum"))) if found else (None, None)
                )
                files.append(RemoteFile(f"{split}_agbm/{name}", split, LABEL, size, cksum))
    return sorted(files, key=lambda f: f.key), kept, kept_labels

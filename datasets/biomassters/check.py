"""``gsr-bench data check``: validate a BioMassters folder against its metadata, and its statistics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gsr_bench.api import DataError, FineScale, fine_scale, tiff_header
from gsr_bench_datasets.biomassters.layout import (
    LEAF_ON_MONTHS,
    SENSOR_BANDS,
    SENSOR_DTYPES,
    BioMasstersLayout,
    Chip,
    agbm_path,
    feature_path,
)


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str
    severity: str = "error"  # "error" fails the check; "warning" is read fine but unusual

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.message}"


def check_chip(root: Path, chip: Chip) -> list[Problem]:
    """Header-level checks of one chip's files: presence, byte size, shape, bands, dtype."""
    problems: list[Problem] = []
    label = agbm_path(root, chip)
    expected_hw: tuple[int, int] | None = None
    try:
        expected_hw, bands, dtype = tiff_header(label)
        if bands != 1:
            problems.append(Problem(label, f"expected 1 band, found {bands}"))
        if dtype != SENSOR_DTYPES["agbm"]:
            problems.append(Problem(label, f"dtype {dtype}, official is float32", "warning"))
    except DataError as exc:
        problems.append(Problem(label, str(exc).removeprefix(f"{label}: ")))
    for file in [*chip.s1.values(), *chip.s2.values()]:
        path = feature_path(root, file)
        try:
            hw, bands, dtype = tiff_header(path)
        except DataError as exc:
            problems.append(Problem(path, str(exc).removeprefix(f"{path}: ")))
            continue
        if file.size is not None and path.stat().st_size != file.size:
            problems.append(Problem(path, f"{path.stat().st_size} bytes, metadata says {file.size}"))
        if bands != SENSOR_BANDS[file.sensor]:
            problems.append(Problem(path, f"expected {SENSOR_BANDS[file.sensor]} bands, found {bands}"))
        if expected_hw is not None and hw != expected_hw:
            problems.append(
                Problem(
                    path,
                    f"size {hw[1]}x{hw[0]} differs from the label's {expected_hw[1]}x{expected_hw[0]}",
                )
            )
        if dtype != SENSOR_DTYPES[file.sensor]:
            problems.append(
                Problem(path, f"dtype {dtype}, official is {SENSOR_DTYPES[file.sensor]}", "warning")
            )
    return problems


@dataclass
class CheckReport:
    root: Path
    metadata: Path
    chips: dict[str, int]
    months: dict[str, list[int]]  # sensor -> chips with that month present, per month index
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def check_layout(layout: BioMasstersLayout, split: str | None = None) -> CheckReport:
    chips = layout.chips(split)
    months = {"S1": [0] * 12, "S2": [0] * 12}
    problems: list[Problem] = []
    for chip in chips:
        for m in chip.s1:
            months["S1"][m] += 1
        for m in chip.s2:
            months["S2"][m] += 1
        problems.extend(check_chip(layout.root, chip))
    return CheckReport(
        layout.root, layout.metadata_path, dict(Counter(c.split for c in chips)), months, problems
    )


def data_statistics(layout: BioMasstersLayout, max_chips: int = 100, seed: int = 0) -> dict[str, float]:
    """The figures that compare a folder with the real BioMassters (``data check --stats``).

    AGB distribution, S1 ascending VV/VH, S2 band means over all months, and the correlation of
    AGB with NDVI and with B12 on leaf-on months, over up to ``max_chips`` chips drawn at random.
    """
    chips = [c for c in layout.chips() if layout.agbm_path(c).is_file()]
    if not chips:
        raise DataError(f"{layout.root}: no chip with a label file to compute statistics from")
    rng = np.random.default_rng(seed)
    picked = [chips[i] for i in sorted(rng.permutation(len(chips))[:max_chips])]
    agb, vv, vh, ndvi_r, b12_r = [], [], [], [], []
    s2_sum, s2_n = np.zeros(10), np.zeros(10)
    for chip in picked:
        raw = layout.read_chip(chip)
        agb.append(raw.target.ravel())
        vv.append(raw.s1[:, 0][np.isfinite(raw.s1[:, 0])])
        vh.append(raw.s1[:, 1][np.isfinite(raw.s1[:, 1])])
        clear = np.isfinite(raw.clp) & (raw.clp <= 50)
        for b in range(10):
            band = raw.s2[:, b][clear]
            s2_sum[b] += band.sum()
            s2_n[b] += band.size
        for m in LEAF_ON_MONTHS:
            ok = clear[m] & np.isfinite(raw.target)
            if ok.mean() < 0.8 or raw.target[ok].std() == 0:
                continue
            red, nir, b12 = raw.s2[m, 2][ok], raw.s2[m, 6][ok], raw.s2[m, 9][ok]
            ndvi = (nir - red) / np.maximum(nir + red, 1.0)
            ndvi_r.append(np.corrcoef(raw.target[ok], ndvi)[0, 1])
            b12_r.append(np.corrcoef(raw.target[ok], b12)[0, 1])
    a = np.concatenate(agb)
    a = a[np.isfinite(a)]
    v, h = np.concatenate(vv), np.concatenate(vh)
    out = {
        "chips": float(len(picked)),
        "agb_mean": float(a.mean()),
        "agb_std": float(a.std()),
        "agb_p99_9": float(np.percentile(a, 99.9)),
        "agb_zero_pct": float((a == 0).mean() * 100),
        "s1_vv_asc_mean": float(v.mean()) if v.size else float("nan"),
        "s1_vv_asc_std": float(v.std()) if v.size else float("nan"),
        "s1_vh_asc_mean": float(h.mean()) if h.size else float("nan"),
        "s1_vh_asc_std": float(h.std()) if h.size else float("nan"),
        "corr_agb_ndvi_leafon": float(np.nanmean(ndvi_r)) if ndvi_r else float("nan"),
        "corr_agb_b12_leafon": float(np.nanmean(b12_r)) if b12_r else float("nan"),
    }
    for b, name in enumerate(("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")):
        out[f"s2_{name}_mean"] = float(s2_sum[b] / s2_n[b]) if s2_n[b] else float("nan")
    return out


def fine_scale_statistics(
    layout: BioMasstersLayout, max_chips: int = 100, seed: int = 0, composite: str = "leafon-median"
) -> list[FineScale]:
    """The within-block share and guide R² (``gsr_bench.data.finescale``) of up to ``max_chips``
    chips drawn at random, on the guide composite runs use."""
    from gsr_bench_datasets.biomassters.composite import get_composite

    fn, _ = get_composite(composite)
    chips = [c for c in layout.chips() if layout.agbm_path(c).is_file()]
    rng = np.random.default_rng(seed)
    picked = [chips[i] for i in sorted(rng.permutation(len(chips))[:max_chips])]
    found = []
    for chip in picked:
        raw = layout.read_chip(chip)
        valid = np.isfinite(raw.target) & (raw.target >= 0)
        found.append(fine_scale(chip.chip_id, fn(raw).guide, raw.target, valid, 10))
    return found

"""Guide composites: from a chip's 12 monthly S1/S2 images to one C x H x W guide."""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gsr_bench.api import MASK_PREFIX, GsrBenchError
from gsr_bench_datasets.biomassters.layout import (
    CLP_INVALID,
    LEAF_ON_MONTHS,
    MONTHS,
    S1_BANDS,
    S2_BANDS,
    RawChip,
)

CLOUDY = 50.0


@dataclass
class Composite:
    guide: np.ndarray  # [C, H, W] float32, NaN where no observation at all
    fallback_month: int  # -1: leaf-on months used; 0-11: the S2 month used instead; -2: no S2


def _cloud_mask(clp: np.ndarray) -> np.ndarray:
    return np.isnan(clp) | (clp > CLOUDY) | (clp == CLP_INVALID)


def _nan_reduce(fn: Callable[..., np.ndarray], stack: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # all-NaN pixels are expected and handled by the caller
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(fn(stack, axis=0), dtype=np.float32)


def nan_median(stack: np.ndarray) -> np.ndarray:
    """``np.nanmedian(stack, axis=0)`` for a short first axis (months), about 10x faster.

    NumPy's version goes through masked arrays. Here NaN becomes +inf, the few values of every
    pixel are sorted by an odd-even transposition network (whole-array minimum and maximum, no
    per-pixel work), and the middle one or two of the finite values are averaged.
    """
    rows = [np.where(np.isnan(v), np.inf, v) for v in stack]
    n = len(rows)
    for rnd in range(n):
        for i in range(rnd % 2, n - 1, 2):
            rows[i], rows[i + 1] = np.minimum(rows[i], rows[i + 1]), np.maximum(rows[i], rows[i + 1])
    ordered = np.stack(rows)
    count = np.isfinite(ordered).sum(axis=0)
    lo = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0)[None], axis=0)[0]
    hi = np.take_along_axis(ordered, np.minimum(count // 2, n - 1)[None], axis=0)[0]
    middle = np.where(count % 2 == 1, lo, (lo + hi) / 2)
    return np.where(count > 0, middle, np.nan).astype(np.float32)


def _least_cloudy(chip: RawChip, months: list[int]) -> int:
    clp = np.where(chip.clp[months] == CLP_INVALID, 100.0, chip.clp[months])
    return months[int(np.argmin(np.nanmean(clp.reshape(len(months), -1), axis=1)))]


def leafon_median(chip: RawChip) -> Composite:
    """Median of S2 B2..B12 over clear leaf-on pixels + mean of the four S1 bands over 12 months.

    A pixel cloudy in every leaf-on month takes the leaf-on month where it is least cloudy. A chip
    with no clear leaf-on pixel at all falls back to its least cloudy S2 month, whatever the season.
    """
    present = chip.s2_present
    leafon = [m for m in LEAF_ON_MONTHS if present[m]]
    fallback = -1
    if leafon and not _cloud_mask(chip.clp[leafon]).all():
        stack = chip.s2[leafon].copy()
        cloudy = _cloud_mask(chip.clp[leafon])
        stack[np.broadcast_to(cloudy[:, None], stack.shape)] = np.nan
        s2 = nan_median(stack)
        holes = np.isnan(s2).all(axis=0)
        if holes.any():
            clp = np.where(np.isnan(chip.clp[leafon]), np.inf, chip.clp[leafon])
            best = np.argmin(clp, axis=0)
            filler = np.take_along_axis(chip.s2[leafon], best[None, None], axis=0)[0]
            s2[:, holes] = filler[:, holes]
    elif present.any():
        fallback = _least_cloudy(chip, [int(m) for m in np.flatnonzero(present)])
        s2 = chip.s2[fallback].astype(np.float32)
    else:
        fallback = -2
        s2 = np.full((len(S2_BANDS), *chip.target.shape), np.nan, np.float32)
    s1 = _nan_reduce(np.nanmean, chip.s1)
    return Composite(np.concatenate([s2, s1]).astype(np.float32), fallback)


# BioMassters months run from September (index 0) to August (11)
SEASONS = {"autumn": (0, 1, 2), "winter": (3, 4, 5), "spring": (6, 7, 8), "summer": (9, 10, 11)}
MONTH_LABELS = tuple(m[:3] for m in MONTHS)


def _clear_s2(chip: RawChip) -> np.ndarray:
    """``[12, 10, H, W]`` S2 with cloudy, invalid and absent observations set to NaN."""
    s2 = chip.s2.astype(np.float32, copy=True)
    s2[np.broadcast_to(_cloud_mask(chip.clp)[:, None], s2.shape)] = np.nan
    return s2


def _any_s2(chip: RawChip) -> int:
    return -1 if chip.s2_present.any() else -2


def seasonal(chip: RawChip) -> Composite:
    """Per season (autumn, winter, spring, summer): the median of clear S2 observations and the
    mean of S1; NaN where a season has no observation of that pixel."""
    s2 = _clear_s2(chip)
    parts = []
    for months in SEASONS.values():
        parts.append(nan_median(s2[list(months)]))
        parts.append(_nan_reduce(np.nanmean, chip.s1[list(months)]))
    return Composite(np.concatenate(parts).astype(np.float32), _any_s2(chip))


def monthly(chip: RawChip) -> Composite:
    """All 12 months, S2 (cloudy pixels NaN) then S1 each month, then two availability masks per
    month: clear S2 and present S1 (1 or 0), for methods that model time."""
    s2 = _clear_s2(chip)
    parts = []
    for m in range(12):
        parts.extend([s2[m], chip.s1[m]])
    clear = np.isfinite(s2).all(axis=1)
    present = np.isfinite(chip.s1).all(axis=1)
    parts.extend([clear.astype(np.float32), present.astype(np.float32)])
    return Composite(np.concatenate(parts).astype(np.float32), _any_s2(chip))


def _names(bands: tuple[str, ...], period: str) -> tuple[str, ...]:
    return tuple(f"{b}@{period}" for b in bands)


COMPOSITES: dict[str, tuple[Callable[[RawChip], Composite], tuple[str, ...]]] = {
    "leafon-median": (leafon_median, (*S2_BANDS, *S1_BANDS)),
    "seasonal": (
        seasonal,
        tuple(c for season in SEASONS for c in _names((*S2_BANDS, *S1_BANDS), season)),
    ),
    "monthly": (
        monthly,
        (
            *(c for month in MONTH_LABELS for c in _names((*S2_BANDS, *S1_BANDS), month)),
            *(f"{MASK_PREFIX}S2@{m}" for m in MONTH_LABELS),
            *(f"{MASK_PREFIX}S1@{m}" for m in MONTH_LABELS),
        ),
    ),
}


def get_composite(name: str) -> tuple[Callable[[RawChip], Composite], tuple[str, ...]]:
    """The composite function and its channel names."""
    try:
        return COMPOSITES[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(COMPOSITES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        known = ", ".join(COMPOSITES)
        raise GsrBenchError(f"unknown guide composite {name!r}{hint}; known: {known}") from None

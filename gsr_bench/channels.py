"""Guide channel names: ``BAND`` or ``BAND@PERIOD`` (``B4``, ``B4@summer``, ``VV_asc@Jan``).

The names travel with the prepared data, so a method can find the sensors it wants (ResNeXt's
separate S1 and S2 entries) or regroup a series by period (methods that want time).
"""

from __future__ import annotations

# Sentinel-1 (polarization and orbit direction) and Sentinel-2 (L2A band) channel names
S1_BANDS = ("VV_asc", "VH_asc", "VV_desc", "VH_desc")
S2_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
MASK_PREFIX = "avail_"  # availability masks: ``avail_S2@Jan`` is 1 where January's S2 is clear
# the last guide channel every method receives: 1 where the pixel's source block has a value
SOURCE_MASK = f"{MASK_PREFIX}source"


def split_channel(name: str) -> tuple[str, str]:
    """``"B4@summer"`` -> ``("B4", "summer")``; a name without a period gets ``""``."""
    band, _, period = name.partition("@")
    return band, period


def sensor_of(name: str) -> str:
    """``"S1"``, ``"S2"``, ``"mask"`` or ``"other"`` (an RGB guide, a plugin's own channels)."""
    band, _ = split_channel(name)
    if band in S1_BANDS:
        return "S1"
    if band in S2_BANDS:
        return "S2"
    if band.startswith(MASK_PREFIX):
        return "mask"
    return "other"


def periods(channels: tuple[str, ...] | list[str]) -> list[str]:
    """The periods in the order they first appear (``[""]`` for a single composite)."""
    seen: list[str] = []
    for name in channels:
        period = split_channel(name)[1]
        if period not in seen:
            seen.append(period)
    return seen


def rgb_indices(channels: tuple[str, ...] | list[str]) -> tuple[int, int, int]:
    """Indices of B4, B3, B2 for figures, from the period with the most light (summer, July).

    Falls back to the first three channels for guides without Sentinel-2 bands.
    """
    names = list(channels)
    for period in ("", "summer", "Jul", *periods(names)):
        wanted = [f"{b}@{period}" if period else b for b in ("B4", "B3", "B2")]
        if all(w in names for w in wanted):
            r, g, b = (names.index(w) for w in wanted)
            return r, g, b
    return (0, 1, 2) if len(names) >= 3 else (0, 0, 0)

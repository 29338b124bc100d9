"""``gsr-bench data check --stats --plot FILE.png``: every S2 and S1 band, month by month, over
forest (AGB > 50 Mg/ha) and open land (AGB = 0), so that a real folder and a synthetic one can be
laid side by side."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from gsr_bench.api import S1_BANDS, S2_BANDS
from gsr_bench_datasets.biomassters.layout import MONTHS, BioMasstersLayout

CLASSES = {"forest (AGB > 50)": lambda t: t > 50, "open (AGB = 0)": lambda t: t == 0}
PER_CHIP = 2000  # pixels sampled per chip, month and class: enough for percentiles


def band_samples(layout: BioMasstersLayout, max_chips: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    """``{class: [band, month, sample]}`` values (S2 reflectance x 10000 on clear pixels, S1 dB),
    NaN where a chip has no such pixel or month."""
    rng = np.random.default_rng(seed)
    chips = [c for c in layout.chips() if layout.agbm_path(c).is_file()]
    picked = [chips[i] for i in sorted(rng.permutation(len(chips))[:max_chips])]
    bands = len(S2_BANDS) + len(S1_BANDS)
    out = {k: np.full((bands, 12, len(picked) * PER_CHIP), np.nan, np.float32) for k in CLASSES}
    for c, chip in enumerate(picked):
        raw = layout.read_chip(chip)
        for name, select in CLASSES.items():
            where = select(np.nan_to_num(raw.target, nan=-1.0))
            for m in range(12):
                clear = where & np.isfinite(raw.clp[m]) & (raw.clp[m] <= 50)
                stacks = ((raw.s2[m], clear, 0), (raw.s1[m], where, len(S2_BANDS)))
                for image, mask, first in stacks:
                    idx = np.flatnonzero(mask & np.isfinite(image).all(axis=0))
                    if idx.size == 0:
                        continue
                    take = rng.choice(idx, min(PER_CHIP, idx.size), replace=False)
                    values = image.reshape(image.shape[0], -1)[:, take]
                    out[name][first : first + image.shape[0], m, c * PER_CHIP : c * PER_CHIP + take.size] = (
                        values
                    )
    return out


def plot_bands(samples: dict[str, np.ndarray], path: Path, title: str) -> None:
    """One panel a band: the median and 10-90 % range per month, one colour a class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [*S2_BANDS, *(f"{b} (dB)" for b in S1_BANDS)]
    fig, axes = plt.subplots(4, 4, figsize=(14, 11), sharex=True)
    months = np.arange(12)
    for b, ax in enumerate(axes.ravel()):
        if b >= len(names):
            ax.axis("off")
            continue
        for (cls, data), colour in zip(samples.items(), ("tab:green", "tab:brown"), strict=False):
            values = data[b]
            ok = np.isfinite(values).sum(axis=1) > 20
            if not ok.any():
                continue
            with warnings.catch_warnings():  # months without such pixels: NaN, drawn as gaps
                warnings.simplefilter("ignore", RuntimeWarning)
                lo, mid, hi = np.nanpercentile(np.where(ok[:, None], values, np.nan), [10, 50, 90], axis=1)
            ax.plot(months[ok], mid[ok], color=colour, label=cls)
            ax.fill_between(months[ok], lo[ok], hi[ok], color=colour, alpha=0.2)
        ax.set_title(names[b], fontsize=9)
        ax.set_xticks(months, [m[:3] for m in MONTHS], fontsize=7, rotation=90)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

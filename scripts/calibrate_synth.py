"""The simulator's figures that the real BioMassters constrains, from chips simulated in memory
(no files): within-block share and guide R², AGB distribution, S1/S2 means, corr(AGB, NDVI).

    python scripts/calibrate_synth.py --chips 40 [--seed 0] [--workers 2]

What issue #12 calibrated synthetic v3 with; ``data check --stats`` gives the same figures for a
folder on disk (real or synthetic).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from gsr_bench.data.finescale import FineScale, fine_scale, summarize
from gsr_bench.parallel import ordered_map
from gsr_bench_datasets.biomassters.composite import leafon_median
from gsr_bench_datasets.biomassters.layout import CLP_INVALID, RawChip
from gsr_bench_datasets.biomassters.synth import as_raw_chip, simulate_chip


def raw_chip(seed: int, index: int) -> RawChip:
    return as_raw_chip(simulate_chip(np.random.default_rng([seed, index])), f"{seed}-{index}")


def chip_figures(job: tuple[int, int]) -> dict[str, Any]:
    raw = raw_chip(*job)
    t = raw.target
    valid = np.isfinite(t) & (t >= 0)
    fs = fine_scale(raw.chip_id, leafon_median(raw).guide, t, valid, 10)
    clear = np.isfinite(raw.clp) & (raw.clp <= 50) & (raw.clp != CLP_INVALID)
    ndvi_r = []
    for m in (7, 8, 9, 10, 11):
        ok = clear[m] & valid
        if ok.mean() < 0.8 or t[ok].std() == 0:
            continue
        red, nir = raw.s2[m, 2][ok], raw.s2[m, 6][ok]
        ndvi_r.append(np.corrcoef(t[ok], (nir - red) / np.maximum(nir + red, 1.0))[0, 1])
    return {
        "share": fs.share,
        "r2": fs.r2,
        "sum": float(t.sum()),
        "sumsq": float((t.astype(np.float64) ** 2).sum()),
        "n": float(t.size),
        "zeros": float((t == 0).sum()),
        "ndvi": float(np.mean(ndvi_r)) if ndvi_r else np.nan,
        "top": np.sort(t.ravel())[-1000:],  # enough for the pooled 99.9th percentile
        "vv": float(np.nanmean(raw.s1[:, 0])),
        "vh": float(np.nanmean(raw.s1[:, 1])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chips", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    start = time.perf_counter()
    rows = list(ordered_map(chip_figures, [(args.seed, i) for i in range(args.chips)], args.workers))
    n = sum(r["n"] for r in rows)
    mean = sum(r["sum"] for r in rows) / n
    std = np.sqrt(sum(r["sumsq"] for r in rows) / n - mean**2)
    fs = summarize([FineScale("", r["share"], r["r2"]) for r in rows])
    top = np.sort(np.concatenate([r["top"] for r in rows]))
    p999 = top[-round(0.001 * n)]
    share = f"({fs['within_block_share_min']:.2f}-{fs['within_block_share_max']:.2f})"
    r2 = f"({fs['within_block_guide_r2_min']:.2f}-{fs['within_block_guide_r2_max']:.2f})"
    s1 = f"VV {np.mean([r['vv'] for r in rows]):.1f}  VH {np.mean([r['vh'] for r in rows]):.1f}"
    print(
        f"{args.chips} chips in {time.perf_counter() - start:.0f} s\n"
        f"within-block share  {fs['within_block_share_mean']:.3f} "
        f"{share}   real 0.48 (0.41-0.58)\n"
        f"within-block R²     {fs['within_block_guide_r2_mean']:.3f} "
        f"{r2}   real 0.24 (0.18-0.31)\n"
        f"AGB mean {mean:.1f} std {std:.1f} zeros {100 * sum(r['zeros'] for r in rows) / n:.1f} % "
        f"p99.9 {p999:.0f}   real 63 / 71 / 19-25 % / 425\n"
        f"corr NDVI {np.nanmean([r['ndvi'] for r in rows]):+.2f}   real +0.5;  "
        f"{s1}   real -11.4 / -18.1"
    )


if __name__ == "__main__":
    main()

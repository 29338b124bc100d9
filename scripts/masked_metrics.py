"""Each metric on masked test tiles beside scikit-image on their valid pixels.

Four 60 x 60 tiles with Gaussian errors of 30 Mg/ha (range 500), a random share of their pixels
invalid, plus one tile with no valid pixel; ``python scripts/masked_metrics.py``.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gsr_bench.metrics import MetricAccumulator


def main() -> None:
    rows = []
    for share in (0.0, 0.1, 0.5, 0.9):
        rng = np.random.default_rng(0)
        target = rng.gamma(2.0, 60.0, (4, 1, 60, 60))
        pred = np.clip(target + rng.normal(0, 30, target.shape), 0, None)
        valid = rng.random(target.shape) >= share
        acc = MetricAccumulator(500.0, 10, [50.0, 100.0])
        p, t, v = (torch.from_numpy(a) for a in (pred, target, valid))
        acc.update(
            torch.cat([p, p[:1]]),
            torch.cat([t, t[:1]]),
            torch.cat([v, torch.zeros_like(v[:1])]),
            torch.zeros(5, 1, 6, 6),
        )
        m = acc.compute()
        t2, p2, v2 = target[:, 0], pred[:, 0], valid[:, 0]
        ref_psnr = peak_signal_noise_ratio(t2[v2], p2[v2], data_range=500.0)
        ref_tile = np.mean(
            [peak_signal_noise_ratio(t2[i][v2[i]], p2[i][v2[i]], data_range=500.0) for i in range(4)]
        )
        ref_rmse = np.sqrt(((p2 - t2)[v2] ** 2).mean())
        # scikit-image has no mask: its SSIM of whole tiles with invalid pixels set to the target
        # (the old fill) shows the bias that the masked SSIM removes
        filled = np.where(v2, p2, t2)
        old_ssim = np.mean(
            [
                structural_similarity(
                    t2[i],
                    filled[i],
                    data_range=500.0,
                    gaussian_weights=True,
                    sigma=1.5,
                    use_sample_covariance=False,
                )
                for i in range(4)
            ]
        )
        rows.append(
            (
                share,
                m["rmse"],
                ref_rmse,
                m["psnr"],
                ref_psnr,
                m["psnr_tile"],
                ref_tile,
                m["ssim"],
                old_ssim,
                m["tiles_scored"],
                m["tiles_empty"],
            )
        )
    print(
        "invalid  rmse    skimage  psnr    skimage  psnr_tile skimage  ssim(masked) ssim(old fill)"
        "  scored empty"
    )
    for r in rows:
        print(
            f"{r[0]:>6.0%}  {r[1]:6.3f}  {r[2]:6.3f}  {r[3]:6.3f}  {r[4]:6.3f}  {r[5]:6.3f}    {r[6]:6.3f}   "
            f"{r[7]:6.4f}       {r[8]:6.4f}          {r[9]:.0f}      {r[10]:.0f}"
        )


if __name__ == "__main__":
    main()

"""Synthetic BioMassters: the official layout, and a problem that behaves like the real one."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from gsr_bench.data.tiff import posix_cksum
from gsr_bench.ops import upsample
from gsr_bench_datasets.biomassters.check import check_layout, data_statistics
from gsr_bench_datasets.biomassters.layout import MONTHS, BioMasstersLayout
from gsr_bench_datasets.biomassters.synth import FEATURE_COLUMNS, simulate_chip, synthesize


def test_official_layout_sizes_and_checksums(synth_root: Path) -> None:
    with (synth_root / "features_metadata.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == FEATURE_COLUMNS
    for row in rows[:6]:
        path = synth_root / f"{row['split']}_features" / row["filename"]
        data = path.read_bytes()
        assert int(row["size"]) == len(data)
        assert int(row["cksum"]) == posix_cksum(data)
        assert row["filename"] == f"{row['chip_id']}_{row['satellite']}_{MONTHS.index(row['month']):02d}.tif"
    report = check_layout(BioMasstersLayout(synth_root))
    assert report.chips == {"train": 9, "test": 3}
    assert report.problems == []
    assert report.months["S2"][11] == 12  # August: always present


def test_deterministic_for_a_seed() -> None:
    a = simulate_chip(np.random.default_rng([7, 1]))
    b = simulate_chip(np.random.default_rng([7, 1]))
    c = simulate_chip(np.random.default_rng([8, 1]))
    np.testing.assert_array_equal(a.agb, b.agb)
    assert sorted(a.s2) == sorted(b.s2)
    for m in a.s2:
        np.testing.assert_array_equal(a.s2[m], b.s2[m])
    assert not np.array_equal(a.agb, c.agb)


def test_synthesize_is_deterministic_on_disk(tmp_path: Path) -> None:
    one = synthesize(tmp_path / "a", 2, seed=5, test_chips=1, workers=1, progress=False)
    two = synthesize(tmp_path / "b", 2, seed=5, test_chips=1, workers=2, progress=False)
    assert (one / "features_metadata.csv").read_text().replace(str(one), "") == (
        two / "features_metadata.csv"
    ).read_text().replace(str(two), "")


def test_statistics_resemble_biomassters() -> None:
    chips = [simulate_chip(np.random.default_rng([11, i])) for i in range(24)]
    agb = np.concatenate([c.agb.ravel() for c in chips])
    assert 50 < agb.mean() < 75
    assert 55 < agb.std() < 90
    assert 350 < np.percentile(agb, 99.9) < 520
    assert 17 < (agb == 0).mean() * 100 < 27
    vv = np.concatenate([c.s1[m][0][c.s1[m][0] != -9999] for c in chips for m in c.s1])
    vh = np.concatenate([c.s1[m][1][c.s1[m][1] != -9999] for c in chips for m in c.s1])
    assert -12.5 < vv.mean() < -10.3 and 2.5 < vv.std() < 4.5
    assert -19.5 < vh.mean() < -16.7 and 3.4 < vh.std() < 5.4
    present = np.mean(
        [3 in c.s2 for c in chips]
        + [3 in simulate_chip(np.random.default_rng([12, i])).s2 for i in range(16)]
    )
    assert present < 0.4  # December is rarely observed
    assert all(all(m in c.s2 for m in range(7, 12)) for c in chips)


def test_check_stats_on_synthetic(synth_root: Path) -> None:
    stats = data_statistics(BioMasstersLayout(synth_root), max_chips=12)
    assert 0.3 < stats["corr_agb_ndvi_leafon"] < 0.75
    assert -0.75 < stats["corr_agb_b12_leafon"] < -0.3
    assert 700 < min(stats[f"s2_{b}_mean"] for b in ("B2", "B3", "B4")) < 2000
    assert 1800 < stats["s2_B8_mean"] < 3500


def test_guided_problem_property(prepared: dict[str, Path]) -> None:
    """Bicubic beats nearest, and regression from the guide alone underestimates high biomass."""
    from gsr_bench.data.tiles import open_prepared
    from gsr_bench.protocol import Degradation
    from gsr_bench_datasets.biomassters.dataset import BioMassters

    splits = open_prepared(BioMassters(), prepared["train"], prepared["test"], 250, Degradation())
    train = splits.train.batch(range(len(splits.train)))
    test = splits.test.batch(range(len(splits.test)))
    v = test["valid"]

    def rmse(pred: torch.Tensor) -> float:
        return float(((pred - test["target"])[v] ** 2).mean().sqrt())

    assert rmse(upsample(test["source"], 10, "bicubic")) < rmse(upsample(test["source"], 10, "nearest"))

    # Least squares from the 14 guide channels (and their squares) to the target, pixelwise.
    def features(g: torch.Tensor) -> torch.Tensor:
        x = g.permute(0, 2, 3, 1).reshape(-1, g.shape[1]).double()
        return torch.cat([x, x**2, torch.ones(len(x), 1, dtype=torch.float64)], 1)

    xtr, ytr = features(train["guide"]), train["target"].reshape(-1).double()
    coef = torch.linalg.lstsq(xtr, ytr.unsqueeze(1)).solution
    pred = (features(test["guide"]) @ coef).reshape(test["target"].shape).float()
    t = test["target"][v]
    top = t >= torch.quantile(t, 0.9)
    bias_top = float((pred[v] - t)[top].mean())
    assert bias_top < -40, f"top-decile bias {bias_top:.1f} Mg/ha"
    # The guide carries real signal: the regression beats predicting the mean.
    assert rmse(pred) < float(t.std())

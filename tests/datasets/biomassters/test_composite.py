"""Guide composites against a direct numpy computation on a chip with known gaps."""

from __future__ import annotations

import numpy as np
import pytest

from gsr_bench.channels import periods, rgb_indices, sensor_of, split_channel
from gsr_bench.errors import GsrBenchError
from gsr_bench_datasets.biomassters.composite import COMPOSITES, MONTH_LABELS, SEASONS, get_composite
from gsr_bench_datasets.biomassters.layout import CLP_INVALID, RawChip

H = W = 6
S2_ABSENT = (3, 4, 10)  # December, January, July
S1_ABSENT = (5,)


@pytest.fixture
def chip() -> RawChip:
    rng = np.random.default_rng(7)
    s2 = rng.uniform(100, 5000, (12, 10, H, W)).astype(np.float32)
    s1 = rng.uniform(-25, -5, (12, 4, H, W)).astype(np.float32)
    clp = rng.choice([0.0, 10.0, 60.0, 90.0, CLP_INVALID], (12, H, W), p=[0.4, 0.2, 0.2, 0.1, 0.1])
    clp = clp.astype(np.float32)
    for m in S2_ABSENT:
        s2[m], clp[m] = np.nan, np.nan
    for m in S1_ABSENT:
        s1[m] = np.nan
    clp[:, 0, 0] = 90.0  # one pixel never clear
    return RawChip("c0ffee00", s1, s2, clp, np.zeros((H, W), np.float32))


def _clear(chip: RawChip, m: int, y: int, x: int) -> bool:
    c = chip.clp[m, y, x]
    return bool(np.isfinite(c) and c <= 50 and c != CLP_INVALID)


def test_seasonal_against_direct_loops(chip: RawChip) -> None:
    fn, names = get_composite("seasonal")
    out = fn(chip).guide
    assert out.shape == (len(names), H, W) == (56, H, W)
    for s, months in enumerate(SEASONS.values()):
        for y in range(H):
            for x in range(W):
                clear = [m for m in months if _clear(chip, m, y, x)]
                for b in range(10):
                    got = out[s * 14 + b, y, x]
                    if clear:
                        assert got == pytest.approx(np.median([chip.s2[m, b, y, x] for m in clear]))
                    else:
                        assert np.isnan(got)
                for b in range(4):
                    present = [chip.s1[m, b, y, x] for m in months if m not in S1_ABSENT]
                    assert out[s * 14 + 10 + b, y, x] == pytest.approx(np.mean(present), rel=1e-5)
    assert names[0] == "B2@autumn" and names[13] == "VH_desc@autumn" and names[-1] == "VH_desc@summer"
    assert np.isnan(out[:10, 0, 0]).all() and np.isnan(out[14:24, 0, 0]).all()  # never clear


def test_monthly_against_direct_loops(chip: RawChip) -> None:
    fn, names = get_composite("monthly")
    out = fn(chip).guide
    assert out.shape == (len(names), H, W) == (12 * 14 + 24, H, W)
    for m in range(12):
        for y in range(H):
            for x in range(W):
                clear = _clear(chip, m, y, x)
                for b in range(10):
                    got = out[m * 14 + b, y, x]
                    assert (got == chip.s2[m, b, y, x]) if clear else np.isnan(got)
                for b in range(4):
                    got = out[m * 14 + 10 + b, y, x]
                    assert np.isnan(got) if m in S1_ABSENT else got == chip.s1[m, b, y, x]
                assert out[168 + m, y, x] == float(clear)
                assert out[180 + m, y, x] == float(m not in S1_ABSENT)
    assert names[168] == "avail_S2@Sep" and names[-1] == "avail_S1@Aug"
    assert names[14 * 10] == "B2@Jul"


def test_channel_names_say_sensor_and_period() -> None:
    assert split_channel("VV_asc@winter") == ("VV_asc", "winter")
    assert split_channel("B8A") == ("B8A", "")
    names = ("B2", "VH_desc@Jan", "avail_S2@Jan", "red")
    assert [sensor_of(n) for n in names] == ["S2", "S1", "mask", "other"]
    assert periods(COMPOSITES["seasonal"][1]) == list(SEASONS)
    assert periods(COMPOSITES["monthly"][1]) == list(MONTH_LABELS)  # the masks share the months
    assert rgb_indices(COMPOSITES["leafon-median"][1]) == (2, 1, 0)
    r, _, b = rgb_indices(COMPOSITES["seasonal"][1])
    assert COMPOSITES["seasonal"][1][r] == "B4@summer" and COMPOSITES["seasonal"][1][b] == "B2@summer"
    assert COMPOSITES["monthly"][1][rgb_indices(COMPOSITES["monthly"][1])[0]] == "B4@Jul"
    assert rgb_indices(("a", "b", "c", "d")) == (0, 1, 2)


def test_unknown_composite_is_refused() -> None:
    with pytest.raises(GsrBenchError, match="did you mean 'seasonal'"):
        get_composite("seasonl")

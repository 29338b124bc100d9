"""Numbers in the leaderboard's tables: at least three significant digits, whatever the scale."""

from __future__ import annotations

from gsr_bench.leaderboard import _bin_order, _fmt


def test_tables_show_three_significant_digits() -> None:
    assert _fmt(45.55, 0.34, "rmse") == "45.5 ± 0.3"  # the default 0.1 already shows three
    assert _fmt(0.6631, 0.0812, "rmse") == "0.663 ± 0.081"  # a depth dataset's spread of 0.08 px
    assert _fmt(0.0413, float("nan"), "mae") == "0.0413"
    assert _fmt(24.4712, 0.1, "psnr") == "24.47 ± 0.10"  # never fewer than the metric's own digits


def test_bins_are_ordered_by_value() -> None:
    names = ["rmse_bin_ge300", "rmse_bin_50-100", "rmse_bin_lt10", "rmse_bin_200-300", "rmse_bin_10-50"]
    assert sorted(names, key=_bin_order) == [
        "rmse_bin_lt10",
        "rmse_bin_10-50",
        "rmse_bin_50-100",
        "rmse_bin_200-300",
        "rmse_bin_ge300",
    ]

"""Temporal methods: where they run (the dataset's time-series guide), what happens on a dataset
without one, and the leaderboard section their results land in."""

from __future__ import annotations

import pytest

from gsr_bench.errors import GsrBenchError
from gsr_bench.planning import plan_jobs
from gsr_bench.plugins import PluginManager
from gsr_bench.protocol import load_protocol
from gsr_bench.records import pair_label
from gsr_bench.registry import DatasetSpec
from tests.test_dataset import Arrays


@pytest.fixture
def manager() -> PluginManager:
    pm = PluginManager()
    pm.datasets.add(DatasetSpec("arrays", "1", "in-memory tiles, one RGB image", Arrays))
    return pm


def test_temporal_methods_run_on_the_time_series_guide(manager: PluginManager) -> None:
    jobs = plan_jobs(manager, ["msg", "utae", "msg-t"], ["biomassters-synthetic"], load_protocol("quick"))
    composite = {j.method.name: j.dataset_options.get("composite") for j in jobs}
    assert composite == {"msg": None, "utae": "monthly", "msg-t": "monthly"}
    utae = next(j for j in jobs if j.method.name == "utae")
    assert len(utae.dataset_info["options"]) and utae.dataset_info["options"]["composite"] == "monthly"
    # a guide that already is a series is kept as it is
    seasonal = plan_jobs(
        manager,
        ["utae"],
        ["biomassters-synthetic"],
        load_protocol("quick"),
        option_pairs=["composite=seasonal"],
    )
    assert seasonal[0].dataset_options["composite"] == "seasonal"


def test_a_dataset_without_time_series_is_one_line_or_skipped(
    manager: PluginManager, caplog: pytest.LogCaptureFixture
) -> None:
    protocol = load_protocol("smoke").with_overrides({"task.crop": 36, "train.patch_size": 36})
    with pytest.raises(GsrBenchError, match=r"'utae' reads a time series.*'arrays' has one guide image"):
        plan_jobs(manager, ["utae"], ["arrays"], protocol)
    jobs = plan_jobs(manager, ["bicubic", "utae"], ["arrays"], protocol, skip_unfit=True)
    assert [j.method.name for j in jobs] == ["bicubic"]
    assert "skipped" in caplog.text and "utae" in caplog.text


def test_sections_name_the_guide_when_it_is_not_the_default() -> None:
    assert pair_label("biomassters-synthetic", "biomassters-synthetic") == "biomassters-synthetic"
    assert (
        pair_label("biomassters-synthetic", "biomassters-synthetic", guide="monthly composite")
        == "biomassters-synthetic, monthly composite"
    )
    assert (
        pair_label("a", "b", "train", "2 chips", "monthly composite")
        == "a → b (train split, 2 chips), monthly composite"
    )


def test_paper_overrides_reach_the_new_methods() -> None:
    """The papers' settings are declared as overrides: the paper protocol applies them, quick
    keeps its CPU budget."""
    pm = PluginManager()
    for name, key, paper_value in (
        ("dada", "pre_iterations", 8000),
        ("dada", "grad_iterations", 1024),
        ("lgr", "max_iter", 5000),
        ("utae", "widths", [64, 64, 64, 128]),
        ("msg-t", "heads", 16),
    ):
        spec = pm.methods.get(name)
        paper = load_protocol("paper").for_method(name, spec.overrides)
        quick = load_protocol("quick").for_method(name, spec.overrides)
        assert paper.methods[name][key] == paper_value
        assert quick.methods.get(name, {}).get(key) != paper_value

"""Result records beside the published ones, their check, and re-scoring from saved predictions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gsr_bench.cli import main
from gsr_bench.records import SCHEMA_VERSION
from gsr_bench.tracking import Tracker


def _version(method: str) -> str:
    from gsr_bench.plugins import get_plugin_manager

    return str(get_plugin_manager().methods.get(method).version)


SMOKE = ["--protocol", "smoke", "-q", "--publish"]  # smoke publishes nothing unless asked


@pytest.fixture
def published(workdir: Path) -> Path:
    """A leaderboard folder with the maintainers' records of bicubic and nearest."""
    assert main(["run", "-m", "bicubic", "-m", "nearest", *SMOKE, "--results", "maintainers"]) == 0
    return workdir / "leaderboard"


def test_a_contributors_run_adds_rows_beside_the_published_ones(published: Path, workdir: Path) -> None:
    records = sorted((published / "results").rglob("*.json"))
    assert [p.parent.relative_to(published / "results").as_posix() for p in records] == [
        "biomassters-synthetic/smoke"
    ] * 2
    record = json.loads(records[0].read_text())
    assert record["schema_version"] == SCHEMA_VERSION and record["method"]["name"] == "bicubic"
    assert record["job_key"] == record["config_hash"][:16] and record["provenance"]["packages"]["torch"]
    assert record["dataset"]["units"] == "Mg/ha" and record["metrics"]["rmse"] > 0
    panel = published / "figures" / "biomassters-synthetic_smoke_tiles.png"
    before = panel.read_bytes()

    # a contributor's clone: the committed records, a fresh MLflow store, one method run
    assert main(["run", "-m", "bilinear", *SMOKE, "--results", "contributor"]) == 0
    table = pd.read_csv(published / "results.csv")
    assert set(table["method"]) == {"bicubic", "nearest", "bilinear"}
    assert table.set_index("method").loc["bicubic", "rmse_mean"] == pytest.approx(record["metrics"]["rmse"])
    assert "`bilinear`" in (published / "README.md").read_text()
    assert panel.read_bytes() == before  # not redrawn with the one method this store holds
    assert len(list((published / "results").rglob("*.json"))) == 3
    assert main(["leaderboard", "--check"]) == 0


def test_check_reports_bad_duplicate_and_stale_records(
    published: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = published / "results" / "biomassters-synthetic" / "smoke"
    bicubic = next(folder.glob("bicubic-*.json"))
    record = json.loads(bicubic.read_text())
    shutil.copy(bicubic, folder / "copy.json")  # the same job twice
    edited = {**record, "config": {**record["config"], "seed": 7}}  # metrics moved to another config
    (folder / "edited.json").write_text(json.dumps(edited))
    stale = json.loads(next(folder.glob("nearest-*.json")).read_text())
    stale["method"]["version"] = "0"
    (folder / "stale.json").write_text(json.dumps(stale))
    (folder / "broken.json").write_text("{not json")
    (folder / "old.json").write_text(json.dumps({**record, "schema_version": 99}))
    capsys.readouterr()
    assert main(["leaderboard", "--check"]) == 1
    out = capsys.readouterr().out
    folder = Path("leaderboard/results/biomassters-synthetic/smoke")  # as given: --out leaderboard
    assert f"{folder / 'copy.json'}: duplicate: another record has job key {record['job_key']}" in out
    assert f"{folder / 'edited.json'}: config_hash and job_key do not match the recorded config" in out
    now = _version("nearest")
    assert f"{folder / 'stale.json'}: stale: method 'nearest' is at version {now}, the record at 0" in out
    assert f"{folder / 'broken.json'}: not readable JSON" in out
    assert f"{folder / 'old.json'}: schema_version 99; this gsr-bench reads {SCHEMA_VERSION}" in out
    assert "7 record(s)" in out
    # the leaderboard still builds from the valid ones
    assert main(["leaderboard"]) == 0


def test_check_names_paths_other_code_and_missing_versions(
    published: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gsr_bench.records import config_hash

    folder = published / "results" / "biomassters-synthetic" / "smoke"
    path = next(folder.glob("bicubic-*.json"))
    record = json.loads(path.read_text())
    assert "/" not in json.dumps(record["config"]) and str(published.parent) not in path.read_text()
    assert record["method"]["distribution_version"] and len(record["method"]["code"]) == 16

    def write(name: str, change: dict) -> None:
        edited = json.loads(json.dumps(record))
        for dotted, value in change.items():
            *parents, leaf = dotted.split(".")
            node = edited
            for part in parents:
                node = node[part]
            node[leaf] = value
        edited["config_hash"] = config_hash(edited["config"])
        edited["job_key"] = edited["config_hash"][:16]
        (folder / name).write_text(json.dumps(edited))

    path.unlink()
    write("pathy.json", {"config.dataset.options.root": "/home/me/data"})
    write("other-code.json", {"config.method.code": "0123456789abcdef", "method.code": "0123456789abcdef"})
    write("no-version.json", {"config.seed": 5, "seed": 5, "method.distribution_version": ""})
    capsys.readouterr()
    assert main(["leaderboard", "--check"]) == 1
    out = capsys.readouterr().out
    folder = Path("leaderboard/results/biomassters-synthetic/smoke")
    assert f"{folder / 'pathy.json'}: config.dataset.options.root holds a path of a machine" in out
    v = _version("bicubic")
    assert f"{folder / 'other-code.json'}: stale: method 'bicubic' v{v} has other code here" in out
    assert f"{folder / 'no-version.json'}: method 'bicubic': its distribution's version is missing" in out
    # a record of other code never reaches the table; prune leaves it (a version bump decides)
    assert main(["leaderboard", "--prune"]) == 0
    table = pd.read_csv(published / "results.csv")
    assert "0123456789abcdef" not in json.dumps(table.to_dict()) and (folder / "other-code.json").exists()


def test_other_options_make_another_section_and_prune_removes_superseded(
    published: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "-m", "bicubic", *SMOKE, "-O", "test_chips=3", "--results", "maintainers"]) == 0
    table = pd.read_csv(published / "results.csv")
    sections = table.groupby("dataset")["method"].apply(sorted).to_dict()
    assert sections == {
        "biomassters-synthetic": ["bicubic", "nearest"],
        "biomassters-synthetic [test_chips=3]": ["bicubic"],
    }
    capsys.readouterr()
    assert main(["leaderboard", "--check"]) == 0  # two sections, not a duplicate
    folder = published / "results" / "biomassters-synthetic" / "smoke"
    old = json.loads(next(folder.glob("nearest-*.json")).read_text())
    old["method"]["version"] = "0"
    (folder / "nearest-seed0-0000000000000000.json").write_text(json.dumps(old))
    assert main(["leaderboard", "--prune"]) == 0
    out = capsys.readouterr().out
    now = _version("nearest")
    assert (
        f"nearest-seed0-0000000000000000.json: method 'nearest' is at version {now}, the record at 0" in out
    )
    assert "1 superseded record(s) removed" in out
    assert main(["leaderboard", "--check"]) == 0


def test_saved_predictions_rescore_to_the_logged_metrics(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "-m", "bicubic", "-m", "msg", *SMOKE]) == 0
    runs = {r.data.tags["method"]: r for r in Tracker(workdir / "results").runs()}
    tracker = Tracker(workdir / "results")
    saved = tracker.download(runs["msg"].info.run_id, "predictions.npz", workdir / "dl")
    assert saved is not None
    with np.load(saved) as npz:
        assert npz["pred"].dtype == np.float16 and len(npz["ids"]) == runs["msg"].data.metrics["test_tiles"]
    capsys.readouterr()
    assert main(["score", "-m", "bicubic", "-m", "msg", *SMOKE[:-1]]) == 0
    out = capsys.readouterr().out
    lines = [ln.split() for ln in out.splitlines() if ln.startswith(("bicubic/", "msg/"))]
    assert {ln[0].split("/")[0] for ln in lines if ln[1] == "rmse"} == {"bicubic", "msg"}
    again = {r.data.tags["method"]: r for r in Tracker(workdir / "results").runs()}
    for method in ("bicubic", "msg"):  # float16 predictions: the same to a few 1e-3
        before, after = runs[method].data.metrics, again[method].data.metrics
        assert after["rmse"] == pytest.approx(before["rmse"], abs=0.01)
        assert after["ssim"] == pytest.approx(before["ssim"], abs=1e-3)
    assert "rescored_at" in again["msg"].data.tags
    record = json.loads(next((workdir / "leaderboard" / "results").rglob("msg-*.json")).read_text())
    assert record["metrics"]["rmse"] == pytest.approx(again["msg"].data.metrics["rmse"])


def test_rescoring_replaces_only_what_a_definition_changed() -> None:
    """Saved predictions are float16: rescoring every metric would turn nearest's exact
    consistency (0) into 0.017 and DADA's bias into 3e-5. Fails if a value whose definition did
    not change is replaced, or if one whose definition did (pooled PSNR, bins, masked SSIM on a
    masked test split, a plugin metric's new version) is kept."""
    from gsr_bench.score import replaced

    new = {"rmse": 30.0, "psnr": 20.0, "psnr_tile": 20.2, "ssim": 0.5, "consistency_rmse": 0.017}
    new |= {"rmse_bin_10-50": 9.0, "projected_psnr": 21.0, "max_err": 3.0}
    old = {"rmse": 30.0001, "psnr": 20.2, "ssim": 0.5001, "consistency_rmse": 0.0, "rmse_bin_10-50": 8.0}
    old |= {"projected_psnr": 21.2, "max_err": 2.0}
    versions = {"max_err": "2"}
    v1 = {"metric_versions": '{"max_err": "1"}'}
    assert set(replaced(new, old, v1, False, versions)) == {
        "psnr",
        "psnr_tile",
        "rmse_bin_10-50",
        "projected_psnr",
        "max_err",
    }
    masked = set(replaced(new, old, v1, True, versions))
    assert {"ssim", "consistency_rmse"} <= masked and "rmse" not in masked
    v2 = {"metrics_revision": "2", "metric_versions": '{"max_err": "2"}'}
    assert set(replaced(new, old, v2, True, versions)) == {"psnr_tile"}  # only what the run lacks


def test_a_record_of_older_metric_definitions_is_stale() -> None:
    """Its PSNR is another quantity (a tile mean, not pooled): ranked beside new records it would
    be compared with what it is not. Fails if the revision is not checked."""
    from gsr_bench.metrics import METRICS_REVISION
    from gsr_bench.record_checks import staleness

    path = next((Path(__file__).parents[1] / "leaderboard" / "results").rglob("*.json"))
    record = json.loads(path.read_text())
    assert record["metrics_revision"] == METRICS_REVISION and staleness(record, None) == ""
    record["metrics_revision"] = METRICS_REVISION - 1
    assert "`gsr-bench score` recomputes them" in staleness(record, None)
    del record["metrics_revision"]  # a record from before revisions were recorded
    assert staleness(record, None).startswith("its metrics follow definitions of revision 1")


def test_the_committed_json_schema_is_the_models_and_describes_the_committed_records() -> None:
    """`gsr_bench/schemas/result-record.json` is generated from the typed models
    (`python -m gsr_bench.record_schema`); a model edited without regenerating it, or a record
    the file would not accept, fails here."""
    import jsonschema

    from gsr_bench.record_schema import SCHEMA_FILE, schema_text

    assert SCHEMA_FILE.read_text() == schema_text()
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    root = Path(__file__).resolve().parent.parent / "leaderboard" / "results"
    records = sorted(root.rglob("*.json"))
    assert records
    for path in records:
        errors = list(validator.iter_errors(json.loads(path.read_text())))
        assert not errors, f"{path.name}: {errors[0].message}"


def test_a_field_missing_or_of_another_type_is_one_line_naming_it() -> None:
    from gsr_bench.record_schema import problems

    root = Path(__file__).resolve().parent.parent / "leaderboard" / "results"
    record = json.loads(next(root.rglob("*.json")).read_text())
    assert problems(record) == []
    broken = json.loads(json.dumps(record))
    del broken["method"]["code"]
    broken["seed"] = "0"
    broken["metrics"]["rmse"] = "44.1"
    found = problems(broken)
    assert "method.code: field required" in found
    assert any(line.startswith("seed: ") for line in found)
    assert any(line.startswith("metrics.rmse") for line in found)

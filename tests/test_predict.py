"""``gsr-bench predict`` end to end on a georeferenced scene of 4 x 4 simulator chips (1,000 x
1,000 px at 10 m in UTM 35N, its source the 10 x 10 block mean at 100 m)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gsr_bench.cli import main
from gsr_bench.tracking import Tracker

rasterio = pytest.importorskip("rasterio")

from tests.scenes.mosaic import MosaicScene, mosaic_scene, seam_ratio, write_geotiff  # noqa: E402

SMOKE = ["--protocol", "smoke", "-q"]


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> MosaicScene:
    return mosaic_scene(tmp_path_factory.mktemp("scene"), tmp_path_factory.mktemp("chips"))


def _predict(scene: MosaicScene, out: Path, *extra: str, method: str = "bicubic") -> int:
    argv = ["predict", "-m", method, *SMOKE, "--source", str(scene.source), "--guide", str(scene.guide)]
    return main([*argv, "--out", str(out), *extra])


def _read(path: Path) -> tuple[np.ndarray, dict[str, str], object]:
    with rasterio.open(path) as src:
        return src.read(1, masked=True).filled(np.nan), src.tags(), src.profile


def test_a_training_free_method_needs_no_job(workdir: Path, scene: MosaicScene) -> None:
    out = workdir / "bicubic.tif"
    assert _predict(scene, out, "--project-to-source") == 0
    values, tags, profile = _read(out)
    with rasterio.open(scene.guide) as guide:
        assert (profile["crs"], profile["transform"]) == (guide.crs, guide.transform)
        assert (profile["height"], profile["width"]) == (guide.height, guide.width)
    assert profile["nodata"] == -9999.0 and profile["dtype"] == "float32"
    assert tags["GSR_BENCH_METHOD"] == "bicubic" and tags["GSR_BENCH_JOB_KEY"].startswith("none")
    # projected onto the source: every block's mean is the source's
    with rasterio.open(scene.source) as src:
        coarse = src.read(1)
    means = values.reshape(100, 10, 100, 10).mean(axis=(1, 3))
    np.testing.assert_allclose(means, coarse, atol=1e-2)
    assert not list(workdir.glob("*.part"))


def test_source_nodata_is_output_nodata_and_guide_nodata_is_no_observation(
    workdir: Path, scene: MosaicScene
) -> None:
    with rasterio.open(scene.source) as src:
        coarse = src.read(1)
    coarse[10:13, 20:24] = -9999.0
    holed = write_geotiff(workdir / "holed.tif", coarse, 100.0, nodata=-9999.0)
    guide = scene.guide_array.copy()
    guide[:, 500:540, 500:540] = np.nan  # no observation at all there
    blind = write_geotiff(workdir / "blind.tif", guide, 10.0, nodata=float("nan"), names=scene.channels)
    argv = ["predict", "-m", "bilinear", *SMOKE, "--source", str(holed), "--guide", str(blind)]
    assert main([*argv, "--out", "out.tif"]) == 0
    values, _, _ = _read(workdir / "out.tif")
    assert np.isnan(values[100:130, 200:240]).all()
    assert np.isnan(values).sum() == 30 * 40
    assert np.isfinite(values[500:540, 500:540]).all()


@pytest.fixture(scope="module")
def msg_job(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> Path:
    """A results folder with finished smoke jobs of MSG (a fully convolutional network) and JBU
    (training-free, its sigma_r chosen on validation)."""
    folder = tmp_path_factory.mktemp("msgjob")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("GSR_BENCH_CACHE", str(shared_cache))  # the runner tests' prepared smoke data
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        assert main(["run", "-m", "msg", "-m", "jbu", "--protocol", "smoke", "-q", "--no-leaderboard"]) == 0
    return folder / "results"


def test_a_trained_job_predicts_without_seams_and_as_one_pass(
    workdir: Path, scene: MosaicScene, msg_job: Path
) -> None:
    from gsr_bench.data.raster import open_scene
    from gsr_bench.data.scene import Grid
    from gsr_bench.model_file import MODEL_FILE
    from gsr_bench.plugins import get_plugin_manager
    from gsr_bench.predict import from_checkpoint
    from gsr_bench.scene_predict import prepare_tile

    results = ["--results", str(msg_job)]
    assert _predict(scene, workdir / "msg.tif", *results, method="msg") == 0
    blended, tags, _ = _read(workdir / "msg.tif")
    run = next(r for r in Tracker(msg_job).runs() if r.data.tags["method"] == "msg")
    assert tags["GSR_BENCH_JOB_KEY"] == run.data.tags["job_key"]
    assert tags["GSR_BENCH_CODE_FINGERPRINT"] == run.data.tags["code_fingerprint"]
    assert (tags["GSR_BENCH_METHOD"], tags["GSR_BENCH_METHOD_VERSION"]) == (
        "msg",
        run.data.tags["method_version"],
    )

    # the same model from its file gives the same map, bit for bit
    model_file = Tracker(msg_job).download(run.info.run_id, MODEL_FILE, workdir)
    assert model_file is not None
    assert _predict(scene, workdir / "ckpt.tif", "--checkpoint", str(model_file), method="msg") == 0
    np.testing.assert_array_equal(_read(workdir / "ckpt.tif")[0], blended)

    # one pass over the whole scene: the blended tiles agree away from the scene's border
    model = from_checkpoint(get_plugin_manager(), model_file)
    opened = open_scene([scene.guide], scene.source, model.card.guide_channels, 10)
    mean, std = model.card.normalization()
    guide, source, _ = prepare_tile(
        opened.read_guide(0, 0, 1000), opened.read_source(0, 0, 1000), mean, std, 10, model.card.guide_dtype
    )
    with torch.no_grad():
        whole = model.method.to(torch.device("cpu")).predict(guide[None], source[None])[0, 0].numpy()
    inner = np.s_[60:-60, 60:-60]
    difference = np.abs(blended[inner] - whole[inner])
    scale = float(np.std(whole[inner]))
    assert float(np.mean(difference)) < 0.05 * scale, (float(np.mean(difference)), scale)

    # no seams: steps across the tiles' borders are like steps anywhere else
    grid = Grid(1000, 1000, 60, 20, 10)
    assert seam_ratio(blended, grid) < 1.1
    assert seam_ratio(whole, grid) < 1.1


def test_a_tuned_training_free_job_keeps_the_choice_its_fit_made(
    workdir: Path, scene: MosaicScene, msg_job: Path
) -> None:
    from gsr_bench.model_file import MODEL_FILE, load_model

    run = next(r for r in Tracker(msg_job).runs() if r.data.tags["method"] == "jbu")
    model_file = Tracker(msg_job).download(run.info.run_id, MODEL_FILE, workdir)
    assert model_file is not None
    card, weights = load_model(model_file)
    assert weights is None and card.options["sigma_r"] == float(run.data.params["chosen.sigma_r"])
    assert card.job_key == run.data.tags["job_key"] and card.guide_dtype == "float16"
    assert _predict(scene, workdir / "tuned.tif", "--results", str(msg_job), method="jbu") == 0
    assert _predict(scene, workdir / "defaults.tif", method="jbu") == 0  # no job here: its defaults
    tuned, tags, _ = _read(workdir / "tuned.tif")
    assert tags["GSR_BENCH_JOB_KEY"] == card.job_key
    assert np.nanmean(np.abs(tuned - _read(workdir / "defaults.tif")[0])) > 0.1


def test_without_overlap_the_seam_statistic_sees_the_seams(
    workdir: Path, scene: MosaicScene, msg_job: Path
) -> None:
    """The statistic above has teeth: abutting tiles (no overlap) leave steps at their borders."""
    argv = ["--results", str(msg_job), "--overlap", "0"]
    assert _predict(scene, workdir / "abut.tif", *argv, method="msg") == 0
    values = _read(workdir / "abut.tif")[0]
    from gsr_bench.data.scene import Grid

    assert seam_ratio(values, Grid(1000, 1000, 60, 0, 10)) > 1.1


def test_a_missing_job_is_one_line_with_the_command_that_makes_it(
    workdir: Path, scene: MosaicScene, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _predict(scene, workdir / "fdsr.tif", method="fdsr") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "no finished job fdsr/biomassters-synthetic/smoke/seed0" in err[0]
    assert "gsr-bench run -m fdsr -d biomassters-synthetic --protocol smoke --seeds 0" in err[0]
    assert not (workdir / "fdsr.tif").exists()


def test_bad_inputs_are_one_line_before_any_tile(
    workdir: Path, scene: MosaicScene, capsys: pytest.CaptureFixture[str]
) -> None:
    with rasterio.open(scene.source) as src:
        coarse = src.read(1)
    other_crs = write_geotiff(workdir / "crs.tif", coarse, 100.0, epsg=32634)
    shifted = write_geotiff(workdir / "shift.tif", coarse, 100.0, origin=(500_030.0, 6_900_000.0))
    empty = write_geotiff(workdir / "empty.tif", np.full_like(coarse, -9999.0), 100.0, nodata=-9999.0)
    few = write_geotiff(workdir / "few.tif", scene.guide_array[:3], 10.0)
    (workdir / "taken.tif").write_bytes(b"x")
    cases = [
        (["--source", str(other_crs)], "CRS EPSG:32634 differs from the guide's EPSG:32635"),
        (["--source", str(shifted)], "is not the guide's at scale 10"),
        (["--source", str(empty)], "no valid value over the guide's extent"),
        (["--guide", str(few)], "the guide has 3 band(s) in few.tif; the model reads 14"),
        (["--source", str(workdir / "nope.tif")], "source file missing"),
    ]
    for change, message in cases:
        args = {"--source": str(scene.source), "--guide": str(scene.guide)}
        args[change[0]] = change[1]
        argv = ["predict", "-m", "bicubic", *SMOKE, *[v for kv in args.items() for v in kv]]
        assert main([*argv, "--out", "new.tif"]) == 2, change
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (change, err)
        assert not list(workdir.glob("new.tif*"))  # nothing written, not even a .part
    assert _predict(scene, workdir / "taken.tif") == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert (workdir / "taken.tif").read_bytes() == b"x"


def test_a_killed_predict_leaves_no_file_that_looks_complete(tmp_path: Path, scene: MosaicScene) -> None:
    import os
    import subprocess
    import sys

    out = tmp_path / "out.tif"
    command = [
        sys.executable,
        "-m",
        "gsr_bench",
        "predict",
        "-m",
        "bilinear",
        *SMOKE,
        "--results",
        str(tmp_path),
    ]
    command += ["--source", str(scene.source), "--guide", str(scene.guide), "--out", str(out)]
    env = {**os.environ, "GSR_BENCH_KILL_AT": "predict:5"}
    killed = subprocess.run(command, env=env, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not out.exists() and (tmp_path / "out.tif.part").exists()
    assert subprocess.run(command, capture_output=True).returncode == 0  # the rerun starts over
    assert out.exists() and not list(tmp_path.glob("*.part"))
    values, _, _ = _read(out)
    assert np.isfinite(values).all()


def test_a_10k_scene_keeps_memory_to_a_strip_of_its_width(tmp_path: Path, scene: MosaicScene) -> None:
    """10,000 x 10,000 px (a 100 km square at 10 m, 5.6 GB of guide as float32) with a cheap
    method: the peak resident memory of the whole command stays under 3 GiB (measured 2.1 GB:
    0.55 GB of imports, the GDAL block cache of one row of tiles, the blender's strip)."""
    import subprocess
    import sys

    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    n, block = 10_000, 512
    guide = tmp_path / "guide.tif"
    profile = {
        "driver": "GTiff",
        "height": n,
        "width": n,
        "count": len(scene.channels),
        "dtype": "float32",
        "crs": CRS.from_epsg(32635),
        "transform": from_origin(500_000.0, 6_900_000.0, 10, 10),
        "nodata": float("nan"),
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
        "compress": "deflate",
        "SPARSE_OK": True,  # blocks never written read as nodata: no observation
    }
    ramp = np.linspace(0, 1, block * block, dtype=np.float32).reshape(1, block, block)
    with rasterio.open(guide, "w", **profile) as dst:
        dst.descriptions = scene.channels
        for k in range(0, n // block):  # observed blocks on the diagonal
            window = rasterio.windows.Window(k * block, k * block, block, block)
            dst.write(ramp + np.arange(len(scene.channels), dtype=np.float32)[:, None, None], window=window)
    coarse = np.random.default_rng(0).uniform(0, 300, (n // 10, n // 10)).astype(np.float32)
    source = write_geotiff(tmp_path / "source.tif", coarse, 100.0, nodata=-9999.0)
    out = tmp_path / "out.tif"
    command = [sys.executable, "-m", "gsr_bench", "predict", "-m", "nearest", *SMOKE, "--tile", "500"]
    command += ["--source", str(source), "--guide", str(guide), "--out", str(out), "--results", str(tmp_path)]
    # a wrapper whose only child is predict: RUSAGE_CHILDREN is then that command's peak
    wrapper = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    done = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    peak_gib = int(done.stdout.strip().splitlines()[-1]) / 2**20
    print(f"predict of 10,000 x 10,000 px: peak resident memory {peak_gib:.2f} GiB")
    assert peak_gib < 3.0, peak_gib
    with rasterio.open(out) as src:
        assert src.shape == (n, n)
        sample = src.read(1, window=rasterio.windows.Window(9_000, 9_000, 1_000, 1_000))
    # nearest: every 10 x 10 block is its source value
    np.testing.assert_allclose(sample[::10, ::10], coarse[900:, 900:], rtol=1e-6)

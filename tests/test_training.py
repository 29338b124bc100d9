"""The method interface carries learned methods: a small network trained by the core's loop."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from gsr_bench import MethodSpec, hookimpl
from gsr_bench.cli import main
from gsr_bench.data.tiles import open_prepared
from gsr_bench.method import Method, TaskInfo, TorchMethod
from gsr_bench.ops import upsample
from gsr_bench.plugins import PluginManager
from gsr_bench.protocol import Degradation, load_protocol
from gsr_bench.training import TrainContext, train_method, validation_rmse
from gsr_bench_datasets.biomassters.dataset import BioMassters
from gsr_bench_methods.interpolation import Interpolation


class TinyResidual(TorchMethod):
    """Bicubic plus a residual predicted from the guide and the upsampled source."""

    def __init__(self, task: TaskInfo, width: int = 16) -> None:
        super().__init__(task)
        self.net = nn.Sequential(
            nn.Conv2d(task.in_channels + 1, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 1, 3, padding=1),
        )

    def forward(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        up = upsample(source, self.task.scale, "bicubic")
        residual = self.net(torch.cat([guide, self.normalize(up)], 1))
        return (up + residual * self.task.target_std).clamp_min(0)


class TinyPlugin:
    @hookimpl
    def gsr_bench_register_methods(self, register):  # type: ignore[no-untyped-def]
        register(
            MethodSpec(
                "tiny-residual",
                "gsr",
                "1",
                "test network",
                TinyResidual,
                overrides={"train.lr": 3e-3},
            )
        )


@pytest.fixture(scope="module")
def splits(prepared: dict[str, Path]):  # type: ignore[no-untyped-def]
    return open_prepared(BioMassters(), prepared["train"], prepared["test"], 60, Degradation())


def _train(splits, seed: int, steps: int = 40) -> tuple[TinyResidual, dict[str, float]]:  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    info = splits.info
    task = TaskInfo(info.method_channels, 10, 60, info.target_mean, info.target_std, 500.0)
    method = TinyResidual(task)
    cfg = (
        load_protocol("smoke")
        .with_overrides({"train.steps": steps, "train.lr": 3e-3, "train.val_every": 20})
        .train
    )
    out = train_method(
        method,
        splits.train,
        splits.val,
        TrainContext(cfg, seed, torch.device("cpu"), progress=False),
    )
    return method, out


def test_training_improves_on_the_untrained_network(splits) -> None:  # type: ignore[no-untyped-def]
    """Training learns a residual worth adding to bicubic: the trained network beats bicubic
    itself, not just its own random start (which adds noise to bicubic).

    Fails if the optimizer does not reach the network, the loss reads the wrong target or pixels,
    or the best weights are not the ones restored: each leaves the residual at noise or worse.
    Measured at seed 0: untrained 55.00, bicubic 54.86, trained 53.31 (-2.8 %)."""
    info = splits.info
    torch.manual_seed(0)
    untrained = TinyResidual(TaskInfo(info.method_channels, 10, 60, info.target_mean, info.target_std, 500.0))
    before = validation_rmse(untrained, splits.val)
    bicubic = validation_rmse(Interpolation(untrained.task, mode="bicubic"), splits.val)
    trained, out = _train(splits, 0)
    # synthetic v3 hides most of the 10 m texture from the guide, as on real chips (guide R² of
    # the within-block part 0.21): 40 steps gain about 3 %
    assert out["best_val_rmse"] < 0.985 * min(before, bicubic)
    assert validation_rmse(trained, splits.val) == pytest.approx(out["best_val_rmse"], rel=1e-6)
    assert out["train_steps"] == 40


def test_same_seed_same_weights(splits) -> None:  # type: ignore[no-untyped-def]
    a, _ = _train(splits, 1, steps=10)
    b, _ = _train(splits, 1, steps=10)
    c, _ = _train(splits, 2, steps=10)
    for (name, pa), pb in zip(a.net.state_dict().items(), b.net.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.net.parameters(), c.net.parameters(), strict=True))


def test_learned_method_runs_through_the_runner(workdir: Path, plugin_manager: PluginManager) -> None:
    plugin_manager.register(TinyPlugin(), "tiny", "tests")
    # smoke shares one recipe between methods; this copy lets methods declare their own
    smoke = (Path(__file__).parents[1] / "gsr_bench" / "protocols" / "smoke.toml").read_text()
    proto = workdir / "smoke-overrides.toml"
    proto.write_text(smoke.replace("method_overrides = false", "method_overrides = true"))
    assert (
        main(["run", "-m", "tiny-residual", "-m", "bicubic", "--protocol", str(proto), "-q", "--publish"])
        == 0
    )
    import pandas as pd

    table = pd.read_csv(workdir / "leaderboard" / "results.csv")
    row = table[table["method"] == "tiny-residual"].iloc[0]
    assert row["params_mean"] > 1000 and row["train_time_s_mean"] > 0
    assert list((workdir / "results" / "checkpoints").glob("*/last.pt"))
    from gsr_bench.tracking import Tracker

    run = next(r for r in Tracker(workdir / "results").runs() if r.data.tags["method"] == "tiny-residual")
    assert run.data.params["protocol.train.lr"] == "0.003"  # the method's declared override
    assert run.data.params["chosen.loader_tier"] == "device"  # smoke's tiles fit in memory
    assert "protocol.loader.tier" not in run.data.params  # the loader never enters the job key
    assert run.data.params["chosen.loader.tier"] == "auto"  # but is recorded
    assert run.data.metrics["train_tiles_s"] > 0 and 0 <= run.data.metrics["data_wait_share"] < 1
    assert run.data.params["method.overrides.train.lr"] == "0.003"
    # [device] deterministic (on by default) applied, and logged with the other device flags
    assert run.data.metrics["device_deterministic"] == 1.0 and torch.are_deterministic_algorithms_enabled()
    # the loss and the validation RMSE as series, each at its step: a learned method that ends
    # worse than bicubic can be read from the MLflow UI's charts
    client = Tracker(workdir / "results").client
    val = client.get_metric_history(run.info.run_id, "val_rmse")
    loss = client.get_metric_history(run.info.run_id, "train_loss")
    steps = int(run.data.metrics["train_steps"])
    assert [m.step for m in val][-1] == steps and len(loss) >= len(val) >= 1
    assert min(m.value for m in val) == pytest.approx(run.data.metrics["best_val_rmse"])


def test_channels_last_on_a_cpu_gives_the_same_network(splits) -> None:  # type: ignore[no-untyped-def]
    """``[device] channels_last`` takes effect on a CPU too (smoke and quick turn it on): the
    weights train in NHWC, to what the default layout gives up to float rounding."""
    from gsr_bench.protocol import Device
    from gsr_bench.training import configure_device

    info = splits.info
    task = TaskInfo(info.method_channels, 10, 60, info.target_mean, info.target_std, 500.0)
    cfg = load_protocol("smoke").with_overrides({"train.steps": 10}).train
    nets = {}
    for layout in (False, True):
        torch.manual_seed(3)
        method = TinyResidual(task)
        ctx = TrainContext(cfg, 3, torch.device("cpu"), progress=False, flags=Device(channels_last=layout))
        assert configure_device(method, ctx)["channels_last"] is layout
        train_method(method, splits.train, splits.val, ctx)
        nets[layout] = method.net
    conv = nets[True][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    for a, b in zip(nets[False].parameters(), nets[True].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


class DropsChannel(TinyResidual):
    def forward(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return super().forward(guide, source)[:, 0]  # [B, H, W]: broadcasts in a loss


class ThreeBands(Method):
    def predict(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        return upsample(source, self.task.scale, "nearest").repeat(1, 3, 1, 1)


class WrongOutputs:
    @hookimpl
    def gsr_bench_register_methods(self, register):  # type: ignore[no-untyped-def]
        register(MethodSpec("drops-channel", "gsr", "1", "forward drops the channel", DropsChannel))
        register(MethodSpec("three-bands", "sr", "1", "predicts 3 bands", ThreeBands))


def test_output_of_the_wrong_shape_is_one_line_at_the_first_step(
    workdir: Path, plugin_manager: PluginManager, capsys: pytest.CaptureFixture[str]
) -> None:
    """A forward that drops the channel dimension trained 20 steps on a broadcast loss before
    failing at validation with a raw torch error; a prediction of 3 bands failed in the metrics."""
    plugin_manager.register(WrongOutputs(), "wrong", "tests")
    args = [
        "run",
        "-m",
        "drops-channel",
        "-m",
        "three-bands",
        "--protocol",
        "smoke",
        "-q",
        "--no-leaderboard",
    ]
    assert main(args) == 1
    from gsr_bench.tracking import Tracker

    errors = {
        r.data.tags["method"]: r.data.tags["error"] for r in Tracker(workdir / "results").runs("FAILED")
    }
    assert errors == {
        "drops-channel": "MethodOutputError: method 'drops-channel': forward returned [4, 30, 30] float32, "
        "expected [4, 1, 30, 30] floating point",
        "three-bands": "MethodOutputError: method 'three-bands': predict returned [4, 3, 60, 60] float32, "
        "expected [4, 1, 60, 60] floating point",
    }
    assert not list((workdir / "results" / "checkpoints").glob("*/last.pt"))  # no step was taken

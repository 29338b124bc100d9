"""Which fields move which key: every protocol field and CLI option, decided one by one.

A new protocol field without a decision fails here (and in every run: ``jobkeys.protocol_part``)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from gsr_bench.jobkeys import EVAL, PROTOCOL_FIELDS, TRAIN, protocol_fields
from gsr_bench.planning import plan_jobs
from gsr_bench.plugins import get_plugin_manager
from gsr_bench.protocol import Device, load_protocol

# a different valid value of each field of the smoke protocol
CHANGED: dict[str, Any] = {
    "name": "smoke-b",
    "version": "99",
    "description": "other words",
    "seeds": [0, 7],
    "publish": True,
    "task.crop": 70,
    "task.degradation.blur_sigma": 0.5,
    "task.degradation.noise": 0.05,
    "task.degradation.bias": 0.1,
    "data.max_train_tiles": 6,
    "data.max_val_tiles": 1,
    "data.max_test_tiles": 3,
    "data.guide_dtype": "float32",
    "train.steps": 21,
    "train.batch_size": 3,
    "train.patch_size": 40,
    "train.optimizer": "adamw",
    "train.lr": 2e-3,
    "train.weight_decay": 0.01,
    "train.schedule": "constant",
    "train.warmup_steps": 2,
    "train.loss": "l2",
    "train.val_every": 5,
    "train.checkpoint_every": 5,
    "train.augment": False,
    "train.method_overrides": True,
    "train.per_image_iterations": 6,
    "train.log_every": 7,
    "eval.batch_size": 2,
    "eval.figure_tiles": 3,
    "eval.warmup_batches": 0,
    "eval.project_to_source": True,
    "eval.save_predictions": False,
    "device.policy": "cpu",
    "device.bf16": True,  # takes effect on CUDA only: no key moves on this CPU
    "device.channels_last": False,
    "device.compile": True,  # CUDA only, as bf16
    "device.deterministic": False,  # changes a GPU's numbers only: no key moves on this CPU
    "loader.tier": "stream",
    "loader.memory_fraction": 0.25,
    "loader.workers": 1,
    "loader.prefetch": 2,
    "methods": {"other-method": {"width": 2}},
    "method_train": {"other-method": {"steps": 3}},
    "datasets": {"other-dataset": {"size": 3}},
}

# moved through what they resolve to: channels_last takes effect on every device (the numerics);
# method_overrides lets msg's declared train.lr through (the resolved train fields)
THROUGH = {"device.channels_last": TRAIN, "train.method_overrides": TRAIN}


def _keys(protocol: Any, method: str = "msg", **kw: Any) -> tuple[str, str]:
    (job,) = plan_jobs(get_plugin_manager(), [method], ["biomassters-synthetic"], protocol, **kw)
    return job.train_key, job.key


def _moved(before: tuple[str, str], after: tuple[str, str]) -> str | None:
    train, metrics = before[0] != after[0], before[1] != after[1]
    assert not (train and not metrics), "the metrics key holds every field of the training key"
    return TRAIN if train else EVAL if metrics else None


def test_every_protocol_field_has_a_decision_and_moves_exactly_its_keys() -> None:
    smoke = load_protocol("smoke")
    fields = set(protocol_fields(smoke))
    assert fields == set(PROTOCOL_FIELDS), "decide the new field(s) in gsr_bench.jobkeys.PROTOCOL_FIELDS"
    assert fields == set(CHANGED), "give the new field(s) a changed value here"
    base = _keys(smoke, seeds=[0])
    for name, value in CHANGED.items():
        if isinstance(value, dict):  # another entry beside the tables' own
            value = {**protocol_fields(smoke)[name], **value}
        assert protocol_fields(smoke)[name] != value, name
        changed = smoke.with_overrides({name: value}, "test")
        expected = THROUGH.get(name, PROTOCOL_FIELDS[name])
        assert _moved(base, _keys(changed, seeds=[0], device="cpu")) == expected, name
    overrides = smoke.with_overrides({"train.method_overrides": True}, "test")
    assert _keys(overrides, "fdsr", seeds=[0]) != _keys(smoke, "fdsr", seeds=[0])  # fdsr declares lr
    assert _keys(overrides, "bicubic", seeds=[0]) == _keys(smoke, "bicubic", seeds=[0])  # declares none


def test_a_method_hashes_its_own_table_only() -> None:
    smoke = load_protocol("smoke")
    base = _keys(smoke, seeds=[0])
    own = smoke.with_overrides({"methods.msg.width": 16}, "test")
    assert _moved(base, _keys(own, seeds=[0])) == TRAIN
    budget = smoke.with_overrides({"method_train": {"msg": {"steps": 30}}}, "test")
    assert _moved(base, _keys(budget, seeds=[0])) == TRAIN


def test_numerics_are_those_the_device_applies() -> None:
    assert Device(bf16=True, compile=True).applied("cpu") == Device().applied("cpu")
    assert Device(bf16=True).applied("cuda")["bf16"] and Device(compile=True).applied("cuda")["compile"]
    # deterministic algorithms change a GPU's numbers, never a CPU's: hashed on CUDA only
    assert Device(deterministic=False).applied("cpu") == Device().applied("cpu")
    assert (
        Device().applied("cuda")["deterministic"]
        and not Device(deterministic=False).applied("cuda")["deterministic"]
    )


def test_command_line_options_move_exactly_their_keys(tmp_path: Path, real_sample: Path) -> None:
    smoke = load_protocol("smoke")
    pm = get_plugin_manager()
    base = _keys(smoke, seeds=[0])
    assert _moved(base, _keys(smoke, seeds=[1])) == TRAIN  # --seeds: the job's seed
    assert _moved(base, _keys(smoke, seeds=[0], option_pairs=["train_chips=11"])) == TRAIN  # -O
    projected = smoke.with_overrides({"eval.project_to_source": True}, "--project-to-source")
    assert _moved(base, _keys(projected, seeds=[0])) == EVAL
    tested = _keys(smoke, seeds=[0], root=str(real_sample), test_dataset="biomassters", test_split="train")
    assert _moved(base, tested) == EVAL  # --test-dataset, --test-split: the model is the same
    assert _moved(base, _keys(smoke, seeds=[0], device="cpu")) is None  # --device: the same flags here

    # --root: where the data sits is no part of a key; what it is, is
    here, there = tmp_path / "a" / "sample", tmp_path / "b" / "elsewhere"
    shutil.copytree(real_sample, here)
    shutil.copytree(real_sample, there)

    def real(root: Path) -> tuple[str, str]:
        (job,) = plan_jobs(pm, ["bicubic"], ["biomassters"], smoke, [0], str(root))
        assert str(root) not in repr(job.config())
        return job.train_key, job.key

    assert real(here) == real(there)
    metadata = there / "train_agbm_metadata.csv"
    metadata.write_text(metadata.read_text().replace(",262482,", ",262483,", 1))  # another file
    assert _moved(real(here), real(there)) == TRAIN


def test_a_dataset_option_that_is_a_path_is_refused() -> None:
    from gsr_bench.dataset import GSRDataset
    from gsr_bench.errors import GsrBenchError
    from gsr_bench.plugins import PluginManager
    from gsr_bench.registry import DatasetSpec

    class Leaky(GSRDataset):
        def options(self) -> dict[str, Any]:
            return {"root": "/home/someone/data"}

        def content_revision(self) -> str:
            return "its files"

    pm = PluginManager()
    pm.datasets.add(DatasetSpec("leaky", "1", "a path in its options", Leaky, plugin="leaky-plugin"))
    with pytest.raises(GsrBenchError, match=r"'root'.*a path"):
        plan_jobs(pm, ["bicubic"], ["leaky"], load_protocol("smoke"))

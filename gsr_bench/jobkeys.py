"""What a job's two keys hash: an allowlist, field by field.

``train_key`` names the trained weights: a finished checkpoint under it is resumed, never one of
another key. ``key`` names the metrics: a finished MLflow run under it is skipped. A field that
changes neither (the seeds list, the loader, how often a checkpoint is written) is recorded with
the run but hashed into no key, so changing it reruns nothing; a field that changes the numbers
moves exactly the keys it must. Every protocol field has a decision in :data:`PROTOCOL_FIELDS`,
and a field without one is an error: a new field must be decided before it is used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from gsr_bench.errors import GsrBenchError
from gsr_bench.protocol import Protocol

TRAIN, EVAL = "train", "eval"

# protocol field -> the key it moves (``TRAIN`` moves both: the metrics key contains the training
# key's fields), or ``None`` with the reason it changes no number
PROTOCOL_FIELDS: dict[str, str | None] = {
    "name": TRAIN,
    "version": TRAIN,
    "description": None,  # prose
    "seeds": None,  # the job's own seed is hashed, not the list it came from
    "publish": None,  # where a record goes, not what it holds
    "task.crop": TRAIN,
    "task.degradation.blur_sigma": TRAIN,
    "task.degradation.noise": TRAIN,
    "task.degradation.bias": TRAIN,
    "data.max_train_tiles": TRAIN,
    "data.max_val_tiles": TRAIN,  # validation picks the best weights
    "data.max_test_tiles": EVAL,
    "data.guide_dtype": TRAIN,
    "train.steps": TRAIN,
    "train.batch_size": TRAIN,
    "train.patch_size": TRAIN,
    "train.optimizer": TRAIN,
    "train.lr": TRAIN,
    "train.weight_decay": TRAIN,
    "train.schedule": TRAIN,
    "train.warmup_steps": TRAIN,
    "train.loss": TRAIN,
    "train.val_every": TRAIN,
    "train.checkpoint_every": None,  # a resumed run reaches the same weights (tests/test_resume.py)
    "train.augment": TRAIN,
    "train.method_overrides": None,  # what it lets through is hashed as the resolved train fields
    "train.per_image_iterations": TRAIN,
    "train.log_every": None,  # how often the host reads the loss
    "eval.batch_size": EVAL,  # batched prediction may round differently
    "eval.figure_tiles": None,
    "eval.warmup_batches": EVAL,  # warm-up fits consume random numbers (P2P)
    "eval.project_to_source": EVAL,
    "eval.save_predictions": None,
    "device.policy": None,  # the flags the chosen device applies are hashed (``numerics``)
    "device.bf16": None,
    "device.channels_last": None,
    "device.compile": None,
    "device.deterministic": None,
    "loader.tier": None,  # every tier serves the same batches for a seed
    "loader.memory_fraction": None,
    "loader.workers": None,
    "loader.prefetch": None,
    "methods": None,  # each job hashes its own method's table as the method's options
    "method_train": None,  # each job hashes its own table as the resolved train fields
    "datasets": None,  # each job hashes what its dataset reports of them (GSRDataset.options)
}


def protocol_fields(protocol: Protocol) -> dict[str, Any]:
    """Every field of ``protocol`` by dotted name; the free tables whole."""
    out: dict[str, Any] = {}

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            name = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(value):
                walk(value, f"{name}.")
            else:
                out[name] = value

    walk(protocol, "")
    return out


def protocol_part(protocol: Protocol, which: str) -> dict[str, Any]:
    """The fields of ``protocol`` that move key ``which``, by dotted name."""
    fields = protocol_fields(protocol)
    undecided = sorted(set(fields) - set(PROTOCOL_FIELDS))
    if undecided:
        raise GsrBenchError(
            f"protocol field(s) {', '.join(undecided)} have no key decision: add them to "
            "gsr_bench.jobkeys.PROTOCOL_FIELDS"
        )
    return {k: v for k, v in fields.items() if PROTOCOL_FIELDS[k] == which}


def digest(config: Mapping[str, Any]) -> str:
    """The SHA-256 of a configuration as canonical JSON."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def without_code(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` without the method's code fingerprint: runs that differ only in their code
    (an edit without a version bump) share it, so a rerun can say why it reruns."""
    method = {k: v for k, v in config["method"].items() if k != "code"}
    return {**config, "method": method}

"""A finished job's model as one file, ``model.pt``: what applying it outside the benchmark needs.

A prediction on new data must see its inputs exactly as the job's test tiles were seen: the same
guide channels z-scored with the same train statistics, the same task the method was created
with, the same options and the choices ``fit`` made (a tuned sigma), and, for a learned method,
the weights it was evaluated with (the best on validation). Every job writes this file beside
its ``config.json`` (an MLflow artifact of its run); ``gsr-bench predict`` reads it.

It is a ``torch.save`` of plain data (loaded with ``weights_only=True``): ``card``, a JSON-able
dict (:class:`ModelCard`), and ``weights``, the network's state dict or ``None``.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gsr_bench.errors import GsrBenchError
from gsr_bench.method import Method, TaskInfo, TorchMethod

MODEL_FILE = "model.pt"
FORMAT = 1


@dataclass(frozen=True)
class ModelCard:
    """Who a model is and how its inputs were prepared.

    Attributes:
        method, version, code: the method's name, version and code fingerprint at training.
        options: the keywords it is created with: the job's options and, for a training-free
            method, the choices its ``fit`` made (those named like its constructor's keywords).
        task: the :class:`~gsr_bench.method.TaskInfo` it was created with, as a dict.
        guide_mean, guide_std: per dataset guide channel (``task`` less the source mask), the
            train statistics the guide is z-scored with (availability masks: 0 and 1).
        job_key, train_key, dataset, dataset_revision, protocol, seed: the job it comes from.
        units: the target's units; rgb_channels: the guide channels of an RGB preview.
        guide_dtype: the precision the prepared tiles kept the guide in (the protocol's
            ``data.guide_dtype``): a scene's guide is rounded to it before normalizing.
    """

    method: str
    version: str
    code: str
    options: dict[str, Any]
    task: dict[str, Any]
    guide_mean: list[float]
    guide_std: list[float]
    job_key: str
    train_key: str
    dataset: str
    dataset_revision: str
    protocol: str
    seed: int
    units: str = ""
    rgb_channels: tuple[int, int, int] = (0, 1, 2)
    guide_dtype: str = "float32"
    format: int = FORMAT

    @property
    def task_info(self) -> TaskInfo:
        return TaskInfo(**{**self.task, "guide_channels": tuple(self.task["guide_channels"])})

    @property
    def guide_channels(self) -> tuple[str, ...]:
        """The dataset's channels, the bands a guide raster must have (the mask is added)."""
        return tuple(self.task["guide_channels"][:-1])

    @property
    def scale(self) -> int:
        return int(self.task["scale"])

    def normalization(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.guide_mean, np.float32), np.asarray(self.guide_std, np.float32)


def fit_choices(method: Method) -> dict[str, Any]:
    """What a training-free method's ``fit`` chose, as keywords of its constructor: the values of
    ``config()`` whose names the constructor takes (a learned method's choices are its weights)."""
    if isinstance(method, TorchMethod):
        return {}
    accepted = inspect.signature(type(method).__init__).parameters
    return {k: v for k, v in method.config().items() if k in accepted and k != "task" and v is not None}


def save_model(path: Path, card: ModelCard, method: Method) -> None:
    """Write ``card`` and, for a learned method, its network's weights to ``path``."""
    weights = None
    if isinstance(method, TorchMethod):
        net = getattr(method.net, "_orig_mod", method.net)  # torch.compile wraps the module
        weights = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save({"card": dataclasses.asdict(card), "weights": weights}, path)


def load_model(path: Path) -> tuple[ModelCard, dict[str, torch.Tensor] | None]:
    """The card and weights of a ``model.pt``.

    Raises:
        GsrBenchError: the file is missing, unreadable or not a gsr-bench model file.
    """
    if not path.is_file():
        raise GsrBenchError(f"{path}: model file not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise GsrBenchError(f"{path}: not a readable model file ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("card"), dict):
        raise GsrBenchError(f"{path}: not a gsr-bench model file (no card); jobs write one as {MODEL_FILE}")
    card = data["card"]
    if card.get("format") != FORMAT:
        raise GsrBenchError(f"{path}: model file format {card.get('format')}, this gsr-bench reads {FORMAT}")
    names = {f.name for f in dataclasses.fields(ModelCard)}
    card = ModelCard(**{k: v for k, v in card.items() if k in names})
    r, g, b = card.rgb_channels
    return dataclasses.replace(card, rgb_channels=(int(r), int(g), int(b))), data.get("weights")

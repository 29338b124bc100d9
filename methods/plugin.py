"""Registers the built-in methods through the ``gsr_bench`` entry-point group, as any plugin would.

Factories are ``"module:attr"`` strings: listing methods imports no model code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gsr_bench.api import MethodSpec, hookimpl

_GSR4B = "Karaman et al., GSR4B, ISPRS Annals (Geospatial Week) 2025, arXiv:2504.01722"
_MSG_PAPER = "Hui, Loy, Tang, Depth map super-resolution by deep multi-scale guidance, ECCV 2016"
_INTERP_PAPER = f"Keys, IEEE TASSP 1981; GSR4B SR baselines ({_GSR4B})"
_UTAE_PAPER = (
    "Garnot, Landrieu, Panoptic segmentation of satellite image time series with convolutional "
    "temporal attention networks, ICCV 2021"
)
_M = "gsr_bench_methods"


def _utae_paper_sizes(name: str) -> dict[str, Any]:
    return {
        f"methods.{name}.widths": [64, 64, 64, 128],
        f"methods.{name}.heads": 16,
        f"methods.{name}.key_dim": 4,
    }


# name, family, description, factory, paper, options, declared paper overrides
_BUILTINS: tuple[tuple[str, str, str, str, str, dict[str, Any], dict[str, Any]], ...] = (
    (
        "msg",
        "gsr",
        "MSG-Net: multi-scale guidance CNN, x5 then x2, residual on bicubic",
        f"{_M}.msg:MSG",
        _MSG_PAPER,
        {},
        {"train.lr": 1e-4},
    ),
    (
        "msg-ng",
        "sr",
        "MSG-Net without its guide branch (GSR4B's MSG^ng)",
        f"{_M}.msg:MSG",
        f"{_MSG_PAPER}; {_GSR4B}",
        {"use_guide": False},
        {"train.lr": 1e-4},
    ),
    (
        "fdsr",
        "gsr",
        "FDSR: octave-convolution guide path, multi-scale residual depth path",
        f"{_M}.fdsr:FDSR",
        "He et al., Towards fast and accurate real-world depth super-resolution, CVPR 2021",
        {},
        {"train.lr": 5e-4},
    ),
    (
        "jbu",
        "gsr",
        "Joint bilateral upsampling, range kernel on the guide; sigma_r tuned on val",
        f"{_M}.jbu:JBU",
        "Kopf, Cohen, Lischinski, Uyttendaele, Joint bilateral upsampling, SIGGRAPH 2007",
        {},
        {},
    ),
    (
        "guided-filter",
        "gsr",
        "Guided filter of bicubic by the guide's first principal component",
        f"{_M}.guided_filter:GuidedFilter",
        "He, Sun, Tang, Guided image filtering, ECCV 2010 / TPAMI 2013",
        {},
        {},
    ),
    (
        "p2p",
        "gsr",
        "Pixel-to-pixel transform: an MLP fitted to each tile's block means",
        f"{_M}.p2p:P2P",
        "de Lutio, D'Aronco, Wegner, Schindler, Guided super-resolution as pixel-to-pixel "
        "transformation, ICCV 2019",
        {},
        {},
    ),
    (
        "unet",
        "regression",
        "U-Net on the guide alone (timm encoder, ResNet-34 by default); never sees the source",
        f"{_M}.unet:UNet",
        "Ronneberger, Fischer, Brox, U-Net, MICCAI 2015; GSR4B regression baseline",
        {},
        {},
    ),
    (
        "resnext",
        "regression",
        "Stride-free ResNeXt on the guide alone, mean and log-variance heads (Gaussian NLL)",
        f"{_M}.resnext:ResNeXt",
        "Becker, Russwurm, Wegner, Schindler, Country-wide retrieval of forest structure from "
        "optical and SAR satellite imagery with deep ensembles, ISPRS J. 2023",
        {},
        {},
    ),
    (
        "dada",
        "gsr",
        "Deep anisotropic diffusion: learned diffusivities, block means adjusted to the source",
        f"{_M}.dada:DADA",
        "Metzger, Daudt, Schindler, Guided depth super-resolution by deep anisotropic diffusion, CVPR 2023",
        {},
        {
            "methods.dada.encoder": "resnet50",
            "methods.dada.features": 64,
            "methods.dada.pre_iterations": 8000,
            "methods.dada.grad_iterations": 1024,
        },
    ),
    (
        "lgr",
        "gsr",
        "Learned graph regularisation: Laplacian energy under exact block means, CG in torch",
        f"{_M}.lgr:LGR",
        "de Lutio, Becker, D'Aronco, Russo, Wegner, Schindler, Learning graph regularisation for "
        "guided super-resolution, CVPR 2022",
        {},
        {"methods.lgr.features": 64, "methods.lgr.tol": 1e-5, "methods.lgr.max_iter": 5000},
    ),
    (
        "msg-t",
        "gsr",
        "MSG-Net guided by a U-TAE encoder of the monthly images (time-series guidance)",
        f"{_M}.msg_t:MSGT",
        f"{_MSG_PAPER}; {_UTAE_PAPER}",
        {},
        {**_utae_paper_sizes("msg-t"), "train.lr": 1e-4},
    ),
    (
        "utae",
        "regression",
        "U-TAE on the monthly images alone: temporal attention with availability masks",
        f"{_M}.utae:UTAE",
        _UTAE_PAPER,
        {},
        _utae_paper_sizes("utae"),
    ),
    (
        "nearest",
        "sr",
        "Nearest-neighbour upsampling of the source (each 100 m cell copied)",
        f"{_M}.interpolation:Interpolation",
        _INTERP_PAPER,
        {"mode": "nearest"},
        {},
    ),
    (
        "bilinear",
        "sr",
        "Bilinear upsampling of the source",
        f"{_M}.interpolation:Interpolation",
        _INTERP_PAPER,
        {"mode": "bilinear"},
        {},
    ),
    (
        "bicubic",
        "sr",
        "Bicubic upsampling of the source, clamped at 0",
        f"{_M}.interpolation:Interpolation",
        _INTERP_PAPER,
        {"mode": "bicubic"},
        {},
    ),
)


# Bump a method's version whenever its results may change; methods/fingerprints.json holds each
# version's code fingerprint, and tests/methods/test_fingerprints.py fails on code that changed
# under an unchanged version. 2: LGR's conjugate gradient freezes converged samples (8a176ea);
# P2P's optimizer and its fused colour/coordinate layers (5cd35e6, a4bd6c1). All, +1: the guide
# ends with the source mask channel and invalid source blocks are filled, not 0 (#19). ResNeXt 3:
# its NLL averaged over every rank's valid pixels (gsr_bench.losses.masked_mean). ResNeXt 4, U-Net
# 3: the guide alone, without the source mask (ResNeXt fed it diverged on the monthly composite).
# All, +1: the methods import from gsr_bench.api, the channel names moved below the contracts and the
# standard training loop is called by the core, not by TorchMethod.fit (#20).
_VERSIONS = {
    **{name: "3" for name, *_ in _BUILTINS},
    "lgr": "4",
    "p2p": "4",
    "resnext": "5",
    "unet": "4",
}

# No seed reaches these: their output is a function of the data (tuned on val deterministically).
_DETERMINISTIC = frozenset({"nearest", "bilinear", "bicubic", "jbu", "guided-filter"})
# These read the guide's time series: they run on the dataset's time-series guide
_TEMPORAL = frozenset({"utae", "msg-t"})


@hookimpl
def gsr_bench_register_methods(register: Callable[[Any], None]) -> None:
    for name, family, description, factory, paper, options, overrides in _BUILTINS:
        register(
            MethodSpec(
                name=name,
                family=family,
                version=_VERSIONS.get(name, "1"),
                description=description,
                factory=factory,
                paper=paper,
                options=options,
                overrides=overrides,
                seeded=name not in _DETERMINISTIC,
                temporal=name in _TEMPORAL,
            )
        )

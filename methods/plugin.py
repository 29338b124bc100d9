"""Registers the built-in methods through the ``gsr_bench`` entry-point group, as any plugin would.

Factories are ``"module:attr"`` strings: listing methods imports no model code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gsr_bench import MethodSpec, hookimpl

_GSR4B = "Karaman et al., GSR4B, ISPRS Annals (Geospatial Week) 2025, arXiv:2504.01722"
_MSG_PAPER = "Hui, Loy, Tang, Depth map super-resolution by deep multi-scale guidance, ECCV 2016"
_INTERP_PAPER = f"Keys, IEEE TASSP 1981; GSR4B SR baselines ({_GSR4B})"
_M = "gsr_bench_methods"

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


# No seed reaches these: their output is a function of the data (tuned on val deterministically).
_DETERMINISTIC = frozenset({"nearest", "bilinear", "bicubic", "jbu", "guided-filter"})


@hookimpl
def gsr_bench_register_methods(register: Callable[[Any], None]) -> None:
    for name, family, description, factory, paper, options, overrides in _BUILTINS:
        register(
            MethodSpec(
                name=name,
                family=family,
                version="1",
                description=description,
                factory=factory,
                paper=paper,
                options=options,
                overrides=overrides,
                seeded=name not in _DETERMINISTIC,
            )
        )

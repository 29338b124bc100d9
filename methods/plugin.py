"""Registers the built-in methods through the ``gsr_bench`` entry-point group, as any plugin would.

Factories are ``"module:attr"`` strings: listing methods imports no model code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gsr_bench import MethodSpec, hookimpl

_INTERP = "gsr_bench_methods.interpolation:Interpolation"
_INTERP_PAPER = "Keys, IEEE TASSP 1981; GSR4B SR baselines (Karaman et al., ISPRS 2025)"


_GSR4B = "Karaman et al., GSR4B, ISPRS J. Photogramm. Remote Sens. 2025"


@hookimpl
def gsr_bench_register_methods(register: Callable[[Any], None]) -> None:
    register(
        MethodSpec(
            name="msg",
            family="gsr",
            version="1",
            description="MSG-Net: multi-scale guidance CNN, x5 then x2, residual on bicubic",
            factory="gsr_bench_methods.msg:MSG",
            paper="Hui, Loy, Tang, Depth map super-resolution by deep multi-scale guidance, ECCV 2016",
            overrides={"train.lr": 1e-4},
        )
    )
    register(
        MethodSpec(
            name="msg-ng",
            family="sr",
            version="1",
            description="MSG-Net without its guide branch (GSR4B's MSG^ng)",
            factory="gsr_bench_methods.msg:MSG",
            options={"use_guide": False},
            paper=f"Hui et al., ECCV 2016; {_GSR4B}",
            overrides={"train.lr": 1e-4},
        )
    )
    register(
        MethodSpec(
            name="fdsr",
            family="gsr",
            version="1",
            description="FDSR: octave-convolution guide path, multi-scale residual depth path",
            factory="gsr_bench_methods.fdsr:FDSR",
            paper="He et al., Towards fast and accurate real-world depth super-resolution, CVPR 2021",
            overrides={"train.lr": 5e-4},
        )
    )
    for mode, text in (
        ("nearest", "Nearest-neighbour upsampling of the source (each 100 m cell copied)"),
        ("bilinear", "Bilinear upsampling of the source"),
        ("bicubic", "Bicubic upsampling of the source, clamped at 0"),
    ):
        register(
            MethodSpec(
                name=mode,
                family="sr",
                version="1",
                description=text,
                factory=_INTERP,
                paper=_INTERP_PAPER,
                options={"mode": mode},
            )
        )
    register(
        MethodSpec(
            name="jbu",
            family="gsr",
            version="1",
            description="Joint bilateral upsampling, range kernel on the guide; sigma_r tuned on val",
            factory="gsr_bench_methods.jbu:JBU",
            paper="Kopf, Cohen, Lischinski, Uyttendaele, Joint bilateral upsampling, SIGGRAPH 2007",
        )
    )
    register(
        MethodSpec(
            name="guided-filter",
            family="gsr",
            version="1",
            description="Guided filter of bicubic by the guide's first principal component",
            factory="gsr_bench_methods.guided_filter:GuidedFilter",
            paper="He, Sun, Tang, Guided image filtering, ECCV 2010 / TPAMI 2013",
        )
    )
    register(
        MethodSpec(
            name="p2p",
            family="gsr",
            version="1",
            description="Pixel-to-pixel transform: an MLP fitted to each tile's block means",
            factory="gsr_bench_methods.p2p:P2P",
            paper="de Lutio, D'Aronco, Wegner, Schindler, Guided super-resolution as pixel-to-pixel "
            "transformation, ICCV 2019",
        )
    )

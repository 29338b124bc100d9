"""Registers the built-in methods through the ``gsr_bench`` entry-point group, as any plugin would.

Factories are ``"module:attr"`` strings: listing methods imports no model code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gsr_bench import MethodSpec, hookimpl

_INTERP = "gsr_bench_methods.interpolation:Interpolation"
_INTERP_PAPER = "Keys, IEEE TASSP 1981; GSR4B SR baselines (Karaman et al., ISPRS 2025)"


@hookimpl
def gsr_bench_register_methods(register: Callable[[Any], None]) -> None:
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

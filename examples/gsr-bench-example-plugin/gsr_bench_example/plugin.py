"""Registers the example method; keep this module free of heavy imports (it runs on `list`)."""

from collections.abc import Callable
from typing import Any

from gsr_bench.api import MethodSpec, hookimpl


@hookimpl
def gsr_bench_register_methods(register: Callable[[Any], None]) -> None:
    register(
        MethodSpec(
            name="example-smooth-bicubic",
            family="sr",
            version="1",
            description="Example plugin: bicubic upsampling followed by a 3 x 3 mean filter",
            factory="gsr_bench_example.method:SmoothBicubic",
            paper="none (a template for plugin authors)",
            seeded=False,  # no seed changes its output: it runs once, not once per seed
        )
    )
    register(
        MethodSpec(
            name="example-tiny-residual",
            family="gsr",
            version="1",
            description="Example plugin: a three-layer residual CNN over bicubic and the guide",
            factory="gsr_bench_example.learned:TinyResidual",
            paper="none (a template for plugin authors: a learned method)",
        )
    )

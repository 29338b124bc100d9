"""What a method must return, checked where the core first receives it.

A method whose ``forward`` or ``predict`` returns the wrong shape used to surface as a raw torch
error (``The size of tensor a (3) must match the size of tensor b (30)``), or worse, a dropped
channel dimension broadcast in the loss and trained for 20 steps before validation failed.
"""

from __future__ import annotations

import torch

from gsr_bench.errors import GsrBenchError


class MethodOutputError(GsrBenchError):
    """A method returned something other than a ``[B, 1, H, W]`` floating-point prediction."""


def describe_mismatch(out: object, like: torch.Tensor) -> str:
    """``""`` when ``out`` is a floating-point tensor shaped as ``like``, else what is wrong."""
    expected = f"[{', '.join(map(str, like.shape))}] floating point"
    if not isinstance(out, torch.Tensor):
        return f"returned {type(out).__name__}, expected a tensor {expected}"
    if tuple(out.shape) != tuple(like.shape) or not out.is_floating_point():
        got = f"[{', '.join(map(str, out.shape))}] {str(out.dtype).removeprefix('torch.')}"
        return f"returned {got}, expected {expected}"
    return ""


def check_output(method: object, where: str, out: object, like: torch.Tensor) -> None:
    """Refuse ``out`` unless it is a floating-point tensor shaped as ``like`` (``[B, 1, H, W]``)."""
    mismatch = describe_mismatch(out, like)
    if mismatch:
        spec = getattr(method, "spec", None)
        name = getattr(spec, "name", None) or type(method).__name__
        raise MethodOutputError(f"method {name!r}: {where} {mismatch}")

"""LGR: de Lutio, Becker, D'Aronco, Russo, Wegner and Schindler, "Learning Graph Regularisation
for Guided Super-Resolution", CVPR 2022.

Spec (x10 on 250 x 250 tiles, source 25 x 25):
- A U-Net with a timm encoder reads the z-scored guide and the bicubic-upsampled z-scored source
  and gives ``features`` channels per pixel.
- Edge weights of the 4-neighbour graph over the 10 m pixels: ``w = exp(-mean((f_i - f_j)^2))``
  plus a floor of ``1e-4`` that keeps the system well posed where the features cut the graph.
- The output minimizes the graph-Laplacian energy ``x^T L(w) x`` subject to ``D x = y``, ``D`` the
  exact 10 x 10 block mean and ``y`` the source (the constrained limit of the paper's
  ``(D^T D + lambda L) x = D^T y`` as ``lambda -> 0``, so the block means hold exactly). With
  ``x = up(y) + u`` and ``P = I - up(D .)`` the projection onto the null space of ``D``
  (``D D^T`` is a multiple of the identity), ``u`` solves ``P L P u = -P L up(y)``: symmetric,
  positive definite on the null space, solved by conjugate gradient with a Jacobi
  preconditioner, batched, in torch (CPU and GPU; no CuPy).
- Gradients by implicit differentiation: one more solve, ``P L P lam = P g`` for the loss
  gradient ``g``, gives ``dloss/dw_ij = -(lam_i - lam_j)(x_i - x_j)``; nothing is stored per CG
  iteration.
- Negative values that the energy allows next to empty blocks are clamped and the block
  rescaled (DADA's adjustment), so the output is non-negative with exact block means.
- L1 loss on the output. The paper's crops (64, 128, 256 at x4-x32) are not multiples of 10:
  here 250 and x10.

Size: 14.4 M parameters (ResNet-18 U-Net, 16 features), 197 kFLOP a pixel in the U-Net (torch's
count, ``gsr-bench bench``), plus about 30 FLOP a pixel a conjugate-gradient iteration (tens to
hundreds of them, more as the learned weights cut the graph).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gsr_bench.api import TaskInfo, TorchMethod, block_mean, project_to_source, upsample

from ._features import GuideFeatures, graph_flow, neighbour_differences

WEIGHT_FLOOR = 1e-4


def null_space(x: torch.Tensor, scale: int) -> torch.Tensor:
    """``x`` minus its block means: the orthogonal projection onto ``{x : D x = 0}``."""
    return x - upsample(block_mean(x, scale), scale, "nearest")


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(dim=(1, 2, 3), keepdim=True)


def solve_null_space(
    wv: torch.Tensor,
    wh: torch.Tensor,
    b: torch.Tensor,
    scale: int,
    tol: float,
    max_iter: int,
) -> tuple[torch.Tensor, int]:
    """``u`` in the null space of ``D`` with ``P L P u = P b`` by preconditioned CG, per sample.

    Stops when every sample's residual is below ``tol`` times its right-hand side.
    """
    diag = (
        nn.functional.pad(wv, (0, 0, 0, 1))
        + nn.functional.pad(wv, (0, 0, 1, 0))
        + nn.functional.pad(wh, (0, 1))
        + nn.functional.pad(wh, (1, 0))
    )

    def apply(v: torch.Tensor) -> torch.Tensor:
        return null_space(-graph_flow(v, wv, wh), scale)

    def precondition(r: torch.Tensor) -> torch.Tensor:
        return null_space(r / diag, scale)

    r = null_space(b, scale)
    u = torch.zeros_like(r)
    z = precondition(r)
    p = z
    rz = _dot(r, z)
    limit = tol * _dot(r, r).sqrt()
    zero = torch.zeros_like(rz)
    done = 0
    while done < max_iter:
        done += 1
        ap = apply(p)
        pap = _dot(p, ap)
        # converged samples stop moving; in float32 their p.Ap underflows and must not divide
        active = (_dot(r, r).sqrt() > limit) & (pap > 0)
        alpha = torch.where(active, rz / torch.where(active, pap, 1.0), zero)
        u = u + alpha * p
        r = r - alpha * ap
        if not bool((_dot(r, r).sqrt() > limit).any()):
            break
        z = precondition(r)
        rz_new = _dot(r, z)
        beta = torch.where(active & (rz > 0), rz_new / torch.where(rz > 0, rz, 1.0), zero)
        p = z + beta * p
        rz = rz_new
    return null_space(u, scale), done


class GraphSolve(torch.autograd.Function):
    """``x = up(y) + u`` minimizing ``x^T L(w) x`` under ``D x = y``; differentiable in ``w``."""

    @staticmethod
    def forward(
        ctx: Any,
        wv: torch.Tensor,
        wh: torch.Tensor,
        source: torch.Tensor,
        scale: int,
        tol: float,
        max_iter: int,
    ) -> torch.Tensor:
        x0 = upsample(source, scale, "nearest")
        u, _ = solve_null_space(wv, wh, graph_flow(x0, wv, wh), scale, tol, max_iter)
        x = x0 + u
        ctx.save_for_backward(wv, wh, x)
        ctx.scale, ctx.tol, ctx.max_iter = scale, tol, max_iter
        return x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        wv, wh, x = ctx.saved_tensors
        lam, _ = solve_null_space(wv, wh, grad, ctx.scale, ctx.tol, ctx.max_iter)
        lv, lh = neighbour_differences(lam)
        xv, xh = neighbour_differences(x)
        return -lv * xv, -lh * xh, None, None, None, None


def graph_solve(
    wv: torch.Tensor,
    wh: torch.Tensor,
    source: torch.Tensor,
    scale: int,
    tol: float = 1e-5,
    max_iter: int = 2000,
) -> torch.Tensor:
    """The graph-regularised upsampling of ``source`` for vertical and horizontal edge weights."""
    out: torch.Tensor = GraphSolve.apply(wv, wh, source, scale, tol, max_iter)
    return out


class LGRNet(nn.Module):
    """Guide and z-scored source -> weights of the vertical and horizontal edges."""

    def __init__(self, guide_channels: int, encoder: str, features: int, scale: int) -> None:
        super().__init__()
        self.features = GuideFeatures(guide_channels, encoder, features, scale)

    def forward(self, guide: torch.Tensor, source_z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.weights(self.features(guide, source_z).float())

    @staticmethod
    def weights(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dv, dh = neighbour_differences(feats)
        wv = torch.exp(-(dv**2).mean(1, keepdim=True)) + WEIGHT_FLOOR
        wh = torch.exp(-(dh**2).mean(1, keepdim=True)) + WEIGHT_FLOOR
        return wv, wh


class LGR(TorchMethod):
    """Learned graph regularisation: a Laplacian energy under exact block-mean constraints."""

    def __init__(
        self,
        task: TaskInfo,
        encoder: str = "resnet18",
        features: int = 16,
        tol: float = 1e-4,
        max_iter: int = 1000,
    ) -> None:
        super().__init__(task)
        self.encoder, self.n_features = encoder, features
        self.tol, self.max_iter = tol, max_iter
        self.net = LGRNet(task.in_channels, encoder, features, task.scale)

    def forward(self, guide: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        s = self.task.scale
        wv, wh = self.net(guide, self.normalize(source))  # the only call: DDP wraps self.net
        source = source.float()
        x = graph_solve(wv, wh, source, s, self.tol, self.max_iter)
        return project_to_source(x, source, s)

    def config(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder,
            "features": self.n_features,
            "tol": self.tol,
            "max_iter": self.max_iter,
        }

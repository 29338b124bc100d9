"""Training loops the method tests share: a few steps on one tile, and a gradient check."""

from __future__ import annotations

import torch

from gsr_bench.method import TorchMethod


def fit_one_tile(
    method: TorchMethod,
    guide: torch.Tensor,
    source: torch.Tensor,
    target: torch.Tensor,
    steps: int,
    lr: float,
) -> list[float]:
    """Adam on the L1 loss of one tile, every pixel valid; the loss of each step."""
    opt = torch.optim.Adam(method.net.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = (method.forward(guide, source) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def parameters_without_gradient(method: TorchMethod, batch: dict[str, torch.Tensor]) -> list[str]:
    """Parameters that the training loss of ``batch`` leaves without a gradient, after one SGD
    step: timm zero-initializes the last norm of each residual block, and one step wakes those
    branches."""
    method.net.train()
    opt = torch.optim.SGD(method.net.parameters(), lr=1e-2)
    method.training_loss(batch, "l1").backward()
    opt.step()
    opt.zero_grad()
    method.training_loss(batch, "l1").backward()
    return [n for n, p in method.net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]

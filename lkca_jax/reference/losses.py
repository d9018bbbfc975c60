"""The training losses in PyTorch (mirrors :mod:`lkca_jax.losses`)."""

from __future__ import annotations

import math

import torch


def gradient_magnitude(x: torch.Tensor) -> torch.Tensor:
    """G(x) of docs/design.md section 4.1 on (N, C, H, W): forward differences along the
    spectrum, H and W, all on the [1:, 1:, 1:] sub-cube, sqrt(sum of squares + 1e-6)."""
    core = x[:, 1:, 1:, 1:]
    dc = core - x[:, :-1, 1:, 1:]
    dh = core - x[:, 1:, :-1, 1:]
    dw = core - x[:, 1:, 1:, :-1]
    return torch.sqrt(dc ** 2 + dh ** 2 + dw ** 2 + 1e-6)


def hloss(y: torch.Tensor, gt: torch.Tensor, l1_weight=1.0, sam_weight=0.5, grad_weight=0.1) -> torch.Tensor:
    """MSDformer's HLoss on (N, C, H, W): L1 + SAM loss (angle / pi, cos clamped to 1 - 1e-6) +
    L1 of the gradient magnitudes."""
    cos = (y * gt).sum(1) / torch.clamp(y.norm(dim=1) * gt.norm(dim=1), min=1e-12)
    sam = torch.arccos(torch.clamp(cos, -1 + 1e-6, 1 - 1e-6)).mean() / math.pi
    grad = (gradient_magnitude(y) - gradient_magnitude(gt)).abs().mean()
    return l1_weight * (y - gt).abs().mean() + sam_weight * sam + grad_weight * grad


def sspsr_loss(y: torch.Tensor, gt: torch.Tensor, spatial=1e-3, spectral=2e-3) -> torch.Tensor:
    """SSPSR's loss on (N, C, H, W): L1 + spatial * (mean squared vertical + mean squared horizontal
    neighbour difference of y) + spectral * mean squared adjacent-band difference of y."""
    tv = (y[:, :, 1:] - y[:, :, :-1]).pow(2).mean() + (y[..., 1:] - y[..., :-1]).pow(2).mean()
    return (y - gt).abs().mean() + spatial * tv + spectral * (y[:, 1:] - y[:, :-1]).pow(2).mean()


def training_loss(t):
    """The torch form of the supervised loss a config's ``train`` block selects (``t.loss``)."""
    return {"hloss": lambda y, gt: hloss(y, gt, t.l1_weight, t.sam_weight, t.grad_weight),
            "mse": lambda y, gt: (y - gt).pow(2).mean(),
            "sspsr": lambda y, gt: sspsr_loss(y, gt, t.spatial_tv_weight, t.spectral_tv_weight)}[t.get("loss", "hloss")]

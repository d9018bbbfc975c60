"""Training losses (docs/design.md sections 4 and 5.2) on (N, H, W, C) batches.

Supervised, chosen by ``train.loss``: ``hloss``, MSDformer's HLoss ``l1 + sam_weight * SAM +
grad_weight * L1(G(y), G(gt))`` (paper: 1, 0.5, 0.1); ``mse``, the mean squared error VDSR's and
3D-FCNN's papers train with; or ``sspsr``, SSPSR's own ``L1 +
spatial_tv_weight * (mean squared vertical + mean squared horizontal difference of y) +
spectral_tv_weight * mean squared band-to-band difference of y`` (its code: 1e-3 and 2e-3; both
TV terms regularise the prediction alone). Distillation on post-PixelShuffle features: ``L1 + L1 of G +
(1 - mean cosine)``, each with its weight. Every loss takes an optional per-image
``mask`` (1 real, 0 padding) and averages over the real images only.
"""

from __future__ import annotations

import jax.numpy as jnp

SAM_CLAMP = 1e-6
GRAD_EPS = 1e-6


def _masked_mean(per_image, mask):
    if mask is None:
        return jnp.mean(per_image)
    return jnp.sum(per_image * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def l1(y, gt, mask=None):
    return _masked_mean(jnp.mean(jnp.abs(y - gt), axis=(1, 2, 3)), mask)


def _norm(x):
    """Spectral-vector norm whose gradient is 0, not NaN, at the zero vector (a zero-initialised
    upsampler's features are exactly zero at the first step)."""
    sq = jnp.sum(x * x, axis=-1)
    return jnp.where(sq > 0, jnp.sqrt(jnp.where(sq > 0, sq, 1.0)), 0.0)


def _cosine(y, gt):
    """Per-pixel cosine of spectral vectors; a zero norm product is replaced by 1e-6."""
    dot = jnp.sum(y * gt, axis=-1)
    norms = _norm(y) * _norm(gt)
    return dot / jnp.where(norms == 0, SAM_CLAMP, norms)


def sam_loss(y, gt, mask=None):
    """Mean spectral angle over pixels, in units of pi (cos clamped to [-1 + 1e-6, 1 - 1e-6])."""
    angle = jnp.arccos(jnp.clip(_cosine(y, gt), -1 + SAM_CLAMP, 1 - SAM_CLAMP)) / jnp.pi
    return _masked_mean(jnp.mean(angle, axis=(1, 2)), mask)


def gradient_magnitude(x):
    """G(x): forward differences along H, W and the spectrum, on the [1:, 1:, 1:] sub-cube."""
    gx = x[:, 1:, 1:, 1:] - x[:, :-1, 1:, 1:]
    gy = x[:, 1:, 1:, 1:] - x[:, 1:, :-1, 1:]
    gc = x[:, 1:, 1:, 1:] - x[:, 1:, 1:, :-1]
    return jnp.sqrt(gx * gx + gy * gy + gc * gc + GRAD_EPS)


def gradient_loss(y, gt, mask=None):
    return l1(gradient_magnitude(y), gradient_magnitude(gt), mask)


def cosine_loss(s, t, mask=None):
    """1 - mean over pixels (and images) of the cosine of spectral vectors."""
    return 1.0 - _masked_mean(jnp.mean(_cosine(s, t), axis=(1, 2)), mask)


def supervised(y, gt, l1_weight=1.0, sam_weight=0.5, grad_weight=0.1, mask=None) -> dict:
    """HLoss terms and their weighted sum under ``'loss'``."""
    terms = {"l1": l1(y, gt, mask), "sam": sam_loss(y, gt, mask), "grad": gradient_loss(y, gt, mask)}
    terms["loss"] = l1_weight * terms["l1"] + sam_weight * terms["sam"] + grad_weight * terms["grad"]
    return terms


def tv_terms(y, mask=None) -> tuple:
    """SSPSR's (spatial, spectral) total variation of y: per image, the mean squared difference of
    neighbours along H plus that along W, and the mean squared difference of adjacent bands."""
    dh = jnp.mean(jnp.square(y[:, 1:] - y[:, :-1]), axis=(1, 2, 3))
    dw = jnp.mean(jnp.square(y[:, :, 1:] - y[:, :, :-1]), axis=(1, 2, 3))
    dc = jnp.mean(jnp.square(y[..., 1:] - y[..., :-1]), axis=(1, 2, 3))
    return _masked_mean(dh + dw, mask), _masked_mean(dc, mask)


def sspsr(y, gt, spatial_tv_weight=1e-3, spectral_tv_weight=2e-3, mask=None) -> dict:
    """SSPSR's loss terms and their weighted sum under ``'loss'``."""
    terms = {"l1": l1(y, gt, mask)}
    terms["spatial_tv"], terms["spectral_tv"] = tv_terms(y, mask)
    terms["loss"] = terms["l1"] + spatial_tv_weight * terms["spatial_tv"] + spectral_tv_weight * terms["spectral_tv"]
    return terms


def mse(y, gt, mask=None):
    return _masked_mean(jnp.mean(jnp.square(y - gt), axis=(1, 2, 3)), mask)


LOSSES = ("hloss", "mse", "sspsr")


def training_loss(t, y, gt, mask=None) -> dict:
    """The supervised loss a config's ``train`` block selects (``t.loss``, default ``hloss``)."""
    kind = t.get("loss", "hloss")
    if kind == "hloss":
        return supervised(y, gt, t.l1_weight, t.sam_weight, t.grad_weight, mask)
    if kind == "mse":
        value = mse(y, gt, mask)
        return {"mse": value, "loss": value}
    if kind == "sspsr":
        return sspsr(y, gt, t.spatial_tv_weight, t.spectral_tv_weight, mask)
    raise ValueError(f"train.loss must be one of {LOSSES}, got {kind!r}")


def distillation(s, t, l1_weight=1.0, grad_weight=1.0, cos_weight=1.0, mask=None) -> dict:
    """KD terms on student/teacher feature maps and their weighted sum under ``'kd'``."""
    terms = {"kd_l1": l1(s, t, mask), "kd_grad": gradient_loss(s, t, mask), "kd_cos": cosine_loss(s, t, mask)}
    terms["kd"] = l1_weight * terms["kd_l1"] + grad_weight * terms["kd_grad"] + cos_weight * terms["kd_cos"]
    return terms

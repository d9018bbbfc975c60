"""Losses against a float64 NumPy transcription of docs/design.md section 4."""

import numpy as np
import pytest

from lkca_jax import losses


def np_cos(y, g):
    dot = (y * g).sum(-1)
    n = np.linalg.norm(y, axis=-1) * np.linalg.norm(g, axis=-1)
    return dot / np.where(n == 0, 1e-6, n)


def np_grad(x):
    c = x[:, 1:, 1:, 1:]
    gx = c - x[:, :-1, 1:, 1:]
    gy = c - x[:, 1:, :-1, 1:]
    gc = c - x[:, 1:, 1:, :-1]
    return np.sqrt(gx ** 2 + gy ** 2 + gc ** 2 + 1e-6)


def np_hloss(y, g):
    y, g = y.astype(np.float64), g.astype(np.float64)
    l1 = np.abs(y - g).mean()
    sam = (np.arccos(np.clip(np_cos(y, g), -1 + 1e-6, 1 - 1e-6)) / np.pi).mean()
    grad = np.abs(np_grad(y) - np_grad(g)).mean()
    return l1 + 0.5 * sam + 0.1 * grad, (l1, sam, grad)


def test_hloss_matches_transcription(rng):
    gt = rng.uniform(0, 1, (3, 12, 10, 7)).astype(np.float32)
    y = (gt + rng.normal(0, 0.1, gt.shape)).astype(np.float32)
    y[0, 0, 0] = 0.0  # a zero spectrum: the 1e-6 guard
    got = losses.supervised(y, gt)
    total, (l1, sam, grad) = np_hloss(y, gt)
    assert float(got["loss"]) == pytest.approx(total, rel=1e-5)
    assert (float(got["l1"]), float(got["sam"]), float(got["grad"])) == pytest.approx((l1, sam, grad), rel=1e-5)


def test_weights_and_mask(rng):
    gt = rng.uniform(0, 1, (4, 8, 8, 5)).astype(np.float32)
    y = (gt + rng.normal(0, 0.1, gt.shape)).astype(np.float32)
    got = losses.supervised(y, gt, l1_weight=2.0, sam_weight=0.0, grad_weight=1.0)
    _, (l1, _, grad) = np_hloss(y, gt)
    assert float(got["loss"]) == pytest.approx(2 * l1 + grad, rel=1e-5)
    masked = losses.supervised(y, gt, mask=np.array([1, 1, 0, 0], np.float32))
    assert float(masked["loss"]) == pytest.approx(np_hloss(y[:2], gt[:2])[0], rel=1e-5)


def test_kd_loss(rng):
    s = rng.normal(0, 1, (2, 9, 9, 6)).astype(np.float32)
    t = rng.normal(0, 1, (2, 9, 9, 6)).astype(np.float32)
    got = losses.distillation(s, t, l1_weight=1.0, grad_weight=1.0, cos_weight=1.0)
    s64, t64 = s.astype(np.float64), t.astype(np.float64)
    want = np.abs(s64 - t64).mean() + np.abs(np_grad(s64) - np_grad(t64)).mean() + 1 - np_cos(s64, t64).mean()
    assert float(got["kd"]) == pytest.approx(want, rel=1e-5)
    same = losses.distillation(s, s)
    assert float(same["kd"]) == pytest.approx(0.0, abs=1e-6)


def test_gradients_finite_at_zero_features(rng):
    import jax

    t = rng.normal(0, 1, (2, 6, 6, 4)).astype(np.float32)
    zero = np.zeros_like(t)
    g = jax.grad(lambda s: losses.distillation(s, t)["kd"] + losses.supervised(s, t)["loss"])(zero)
    assert np.isfinite(np.asarray(g)).all()

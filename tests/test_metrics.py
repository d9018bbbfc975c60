"""Metrics against independent float64 NumPy/SciPy/scikit-image implementations of the formulas."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from conftest import shared_data
from lkca_jax import metrics
from lkca_jax.data.io import read
from lkca_jax.ops.imresize import imresize_np


def reference(gt, pred, scale, ratio=None):
    """Written from docs/design.md section 7, in float64."""
    gt, pred = gt.astype(np.float64), pred.astype(np.float64)
    c = gt.shape[2]
    mse = ((gt - pred) ** 2).mean(axis=(0, 1))
    psnr = np.mean(10 * np.log10(1.0 / mse))
    ssim = np.mean([structural_similarity(gt[..., b], pred[..., b], win_size=7, gaussian_weights=False,
                                          use_sample_covariance=True, data_range=1) for b in range(c)])
    dot = (gt * pred).sum(-1)
    n1, n2 = np.linalg.norm(gt, axis=-1), np.linalg.norm(pred, axis=-1)
    ok = (n1 > 0) & (n2 > 0)
    sam = np.degrees(np.mean(np.arccos(np.minimum(1.0, dot[ok] / (n1[ok] * n2[ok])))))
    cc = np.mean([np.corrcoef(gt[..., b].ravel(), pred[..., b].ravel())[0, 1] for b in range(c)])
    rmse = np.sqrt(np.mean((gt - pred) ** 2))
    ergas = 100.0 / (ratio or scale) * np.sqrt(np.mean(mse / gt.mean(axis=(0, 1)) ** 2))
    return {"MPSNR": psnr, "MSSIM": ssim, "SAM": sam, "CC": cc, "RMSE": rmse, "ERGAS": ergas}


def check(gt, pred, scale, rtol=1e-5):
    got = metrics.quality_assessment(gt, pred, scale)
    want = reference(gt, pred, scale)
    assert list(got) == list(metrics.NAMES) and all(isinstance(v, float) for v in got.values())
    for k in metrics.NAMES:
        assert got[k] == pytest.approx(want[k], rel=rtol), k


def test_random_pairs(rng):
    for shape in [(32, 40, 8), (17, 23, 31)]:
        gt = rng.uniform(0, 1, shape).astype(np.float32)
        pred = np.clip(gt + rng.normal(0, 0.05, shape), -0.1, 1.1).astype(np.float32)
        check(gt, pred, 4)


def test_smooth_near_perfect_pair(rng):
    """Small errors on smooth images: where float32 cancellation would show."""
    y, x = np.mgrid[0:48, 0:48] / 48.0
    gt = np.stack([0.5 + 0.3 * np.sin(3 * x + b) * np.cos(2 * y) for b in range(16)], -1).astype(np.float32)
    pred = (gt + rng.normal(0, 2e-3, gt.shape)).astype(np.float32)
    check(gt, pred, 2)


def round_trip(hr, r):
    h, w = (s - s % r for s in hr.shape[:2])
    hr = hr[:h, :w]
    return hr, np.clip(imresize_np(imresize_np(hr, 1 / r), r), 0, None).astype(np.float32)


def test_real_pairs():
    cave = read(shared_data("cave", "pompoms_ms")) / 65535.0
    check(*round_trip(cave, 4), 4)
    pavia = read(shared_data("remote", "pavia_rosis_100.mat"))
    check(*round_trip(pavia, 4), 4)


def test_ergas_legacy_ratio(rng):
    gt = rng.uniform(0.1, 1, (16, 16, 4)).astype(np.float32)
    pred = gt + 0.01
    correct = metrics.quality_assessment(gt, pred, 8)["ERGAS"]
    legacy = metrics.quality_assessment(gt, pred, 8, legacy_ratio4=True)["ERGAS"]
    assert legacy == pytest.approx(2 * correct, rel=1e-6)
    assert legacy == pytest.approx(reference(gt, pred, 8, ratio=4)["ERGAS"], rel=1e-5)


def test_identical_images(rng):
    gt = rng.uniform(0, 1, (16, 16, 5)).astype(np.float32)
    got = metrics.quality_assessment(gt, gt, 4)
    assert got == {"MPSNR": math.inf, "MSSIM": 1.0, "SAM": 0.0, "CC": 1.0, "RMSE": 0.0, "ERGAS": 0.0}


def test_degenerate_inputs_never_nan(rng):
    gt = rng.uniform(0, 1, (16, 16, 4)).astype(np.float32)
    pred = gt + 0.01
    gt_const = gt.copy()
    gt_const[..., 0] = 0.5  # a constant band: left out of CC
    got = metrics.quality_assessment(gt_const, pred, 4)
    want = np.mean([np.corrcoef(gt[..., b].ravel(), pred[..., b].ravel())[0, 1] for b in (1, 2, 3)])
    assert got["CC"] == pytest.approx(want, rel=1e-5)
    zero = gt.copy()
    zero[:4] = 0.0  # zero spectra: left out of SAM; a zero-mean band with error makes ERGAS inf
    got = metrics.quality_assessment(zero, pred, 4)
    ok = np.ones((16, 16), bool)
    ok[:4] = False
    z, p = zero.astype(np.float64), pred.astype(np.float64)
    cos = (z * p).sum(-1)[ok] / (np.linalg.norm(z, axis=-1)[ok] * np.linalg.norm(p, axis=-1)[ok])
    assert got["SAM"] == pytest.approx(np.degrees(np.arccos(np.minimum(1, cos))).mean(), rel=1e-5)
    black = np.zeros((16, 16, 3), np.float32)
    got = metrics.quality_assessment(black, black + 0.1, 4)
    assert got["SAM"] == 0.0 and got["ERGAS"] == math.inf and got["CC"] == 0.0
    assert not any(math.isnan(v) for v in got.values())
    constant = np.full((16, 16, 3), 0.3, np.float32)
    got = metrics.quality_assessment(constant, constant, 4)
    assert got["CC"] == 1.0 and got["MSSIM"] == 1.0


def test_batched_equals_per_image(rng):
    gt = rng.uniform(0, 1, (3, 20, 20, 6)).astype(np.float32)
    pred = (gt + rng.normal(0, 0.03, gt.shape)).astype(np.float32)
    batch = metrics.all_metrics(jnp.asarray(gt), jnp.asarray(pred), 4)
    for i in range(3):
        one = metrics.quality_assessment(gt[i], pred[i], 4)
        for k in metrics.NAMES:
            assert float(batch[k][i]) == pytest.approx(one[k], rel=1e-5)  # float32 sums in another order


def test_bad_shapes():
    with pytest.raises(ValueError, match="one shape"):
        metrics.quality_assessment(np.zeros((8, 8, 3)), np.zeros((8, 8, 4)), 4)

"""Image-quality metrics of the paper's tables, in JAX, batched over images.

Conventions (docs/design.md section 7, the SSPSR/MSDformer evaluation code):
arrays are (..., H, W, C) with data range 1; every metric is computed per image
(the leading axes are a batch) and the table reports the mean over images;
predictions are not clipped.

* MPSNR: PSNR of each band (its MSE, peak 1), mean over bands, dB.
* MSSIM: SSIM of each band with a uniform 7 x 7 window, sample covariance
  (49/48), K1 = 0.01, K2 = 0.03, the map cropped by 3 pixels at each border
  (so the reflect border never enters), mean over bands.
* SAM: mean over pixels where both spectra are non-zero of their angle, degrees.
* CC: Pearson correlation of each band, mean over bands.
* RMSE: over all H * W * C values.
* ERGAS: (100 / ratio) sqrt(mean over bands of MSE_b / mean(gt_b)^2), ratio the
  scale; ``legacy_ratio4=True`` gives the anchors' variant with ratio 4 at every scale.

Degenerate inputs never give NaN:
identical images give MPSNR inf (and a band with zero error contributes inf);
SAM ignores pixels where either spectrum is all zeros, and is 0 when no pixel remains;
CC leaves out bands that are constant in either image, and is 1 if no band remains and the
images are equal, else 0; ERGAS counts a band with zero error as 0, and a band whose ground truth
has mean 0 but some error as inf.

Float32 on the device with cancellation-free forms (means removed before the SSIM moments,
the half-angle form of SAM); :func:`quality_assessment` is the NumPy entry point for one pair.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

NAMES = ("MPSNR", "MSSIM", "SAM", "CC", "RMSE", "ERGAS")
SSIM_WINDOW = 7
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _band_mse(gt, pred):
    return jnp.mean((gt - pred) ** 2, axis=(-3, -2))  # (..., C)


def mpsnr(gt, pred):
    mse = _band_mse(gt, pred)
    return jnp.mean(jnp.where(mse > 0, -10.0 * jnp.log10(mse), jnp.inf), axis=-1)


def _box_mean(x, size):
    """Mean over each size x size window that fits (valid windows only)."""
    lead = x.shape[:-3]
    x = x.reshape((-1,) + x.shape[-3:])
    s = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, size, size, 1), (1, 1, 1, 1), "VALID")
    return (s / (size * size)).reshape(lead + s.shape[1:])


def mssim(gt, pred):
    # Windows centred at least 3 pixels from the border are exactly the cropped SSIM map.
    n = SSIM_WINDOW * SSIM_WINDOW
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    shift = jnp.mean(gt, axis=(-3, -2), keepdims=True)  # SSIM's moments are shift-free but for C1
    x, y = gt - shift, pred - shift
    ux, uy = _box_mean(x, SSIM_WINDOW), _box_mean(y, SSIM_WINDOW)
    cov = n / (n - 1)
    vx = cov * (_box_mean(x * x, SSIM_WINDOW) - ux * ux)
    vy = cov * (_box_mean(y * y, SSIM_WINDOW) - uy * uy)
    vxy = cov * (_box_mean(x * y, SSIM_WINDOW) - ux * uy)
    mx, my = ux + shift, uy + shift
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return jnp.mean(s, axis=(-3, -2, -1))


def sam(gt, pred):
    """Degrees; the half-angle form 2 atan2(|a - b|, |a + b|) of unit vectors is exact near 0."""
    na = jnp.linalg.norm(gt, axis=-1, keepdims=True)
    nb = jnp.linalg.norm(pred, axis=-1, keepdims=True)
    valid = (na[..., 0] > 0) & (nb[..., 0] > 0)
    a = gt / jnp.where(na > 0, na, 1.0)
    b = pred / jnp.where(nb > 0, nb, 1.0)
    angle = 2.0 * jnp.arctan2(jnp.linalg.norm(a - b, axis=-1), jnp.linalg.norm(a + b, axis=-1))
    total = jnp.sum(jnp.where(valid, angle, 0.0), axis=(-2, -1))
    count = jnp.sum(valid, axis=(-2, -1))
    return jnp.degrees(jnp.where(count > 0, total / jnp.maximum(count, 1), 0.0))


def cc(gt, pred):
    x = gt - jnp.mean(gt, axis=(-3, -2), keepdims=True)
    y = pred - jnp.mean(pred, axis=(-3, -2), keepdims=True)
    sxx, syy = jnp.sum(x * x, axis=(-3, -2)), jnp.sum(y * y, axis=(-3, -2))
    valid = (sxx > 0) & (syy > 0)
    r = jnp.sum(x * y, axis=(-3, -2)) / jnp.sqrt(jnp.where(valid, sxx * syy, 1.0))
    count = jnp.sum(valid, axis=-1)
    equal = jnp.all(gt == pred, axis=(-3, -2, -1))
    fallback = jnp.where(equal, 1.0, 0.0)
    return jnp.where(count > 0, jnp.sum(jnp.where(valid, r, 0.0), axis=-1) / jnp.maximum(count, 1), fallback)


def rmse(gt, pred):
    return jnp.sqrt(jnp.mean((gt - pred) ** 2, axis=(-3, -2, -1)))


def ergas(gt, pred, scale: float, legacy_ratio4: bool = False):
    ratio = 4.0 if legacy_ratio4 else float(scale)
    mse = _band_mse(gt, pred)
    mean2 = jnp.mean(gt, axis=(-3, -2)) ** 2
    term = jnp.where(mse > 0, mse / jnp.where(mean2 > 0, mean2, 0.0), 0.0)  # x / 0 = inf where mse > 0
    return (100.0 / ratio) * jnp.sqrt(jnp.mean(term, axis=-1))


def all_metrics(gt, pred, scale: float, legacy_ratio4: bool = False) -> dict:
    """Every metric of each image: {name: (...,) array}, names as :data:`NAMES`."""
    gt, pred = jnp.asarray(gt, jnp.float32), jnp.asarray(pred, jnp.float32)
    return {"MPSNR": mpsnr(gt, pred), "MSSIM": mssim(gt, pred), "SAM": sam(gt, pred), "CC": cc(gt, pred),
            "RMSE": rmse(gt, pred), "ERGAS": ergas(gt, pred, scale, legacy_ratio4)}


# The jitted form evaluation and quality_assessment share (one compilation per shape and scale).
all_metrics_jit = jax.jit(all_metrics, static_argnames=("scale", "legacy_ratio4"))


def quality_assessment(gt: np.ndarray, pred: np.ndarray, scale: float, legacy_ratio4: bool = False) -> dict:
    """The six metrics of one (H, W, C) pair in [0, 1], as Python floats."""
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape or gt.ndim != 3:
        raise ValueError(f"expected two (H, W, C) arrays of one shape, got {gt.shape} and {pred.shape}")
    if min(gt.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"images must be at least {SSIM_WINDOW} x {SSIM_WINDOW} for MSSIM, got {gt.shape[:2]}")
    out = all_metrics_jit(gt, pred, float(scale), bool(legacy_ratio4))
    return {k: float(out[k]) for k in NAMES}

"""MATLAB-exact bicubic ``imresize`` as separable weight-matrix products.

Reproduces ``imresize(A, s)`` with MATLAB's defaults: Keys cubic kernel with
a = -0.5, antialiasing when shrinking (kernel stretched to width 4/s), output
size ``ceil(s * N)``, the coordinate map ``u = x/s + 0.5 * (1 - 1/s)``
(1-based), weights normalised to sum 1 and a symmetric (mirror) border.

Each spatial axis is resized by one dense ``(out, in)`` matrix built on the host
in float64, so the op is exact and runs as two matrix products on any backend.
Arrays are ``(..., H, W, C)``; the H axis is resized first, as MATLAB does when
both scales are equal.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def output_size(length: int, scale: float) -> int:
    """MATLAB's ``ceil(scale * length)``, immune to float noise such as 63 * (1/3)."""
    return int(math.ceil(round(scale * length, 9)))


@functools.lru_cache(maxsize=256)
def resize_matrix(in_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """The ``(out_len, in_len)`` float64 matrix that resizes one axis like MATLAB."""
    if in_len < 1 or scale <= 0:
        raise ValueError(f"imresize: need a positive length and scale, got {in_len} and {scale}")
    out_len = output_size(in_len, scale)
    shrink = scale < 1 and antialias
    width = 4.0 / scale if shrink else 4.0
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based input positions
    dist = u[:, None] - idx
    weights = scale * _cubic(scale * dist) if shrink else _cubic(dist)
    weights /= weights.sum(axis=1, keepdims=True)
    # Symmetric border: positions 0, -1, ... mirror onto 1, 2, ... (edge repeated).
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    cols = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    matrix = np.zeros((out_len, in_len), np.float64)
    np.add.at(matrix, (np.repeat(np.arange(out_len), taps), cols.ravel()), weights.ravel())
    return matrix


def imresize_np(x: np.ndarray, scale: float, antialias: bool = True) -> np.ndarray:
    """NumPy ``imresize`` for data preparation; computes in float64, returns x's float dtype."""
    x = np.asarray(x)
    if x.ndim < 3:
        raise ValueError(f"imresize expects (..., H, W, C), got shape {x.shape}")
    mh = resize_matrix(x.shape[-3], scale, antialias)
    mw = resize_matrix(x.shape[-2], scale, antialias)
    y = np.einsum("Hh,...hwc->...Hwc", mh, x.astype(np.float64))
    y = np.einsum("Ww,...Hwc->...HWc", mw, y)
    out_dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
    return y.astype(out_dtype)


def imresize(x: jax.Array, scale: float, antialias: bool = True) -> jax.Array:
    """JAX ``imresize`` (jittable; the matrices are trace-time constants)."""
    if x.ndim < 3:
        raise ValueError(f"imresize expects (..., H, W, C), got shape {x.shape}")
    mh = jnp.asarray(resize_matrix(x.shape[-3], scale, antialias), x.dtype)
    mw = jnp.asarray(resize_matrix(x.shape[-2], scale, antialias), x.dtype)
    hi = jax.lax.Precision.HIGHEST
    y = jnp.einsum("Hh,...hwc->...Hwc", mh, x, precision=hi)
    return jnp.einsum("Ww,...Hwc->...HWc", mw, y, precision=hi)

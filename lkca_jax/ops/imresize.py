"""MATLAB-exact bicubic ``imresize`` as separable weight-matrix products.

Reproduces ``imresize(A, s)`` with MATLAB's defaults: Keys cubic kernel with
a = -0.5, antialiasing when shrinking (kernel stretched to width 4/s), output
size ``ceil(s * N)``, the coordinate map ``u = x/s + 0.5 * (1 - 1/s)``
(1-based), weights normalised to sum 1 and a symmetric (mirror) border.

Each spatial axis is resized by one ``(out, in)`` matrix built on the host in
float64 (:func:`resize_matrix`). Arrays are ``(..., H, W, C)``; the H axis is
resized first, as MATLAB does when both scales are equal. In JAX an integer
upscaling (every model's bicubic branch) runs as the matrix's polyphase form:
output row ``r h + i`` is 4 taps of the mirror-padded input from row ``h``,
with phase ``i``'s weights, so an axis costs 4 multiply-adds per output instead
of a dense product over the whole input axis (at 128 -> 512 the matrices are
97% zeros; docs/benchmarks.md). Other scales run as the dense matrix products.
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


@functools.lru_cache(maxsize=32)
def polyphase(scale: int) -> tuple[tuple[tuple[float, ...], ...], tuple[int, ...]]:
    """Integer upscaling's taps away from the borders: ``(weights, starts)``, where output ``scale*h + i``
    is ``sum_t weights[i][t] * x[h + starts[i] + t]`` (0-based); read off :func:`resize_matrix`'s
    float64 weights of a line long enough to have rows untouched by the mirror."""
    n = 16
    m = resize_matrix(n, scale)
    weights, starts = [], []
    for i in range(scale):
        row = m[scale * (n // 2) + i]
        cols = np.flatnonzero(row)
        weights.append(tuple(float(v) for v in row[cols[0]:cols[-1] + 1]))
        starts.append(int(cols[0]) - n // 2)
    return tuple(weights), tuple(starts)


def _upscale_axis(x: jax.Array, scale: int, axis: int) -> jax.Array:
    """:func:`polyphase` along ``axis``: each tap a gather of the input rows it reads (mirrored at the
    borders, MATLAB's symmetric padding), the phases interleaved. Gathers with constant indices fuse
    into the sum; a padded copy would be written out first (2x slower at 128 -> 512)."""
    weights, starts = polyphase(scale)
    n = x.shape[axis]
    mirror = np.concatenate([np.arange(n), np.arange(n)[::-1]])  # x[-1] = x[0], x[n] = x[n - 1]
    phases = []
    for w, start in zip(weights, starts):
        rows = [mirror[np.mod(np.arange(n) + start + t, 2 * n)] for t in range(len(w))]  # as resize_matrix folds
        phases.append(functools.reduce(jnp.add, [wt * jnp.take(x, r, axis=axis) for wt, r in zip(w, rows)]))
    y = jnp.stack(phases, axis=axis + 1)
    return y.reshape(*x.shape[:axis], n * scale, *x.shape[axis + 1:])


def imresize(x: jax.Array, scale: float, antialias: bool = True) -> jax.Array:
    """JAX ``imresize`` (jittable; the weights are trace-time constants): the polyphase form for an
    integer upscaling, else the dense matrix products."""
    if x.ndim < 3:
        raise ValueError(f"imresize expects (..., H, W, C), got shape {x.shape}")
    if scale > 1 and float(scale).is_integer():
        return _upscale_axis(_upscale_axis(x, int(scale), x.ndim - 3), int(scale), x.ndim - 2)
    mh = jnp.asarray(resize_matrix(x.shape[-3], scale, antialias), x.dtype)
    mw = jnp.asarray(resize_matrix(x.shape[-2], scale, antialias), x.dtype)
    hi = jax.lax.Precision.HIGHEST
    y = jnp.einsum("Hh,...hwc->...Hwc", mh, x, precision=hi)
    return jnp.einsum("Ww,...Hwc->...HWc", mw, y, precision=hi)
